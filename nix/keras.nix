# Keras for one backend, and the libraries that provide each backend.
#
# nixpkgs' keras lists tensorflow, tf2onnx, onnxruntime, scikit-learn and
# orbax-checkpoint among its dependencies (for export and checkpoint helpers
# we do not use), so a plain `keras` drags TensorFlow into a jax or torch
# closure.  For those backends keras is rebuilt without them; its import check
# then runs with the chosen backend.
{
  lib,
  python3Packages,
  backend,
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

  # Keras' optional dependencies that need (or are) TensorFlow.
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

  withoutTensorflow = python3Packages.keras.overridePythonAttrs (old: {
    dependencies = builtins.filter (dep: !needsTensorflow dep) (old.dependencies or [ ]);
    # keras' test suite imports tensorflow, jax and torch together
    doCheck = false;
    nativeCheckInputs = [ ];
    pythonImportsCheck = [ "keras" ];
    env = (old.env or { }) // {
      KERAS_BACKEND = backend;
    };
  });
in
{
  inherit backendLibraries tensorflowOnly;
  supportedBackends = builtins.attrNames backendLibraries;
  package = if backend == "tensorflow" then python3Packages.keras else withoutTensorflow;
}
