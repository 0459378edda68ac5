# Keras for one backend, and the libraries that provide each backend.
#
# nixpkgs' keras lists tensorflow, tf2onnx, onnxruntime, scikit-learn and
# orbax-checkpoint among its dependencies, for export and checkpoint helpers
# we do not use.  (`python3Packages.tensorflow` is tensorflow-bin, upstream's
# wheel, by default since nixpkgs PR #345658.)  A plain `keras` would put
# TensorFlow in a jax or torch closure.  So keras is rebuilt without them, with
# the chosen backend's libraries as its dependencies; its import check runs
# with that backend.
{
  lib,
  python3Packages,
}:

let
  backendLibraries = {
    # tensorflow-bin: upstream's wheel, on Hydra for x86_64-linux and aarch64-linux
    tensorflow = [ python3Packages.tensorflow-bin ];
    jax = [
      python3Packages.jax
      python3Packages.jaxlib
    ];
    torch = [ python3Packages.torch ];
  };
  supportedBackends = (import ./backends.nix { inherit lib; }).supported;

  # Keras' dependencies that need (or are) TensorFlow.
  tensorflowOnly = [
    "tensorflow"
    "tensorflow-bin"
    "tf2onnx"
    "onnxruntime"
    "scikit-learn"
    "orbax-checkpoint"
    "tf-keras"
  ];
  needsTensorflow = dep: builtins.elem (dep.pname or (lib.getName dep)) tensorflowOnly;
in
{
  inherit backendLibraries tensorflowOnly supportedBackends;

  packageFor =
    backend:
    python3Packages.keras.overridePythonAttrs (old: {
      dependencies =
        builtins.filter (dep: !needsTensorflow dep) (old.dependencies or [ ])
        ++ backendLibraries.${backend};
      # keras' test suite imports tensorflow, jax and torch together
      doCheck = false;
      nativeCheckInputs = [ ];
      pythonImportsCheck = [ "keras" ];
      env = (old.env or { }) // {
        KERAS_BACKEND = backend;
      };
    });
}
