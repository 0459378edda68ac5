"""The training defaults, in one file shared by `cnn-mnist-train`, `TrainConfig` and model.nix (lib.importJSON)."""

import json
from pathlib import Path

TRAINING = json.loads((Path(__file__).parent / "defaults.json").read_text())
