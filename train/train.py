"""The training entry point that model.nix runs: a thin shim over `cnn_mnist.training.cli`.

Usage is that of `cnn-mnist-train --help`; all logic lives in the `cnn_mnist` package.
"""

import sys

from cnn_mnist.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
