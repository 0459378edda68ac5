# models.quick's parameters: one epoch on the bundled 10k subset, for tests,
# demos and the VM tests.  It scored 0.947 (seed 0, docs/training.md), so its
# floor is 0.9 (the default model's is 0.98).  A minute of training on any
# machine: no big-parallel builder needed.
#
#   pkgs.cnn-mnist-model.override (import ./quick-model.nix)
{
  epochs = 1;
  dataset = ../data/mnist-small.npz;
  minAccuracy = 0.9;
  requiredSystemFeatures = [ ];
}
