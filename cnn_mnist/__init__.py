"""cnn-mnist: a Keras ConvNet for MNIST as a reproducible build artifact, and the app that serves it."""

__version__ = "0.1.0"
