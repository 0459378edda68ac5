# What the two Python packages share (package.nix, the whole application, and
# nix/trainer.nix, the trainer alone): pyproject.toml's metadata, the backend
# check, Keras built for that backend, and which libraries training needs.
{
  lib,
  python3Packages,
  backend,
}:

let
  pyproject = lib.importTOML ../pyproject.toml;
  keras = import ./keras.nix { inherit lib python3Packages; };
  pypiNames = removeAttrs (lib.importJSON ./python-names.json) [ "_comment" ];

  # PEP 503 names: "Prometheus_Client>=1" -> "prometheus-client"
  requirementName =
    requirement:
    lib.toLower (
      builtins.replaceStrings [ "_" "." ] [ "-" "-" ] (
        builtins.head (builtins.match "([A-Za-z0-9._-]+).*" requirement)
      )
    );
  # pyproject.toml's requirements for these python3Packages attributes
  requirementsFor =
    attrs:
    let
      names = lib.concatMap (attr: pypiNames.${attr}) attrs;
    in
    builtins.filter (r: builtins.elem (requirementName r) names) pyproject.project.dependencies;

  trainingAttrs = [
    "numpy"
    "h5py"
    "pillow"
    "matplotlib"
  ];
  servingAttrs = [
    "flask"
    "waitress"
    "prometheus-client"
    "orjson"
    "psycopg"
    "psycopg-pool"
  ];
  packagesFor = map (attr: python3Packages.${attr});
in
assert (import ./backends.nix { inherit lib; }).check "cnn-mnist" backend;
{
  inherit pyproject requirementsFor;
  inherit (pyproject.project) version;
  inherit (keras) supportedBackends;

  # what cnn-mnist-train imports: the net, preprocessing, data loading, plots
  trainingDependencies = [ (keras.packageFor backend) ] ++ packagesFor trainingAttrs ++ keras.backendLibraries.${backend};
  trainingRequirements = requirementsFor ([ "keras" ] ++ trainingAttrs);
  servingDependencies = packagesFor servingAttrs;

  # The scripts fall back to the backend the package carries, and Keras'
  # import (pythonImportsCheck, the check phase) uses it too.
  makeWrapperArgs = [
    "--set-default"
    "KERAS_BACKEND"
    backend
  ];
  env.KERAS_BACKEND = backend;

  meta = {
    license = lib.licenses.mit;
    platforms = [
      "x86_64-linux"
      "aarch64-linux"
    ];
  };
}
