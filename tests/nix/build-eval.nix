# The project's Nix layer on nixpkgs' real lib, with fake builders that make
# real derivations which are never built: Nix 2.8 itself computes every store
# path and writes every .drv into a local store under a temporary directory.
# The project's overlay is applied, so what a model depends on is whatever the
# Nix files say, and each package's recipe (its phases, inputs and test
# selection) is read from the very attributes nixpkgs' builders would get.
#
#   nix-instantiate --read-write-mode --store "local?root=$TMP" --eval --strict --json \
#     tests/nix/build-eval.nix --argstr nixpkgsLib "$NIXPKGS_LIB" -A drvPaths
{
  nixpkgsLib,
  system ? "x86_64-linux",
  # for the recipes: the model trained on this dataset (a path string), gated at this floor,
  # with these extra training digits (paths or fixed-output derivations, as model.nix takes them)
  dataset ? null,
  minAccuracy ? 0.98,
  extraData ? [ ],
}:

let
  libRoot = /. + nixpkgsLib;
  lib = if builtins.pathExists (libRoot + "/lib/default.nix") then import (libRoot + "/lib") else import libRoot;

  # Only what a derivation's environment can hold; attribute sets (passthru,
  # meta) are not part of it, except `env`, whose values are.
  environment =
    args:
    lib.filterAttrs (_: v: !builtins.isFunction v && !(builtins.isAttrs v && !lib.isDerivation v)) (
      removeAttrs args [
        "passthru"
        "meta"
        "env"
      ]
    )
    // (args.env or { });

  mkDerivation =
    args:
    derivation (
      environment args
      // {
        name = args.name or "${args.pname}-${args.version}";
        inherit system;
        builder = "/bin/sh";
        args = [
          "-c"
          "echo 'a fake builder: never built' >&2; exit 1"
        ];
      }
    )
    // (args.passthru or { })
    // {
      meta = args.meta or { };
      recipe = args;
    };

  fetchurl =
    { url, sha256 }:
    derivation {
      name = baseNameOf url;
      inherit system url;
      builder = "/bin/sh";
      outputHashMode = "flat";
      outputHashAlgo = "sha256";
      outputHash = sha256;
    };

  pythonPackage =
    pname: args:
    mkDerivation ({ inherit pname; version = "0"; } // args)
    // {
      overridePythonAttrs = f: pythonPackage pname (args // f args);
    };
  plain = lib.genAttrs [
    "absl-py" "ml-dtypes" "namex" "optree" "packaging" "rich" "onnxruntime" "orbax-checkpoint"
    "scikit-learn" "tensorflow" "tf2onnx" "tf-keras" "setuptools" "numpy" "h5py" "pillow" "matplotlib"
    "flask" "waitress" "prometheus-client" "orjson" "psycopg" "psycopg-pool" "tensorflow-bin" "jax" "jaxlib" "torch"
    "pytestCheckHook" "hypothesis" "jsonschema-rs" "schemathesis"
  ] (pname: pythonPackage pname { });
  python3Packages = plain // {
    # nixpkgs' keras, its dependencies as pkgs/development/python-modules/keras/default.nix lists them
    keras = pythonPackage "keras" {
      dependencies = map (n: plain.${n}) [
        "absl-py" "h5py" "ml-dtypes" "namex" "numpy" "onnxruntime" "optree" "orbax-checkpoint"
        "packaging" "rich" "scikit-learn" "tensorflow" "tf2onnx"
      ];
    };
    buildPythonApplication = mkDerivation;
  };

  base = {
    inherit lib system fetchurl python3Packages;
    stdenvNoCC = { inherit mkDerivation; };
  };
  pkgs = lib.fix (self: base // { callPackage = lib.callPackageWith self; } // import ../../nix/overlay.nix self base);
  outputs = import ../../nix/packages.nix { inherit pkgs; };

  names = map lib.getName;
  pythonRecipe =
    p:
    let
      r = p.recipe;
    in
    {
      inherit (r) pname version;
      src = "${r.src}";
      build-system = names r.build-system;
      dependencies = names r.dependencies;
      nativeCheckInputs = names (r.nativeCheckInputs or [ ]);
      doCheck = r.doCheck or true;
      postPatch = r.postPatch or "";
      preCheck = r.preCheck or "";
      disabledTestMarks = r.disabledTestMarks or [ ];
      disabledTestPaths = r.disabledTestPaths or [ ];
      disabledTests = r.disabledTests or [ ];
      pytestFlags = r.pytestFlags or [ ];
      pythonImportsCheck = r.pythonImportsCheck or [ ];
      makeWrapperArgs = r.makeWrapperArgs or [ ];
      env = r.env or { };
    };
  model = pkgs.cnn-mnist-model.override (
    { inherit minAccuracy extraData; } // lib.optionalAttrs (dataset != null) { inherit dataset; }
  );
in
{
  drvPaths = {
    model = outputs.model.drvPath;
    models = lib.mapAttrs (_: m: m.drvPath) outputs.models;
    trainer = pkgs.cnn-mnist-trainer.drvPath;
    package = pkgs.cnn-mnist.drvPath;
  };
  # what each derivation asks of its builder
  systemFeatures = lib.mapAttrs (_: m: m.requiredSystemFeatures or [ ]) (outputs.models // { default = outputs.model; });

  recipes = {
    package = pythonRecipe pkgs.cnn-mnist;
    trainer = pythonRecipe pkgs.cnn-mnist-trainer;
    model = {
      inherit (model) drvPath;
      inherit (model.recipe) buildPhase installCheckPhase;
      trainer = lib.getName model.trainer;
    };
  };
}
