# The trained model as a derivation.  `$out` is the trainer's output directory:
# model.keras, model.h5 (Keras' legacy HDF5 format), metrics.json, accuracy.txt
# and training-curves.png.
#
# Its identity is the trainer (nix/trainer.nix: the training code alone), the
# dataset and the parameters below; nothing else in the checkout.
#
# Training is bit-reproducible on CPU, so `nix-build --check -A model` rebuilds
# it and compares the result byte for byte.
#
# The accuracy gate: the build fails when the test accuracy (accuracy.txt) is
# below `minAccuracy`.  A model that trained badly never reaches the store, so
# `nixos-rebuild switch` fails and the running model keeps serving.
#
#   model.override { epochs = 5; backend = "jax"; seed = 3; }
#   model.override { minAccuracy = 0.95; }
#   model.override { extraData = [ ./corrections-2026-12-01.npz ]; }
let
  defaults = builtins.fromJSON (builtins.readFile ./cnn_mnist/training/defaults.json);
in
{
  lib,
  stdenvNoCC,
  fetchurl,
  cnn-mnist-trainer,
  backend ? "tensorflow",
  # the trainer's own defaults (cnn_mnist/training/defaults.json)
  epochs ? defaults.epochs,
  batchSize ? defaults.batch_size,
  learningRate ? defaults.learning_rate,
  seed ? defaults.seed,
  # the lowest test accuracy the build accepts (0 turns the gate off)
  minAccuracy ? 0.98,
  # What a builder must offer (Nix's `system-features`), so that remote
  # builders and Hydra route the build: ten epochs on 60,000 digits take tens
  # of minutes of every core a 2-core machine has, the kind of job nixpkgs marks
  # big-parallel.  models.quick (one epoch on 10,000 digits, a minute) sets [ ]
  # and builds anywhere.  docs/nix.md has the --builders command.
  requiredSystemFeatures ? [ "big-parallel" ],
  # Keras' copy of MNIST (train 60k, test 10k); a directory of the four IDX
  # files or another .npz in the same layout works too.
  dataset ? fetchurl {
    url = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz";
    sha256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1";
  },
  # More training digits (`cnn-mnist-corrections export`'s files, docs/corrections.md),
  # each a path (in the store by its content) or a fixed-output derivation
  # (fetchurl with its hash): pinned either way, so a new export is a new model.
  # Training only; the test set and the gate stay the dataset's.
  extraData ? [ ],
}:

let
  trainer = cnn-mnist-trainer.override { inherit backend; };
  # toJSON 0.001 is "0.001" (toString's is "0.001000"); strings are passed as written
  showNumber = x: if builtins.isString x then x else builtins.toJSON x;
  pinned = file: builtins.isPath file || (lib.isDerivation file && file ? outputHash);
in
assert (import ./nix/backends.nix { inherit lib; }).check "cnn-mnist model" backend;
assert lib.assertMsg (
  builtins.isInt epochs && epochs > 0
) "cnn-mnist model: epochs must be a positive integer";
assert lib.assertMsg (
  builtins.isInt batchSize && batchSize > 0
) "cnn-mnist model: batchSize must be a positive integer";
assert lib.assertMsg (builtins.isInt seed) "cnn-mnist model: seed must be an integer";
assert lib.assertMsg (builtins.isList extraData && builtins.all pinned extraData)
  "cnn-mnist model: extraData must be a list of paths or fixed-output derivations (pinned by hash)";
assert lib.assertMsg (
  (builtins.isInt minAccuracy || builtins.isFloat minAccuracy) && minAccuracy >= 0 && minAccuracy <= 1
) "cnn-mnist model: minAccuracy must be a number between 0 and 1";

stdenvNoCC.mkDerivation {
  pname = "cnn-mnist-model-${backend}";
  version = "e${toString epochs}-s${toString seed}";

  dontUnpack = true;
  nativeBuildInputs = [ trainer ];
  inherit requiredSystemFeatures;

  # No network in the sandbox; Keras, matplotlib and the backends write their
  # caches under $HOME/XDG_CACHE_HOME, which point into the build directory.
  buildPhase = ''
    runHook preBuild

    export HOME=$TMPDIR/home XDG_CACHE_HOME=$TMPDIR/cache
    export KERAS_HOME=$TMPDIR/keras MPLCONFIGDIR=$TMPDIR/matplotlib
    export PYTHONHASHSEED=0 CUDA_VISIBLE_DEVICES=""
    # metrics.json names what pinned every version
    export CNN_MNIST_LOCK=${lib.escapeShellArg "nixpkgs ${lib.version}"}
    mkdir -p "$HOME" "$XDG_CACHE_HOME" "$KERAS_HOME" "$MPLCONFIGDIR"

    cnn-mnist-train \
      --dataset ${dataset} \
      --epochs ${toString epochs} \
      --batch-size ${toString batchSize} \
      --learning-rate ${showNumber learningRate} \
      --seed ${toString seed} \
      --backend ${backend} \${
        lib.concatMapStrings (file: "\n  --extra-data ${file} \\") extraData
      }
      --output "$out"

    runHook postBuild
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    for f in model.keras model.h5 metrics.json accuracy.txt training-curves.png; do
      test -s "$out/$f" || { echo "cnn-mnist-train did not write $f" >&2; exit 1; }
    done
    accuracy=$(tr -d '[:space:]' < "$out/accuracy.txt")
    if ! [[ "$accuracy" =~ ^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]]; then
      echo "cnn-mnist model: accuracy.txt holds '$accuracy', not a number" >&2
      exit 1
    fi
    if ! awk -v a="$accuracy" -v floor=${builtins.toJSON minAccuracy} 'BEGIN { exit !(a + 0 >= floor + 0) }'; then
      echo "cnn-mnist model: test accuracy $accuracy is below the floor ${builtins.toJSON minAccuracy}; to accept it, build model.override { minAccuracy = $accuracy; }" >&2
      exit 1
    fi
    echo "test accuracy: $accuracy (floor ${builtins.toJSON minAccuracy})"
    runHook postInstallCheck
  '';
  dontInstall = true;
  dontFixup = true;

  passthru = {
    inherit
      backend
      epochs
      batchSize
      learningRate
      seed
      minAccuracy
      dataset
      extraData
      trainer
      requiredSystemFeatures
      ;
  };

  meta = {
    description = "Keras ConvNet trained on MNIST (${backend}, ${toString epochs} epochs, seed ${toString seed})";
    inherit (trainer.meta) license platforms;
  };
}
