"""`cnn-mnist-train`: training the ConvNet and writing its reproducible output directory.

Imports only `cnn_mnist.core` and itself, so that a change to the server never changes a model.
"""
