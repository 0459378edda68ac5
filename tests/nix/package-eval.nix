# Evaluates package.nix, model.nix and nix/packages.nix against nixpkgs' real
# `lib` and fake builders (which return their arguments), so no nixpkgs is
# needed and nothing is built.
#
#   nix-instantiate --eval --strict --json tests/nix/package-eval.nix \
#     --argstr nixpkgsLib "$NIXPKGS_LIB" --argstr models /tmp/fake-models
#
# models: a directory with seed-0/accuracy.txt, seed-1/accuracy.txt, … that
# stand in for trained models when checking `bestModel`.
{
  nixpkgsLib,
  models ? null,
}:

let
  root = /. + nixpkgsLib;
  lib = if builtins.pathExists (root + "/lib/default.nix") then import (root + "/lib") else import root;

  fakeDrv = name: { type = "derivation"; inherit name; pname = name; outPath = "/nix/store/0000-${name}"; };
  fakeDrvs = names: map fakeDrv names;

  # nixpkgs' keras: its dependencies as pkgs/development/python-modules/keras/default.nix lists them
  fakeKeras =
    attrs:
    fakeDrv "keras" // attrs // {
      overridePythonAttrs = f: fakeKeras (attrs // f attrs);
    };
  keras = fakeKeras {
    dependencies = fakeDrvs [ "absl-py" "h5py" "ml-dtypes" "namex" "numpy" "onnxruntime" "optree" "orbax-checkpoint" "packaging" "rich" "scikit-learn" "tensorflow" "tf2onnx" ];
    doCheck = true;
    nativeCheckInputs = fakeDrvs [ "jax" "torch" "tf-keras" ];
    pythonImportsCheck = [ "keras" "keras._tf_keras" ];
  };

  python3Packages =
    builtins.listToAttrs (
      map (name: {
        inherit name;
        value = fakeDrv name;
      }) [ "setuptools" "numpy" "h5py" "pillow" "matplotlib" "flask" "waitress" "prometheus-client" "orjson" "psycopg" "psycopg-pool" "tensorflow-bin" "jax" "jaxlib" "torch" "pytestCheckHook" "hypothesis" "jsonschema-rs" ]
    )
    // {
      inherit keras;
      buildPythonApplication = args: args // { builder = "buildPythonApplication"; };
    };

  package = args: import ../../package.nix ({ inherit lib python3Packages; } // args);
  trainer = args: import ../../nix/trainer.nix ({ inherit lib python3Packages; } // args);
  names = map (d: d.name);
  kerasOf = p: builtins.head (builtins.filter (d: d.name == "keras") p.dependencies);
  summary = p: {
    inherit (p) pname version pyproject makeWrapperArgs;
    disabledTestPaths = p.disabledTestPaths or [ ];
    disabledTestMarks = p.disabledTestMarks or [ ];
    doCheck = p.doCheck or true;
    nativeCheckInputs = names (p.nativeCheckInputs or [ ]);
    src = toString p.src;
    dependencies = names p.dependencies;
    # the Python closure one level into keras: what the package carries at run time
    closure = names p.dependencies ++ names (kerasOf p).dependencies;
    keras = { inherit (kerasOf p) doCheck pythonImportsCheck; env = (kerasOf p).env or { }; };
    kerasDependencies = names (kerasOf p).dependencies;
    inherit (p.meta) mainProgram platforms;
    inherit (p.passthru) backend;
  };

  fakePackage =
    backend:
    fakeDrv "cnn-mnist-trainer-${backend}" // {
      override = args: fakePackage (args.backend or backend);
      meta = { license = "mit"; platforms = [ "x86_64-linux" ]; };
    };
  model =
    args:
    import ../../model.nix (
      {
        inherit lib;
        stdenvNoCC.mkDerivation = a: a;
        fetchurl = a: a // { outPath = "/nix/store/0000-mnist.npz"; };
        cnn-mnist-trainer = fakePackage "default";
      }
      // args
    );
  # model.nix as callPackage would give it: with `.override`
  overridableModel = args: model args // { override = more: overridableModel (args // more); };
  modelSummary = m: {
    inherit (m) pname version buildPhase installCheckPhase;
    inherit (m.passthru) minAccuracy;
    nativeBuildInputs = names m.nativeBuildInputs;
    dataset = m.passthru.dataset.url or (toString m.passthru.dataset);
    datasetHash = m.passthru.dataset.sha256 or null;
  };

  evaluates = value: (builtins.tryEval (builtins.deepSeq value value)).success;

  # bestModel wiring: a fake model whose outPath for `seed` is models/seed-N
  fakeModel = seed: {
    inherit seed;
    outPath = "${models}/seed-${toString seed}";
    override = args: fakeModel (args.seed or seed);
  };
  packages = import ../../nix/packages.nix {
    pkgs = {
      inherit lib;
      cnn-mnist-model = fakeModel 0;
      cnn-mnist = fakePackage "default";
    };
    bestModelSeeds = [ 0 1 2 3 ];
  };
in
{
  # evaluated one by one (-A) by test_nix.py, which checks the error messages
  theanoPackage = (package { backend = "theano"; }).pname;
  theanoModel = (model { backend = "theano"; }).pname;
  unknownBackendModel = (model { backend = "mxnet"; }).pname;

  report = {
  packages = lib.genAttrs [ "tensorflow" "jax" "torch" ] (backend: summary (package { inherit backend; }));
  trainers = lib.genAttrs [ "tensorflow" "jax" "torch" ] (backend: summary (trainer { inherit backend; }));
  defaultPackage = summary (package { });
  theanoPackageEvaluates = evaluates (package { backend = "theano"; }).pname;

  defaultModel = modelSummary (model { });
  customModel = modelSummary (model {
    backend = "jax";
    epochs = 5;
    batchSize = 64;
    learningRate = 0.01;
    seed = 7;
    dataset = "/data/mnist-small.npz";
  });
  theanoModelEvaluates = evaluates (model { backend = "theano"; }).pname;
  badFloorEvaluates = evaluates (model { minAccuracy = 1.5; }).pname;
  quickModelFloor = (import ../../nix/packages.nix {
    pkgs = {
      inherit lib;
      cnn-mnist-model = overridableModel { };
      cnn-mnist-trainer = fakePackage "default";
    };
  }).models.quick.passthru.minAccuracy;
  zeroEpochsEvaluates = evaluates (model { epochs = 0; }).pname;
  }
  // lib.optionalAttrs (models != null) {
    bestModelSeed = packages.bestModel.seed;
    bestOfTwo = (packages.bestModelOf (fakeModel 0) [ 2 3 ]).seed;
  };
}
