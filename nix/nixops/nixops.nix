# The network for NixOps 2 without flakes: NixOps reads `nixops.nix` from the
# directory given with --network (it refuses one that also holds a flake.nix,
# hence this directory):
#
#   nixops create -d cnn-mnist --network nix/nixops
#   nixops deploy -d cnn-mnist --network nix/nixops
import ../../nixops-deployment.nix
