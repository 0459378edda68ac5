# The cnn-mnist Python application: the server (`cnn-mnist`) and the trainer
# (`cnn-mnist-train`).  `backend` selects which Keras backend libraries the
# package carries, and only those:
#
#   cnn-mnist.override { backend = "jax"; }
#
# Models are built with nix/trainer.nix (`cnn-mnist-trainer`), whose source is
# the training code alone; this package's check phase runs the quick tests.
{
  lib,
  python3Packages,
  backend ? "tensorflow",
}:

let
  project = import ./nix/project.nix { inherit lib python3Packages backend; };
in
python3Packages.buildPythonApplication rec {
  pname = project.pyproject.project.name;
  inherit (project) version makeWrapperArgs env;
  pyproject = true;

  src = import ./nix/source.nix {
    root = ./.;
    part = "package";
  };

  build-system = [ python3Packages.setuptools ];
  dependencies = project.trainingDependencies ++ project.servingDependencies;

  # The tests' own imports beyond the application's (tests/test_api.py,
  # tests/test_bad_input.py).  tests/test_nixbuild.py runs this check phase
  # here with these distributions alone importable.
  nativeCheckInputs = with python3Packages; [
    pytestCheckHook
    hypothesis
    jsonschema-rs
  ];

  preCheck = ''
    export HOME=$TMPDIR XDG_CACHE_HOME=$TMPDIR/cache KERAS_HOME=$TMPDIR/keras MPLCONFIGDIR=$TMPDIR/mpl
  '';

  # The check phase runs the quick tests (`make check`): about 150, in well
  # under a minute on 2 cores.
  disabledTestMarks = [
    # trains a model or starts a server (tests/conftest.py marks every test
    # that needs the shared trained model); the model's own derivation trains
    "slow"
  ];
  disabledTestPaths = [
    # nix-instantiate, unshare and nixpkgs' lib (../shared), none of them in the sandbox
    "tests/test_nix*.py"
    # Chromium and Playwright
    "tests/test_browser.py"
    # a minute of schemathesis against a live server
    "tests/test_fuzz.py"
  ];

  pythonImportsCheck = [
    "cnn_mnist.serving.app"
    "cnn_mnist.training.cli"
    "cnn_mnist.corrections.cli"
  ];

  passthru = {
    inherit backend;
    inherit (project) supportedBackends;
    # for devShells: the Python libraries the application runs with
    pythonDependencies = dependencies;
  };

  meta = project.meta // {
    inherit (project.pyproject.project) description;
    mainProgram = "cnn-mnist";
  };
}
