# The cnn-mnist Python application: the trainer (`cnn-mnist-train`) and the
# server (`cnn-mnist`).  `backend` selects which Keras backend libraries the
# package carries, and only those:
#
#   cnn-mnist.override { backend = "jax"; }
{
  lib,
  python3Packages,
  backend ? "tensorflow",
}:

let
  pyprojectToml = lib.importTOML ./pyproject.toml;
  keras = import ./nix/keras.nix { inherit lib python3Packages backend; };
  inherit (keras) backendLibraries supportedBackends;
in
assert lib.assertMsg (backend != "theano")
  "cnn-mnist: backend \"theano\" is not supported: Keras 3 removed the Theano backend (Theano itself is unmaintained since 2017). Use one of: ${lib.concatStringsSep ", " supportedBackends}.";
assert lib.assertMsg (builtins.elem backend supportedBackends)
  "cnn-mnist: unknown backend \"${backend}\"; use one of: ${lib.concatStringsSep ", " supportedBackends}.";

python3Packages.buildPythonApplication rec {
  pname = pyprojectToml.project.name;
  inherit (pyprojectToml.project) version;
  pyproject = true;

  # only the project's own files, whatever else lies in the checkout
  src = import ./nix/source.nix { root = ./.; };

  build-system = [ python3Packages.setuptools ];

  dependencies =
    with python3Packages;
    [
      keras.package
      numpy
      h5py
      pillow
      matplotlib
      flask
      waitress
      prometheus-client
      orjson
    ]
    ++ backendLibraries.${backend};

  # The server falls back to the backend this package carries.
  makeWrapperArgs = [
    "--set-default"
    "KERAS_BACKEND"
    backend
  ];

  nativeCheckInputs = [ python3Packages.pytestCheckHook ];

  preCheck = ''
    export HOME=$TMPDIR XDG_CACHE_HOME=$TMPDIR/cache KERAS_HOME=$TMPDIR/keras MPLCONFIGDIR=$TMPDIR/mpl
    export KERAS_BACKEND=${backend}
  '';

  # slow: trains a model (the `model` derivation does that); the Nix tests
  # need nix-instantiate and nixpkgs' lib, which are not in the build sandbox.
  disabledTestMarks = [ "slow" ];
  disabledTestPaths = map (name: "tests/${name}") (
    builtins.filter (name: builtins.match "test_nix.*[.]py" name != null) (
      builtins.attrNames (builtins.readDir ./tests)
    )
  );

  pythonImportsCheck = [ "cnn_mnist" ];

  passthru = {
    inherit backend supportedBackends;
    # for devShells: the Python libraries the application runs with
    pythonDependencies = dependencies;
  };

  meta = {
    description = pyprojectToml.project.description;
    license = lib.licenses.mit;
    mainProgram = "cnn-mnist";
    platforms = [
      "x86_64-linux"
      "aarch64-linux"
    ];
  };
}
