"""What training and serving share: the network, preprocessing, data loading, the backend choice and CLI helpers.

Everything here is part of every model's identity: the trainer's Nix source holds this package and
`cnn_mnist.training`, nothing else (nix/source.nix).
"""
