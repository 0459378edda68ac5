# The trainer alone (`cnn-mnist-train`): the package every model is built with.
#
# A model's identity is its trainer, its data and its parameters.  So this
# package's source holds cnn_mnist.core and cnn_mnist.training only
# (nix/source.nix), and its pyproject.toml is written here from the project's
# own with the trainer's fields alone: a new server dependency, test extra or
# README edit changes the application, never a model.
#
#   cnn-mnist-trainer.override { backend = "jax"; }
{
  lib,
  python3Packages,
  backend ? "tensorflow",
}:

let
  project = import ./project.nix { inherit lib python3Packages backend; };
  inherit (project.pyproject) build-system;
  script = "cnn-mnist-train";

  # TOML for string and list-of-string values, which is all this file needs:
  # a JSON string or array of strings is a TOML one too.
  toTOML =
    tables:
    lib.concatStrings (
      lib.mapAttrsToList (
        table: keys:
        "[${table}]\n"
        + lib.concatStrings (lib.mapAttrsToList (key: value: "${builtins.toJSON key} = ${builtins.toJSON value}\n") keys)
        + "\n"
      ) tables
    );
  pyprojectToml = builtins.toFile "pyproject.toml" (toTOML {
    build-system = {
      inherit (build-system) requires build-backend;
    };
    project = {
      name = "cnn-mnist-trainer";
      inherit (project) version;
      description = "The cnn-mnist trainer: cnn-mnist-train, which every cnn-mnist model is built with";
      inherit (project.pyproject.project) requires-python license;
      license-files = [ "LICENSE" ];
      dependencies = project.trainingRequirements;
    };
    "project.scripts".${script} = project.pyproject.project.scripts.${script};
    "tool.setuptools".packages = [
      "cnn_mnist"
      "cnn_mnist.core"
      "cnn_mnist.training"
    ];
    "tool.setuptools.package-data"."cnn_mnist.training" = [ "*.json" ];
  });
in
python3Packages.buildPythonApplication {
  pname = "cnn-mnist-trainer";
  inherit (project) version makeWrapperArgs env;
  pyproject = true;

  src = import ./source.nix {
    root = ../.;
    part = "trainer";
  };
  postPatch = ''
    cp ${pyprojectToml} pyproject.toml
  '';

  build-system = [ python3Packages.setuptools ];
  dependencies = project.trainingDependencies;

  # The tests live with the application (package.nix), whose source has them.
  doCheck = false;
  # the CLI, and the trainer with Keras on this backend
  pythonImportsCheck = [
    "cnn_mnist.training.cli"
    "cnn_mnist.training.trainer"
  ];

  passthru = {
    inherit backend pyprojectToml;
    inherit (project) supportedBackends;
  };

  meta = project.meta // {
    description = "The cnn-mnist trainer (${backend})";
    mainProgram = script;
  };
}
