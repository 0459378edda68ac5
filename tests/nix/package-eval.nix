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

  fakeDrv = name: { type = "derivation"; inherit name; outPath = "/nix/store/0000-${name}"; };

  python3Packages =
    builtins.listToAttrs (
      map (name: {
        inherit name;
        value = fakeDrv name;
      }) [ "setuptools" "keras" "numpy" "h5py" "pillow" "matplotlib" "flask" "waitress" "prometheus-client" "tensorflow-bin" "jax" "jaxlib" "torch" "pytestCheckHook" ]
    )
    // {
      buildPythonApplication = args: args // { builder = "buildPythonApplication"; };
    };

  package = args: import ../../package.nix ({ inherit lib python3Packages; } // args);
  names = map (d: d.name);
  summary = p: {
    inherit (p) pname version pyproject makeWrapperArgs disabledTestPaths disabledTestMarks;
    dependencies = names p.dependencies;
    inherit (p.meta) mainProgram platforms;
    inherit (p.passthru) backend;
  };

  fakePackage =
    backend:
    fakeDrv "cnn-mnist-${backend}" // {
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
        cnn-mnist = fakePackage "default";
      }
      // args
    );
  modelSummary = m: {
    inherit (m) pname version buildPhase;
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
  zeroEpochsEvaluates = evaluates (model { epochs = 0; }).pname;
  }
  // lib.optionalAttrs (models != null) {
    bestModelSeed = packages.bestModel.seed;
    bestOfTwo = (packages.bestModelOf (fakeModel 0) [ 2 3 ]).seed;
  };
}
