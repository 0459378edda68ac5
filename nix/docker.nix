# A Docker image of the server and the default model, built without a Docker
# daemon:  docker load < $(nix-build -A dockerImage)
{
  lib,
  dockerTools,
  cnn-mnist,
  model,
  port ? 8080,
}:

dockerTools.buildLayeredImage {
  name = "cnn-mnist";
  tag = cnn-mnist.version;

  # writable /tmp for Keras' and matplotlib's caches
  extraCommands = ''
    mkdir -p -m 1777 tmp
  '';

  config = {
    Entrypoint = [ (lib.getExe cnn-mnist) ];
    Env = [
      "MODEL=${model}"
      "HOST=0.0.0.0"
      "PORT=${toString port}"
      "HOME=/tmp"
      "XDG_CACHE_HOME=/tmp"
      "MPLCONFIGDIR=/tmp"
      "KERAS_HOME=/tmp/keras"
    ];
    ExposedPorts."${toString port}/tcp" = { };
    User = "65534:65534";
  };
}
