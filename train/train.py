"""Train from a checkout without installing the package: `python train/train.py --dataset … --output out`.

The same command as `cnn-mnist-train` (all its logic lives in `cnn_mnist.training`). This checkout's own
`cnn_mnist` comes first on the path, so an edit is trained with at once; the dependencies must be importable
(`make run` installs them). Nix and the installed package run `cnn-mnist-train` instead.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnn_mnist.training.cli import main  # noqa: E402  (after the checkout is put on the path)

if __name__ == "__main__":
    sys.exit(main())
