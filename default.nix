# Non-flake entry point.  `import ./.` is an attribute set:
#
#   nix-build -A model
#   nix-build -E 'with import ./.; model.override { epochs = 5; }'
#   MODEL=$(nix-build -A model)/model.h5 $(nix-build -A frontend)/bin/cnn-mnist   (or model.keras)
#
# nixpkgs comes from flake.lock, read as flake-compat does, so `nix-build` and
# `nix build` build the same derivations.
let
  locked = (import ./nix/lock.nix { lockFile = ./flake.lock; }).nixpkgs;
  nixpkgs = builtins.fetchTarball { inherit (locked) url sha256; };

  pkgs = import nixpkgs {
    config = { };
    overlays = [ (import ./nix/overlay.nix) ];
  };
in
import ./nix/packages.nix { inherit pkgs; }
// {
  inherit pkgs;
  # the same nixpkgs source, e.g. for `nixops deploy -I nixpkgs=...`
  nixpkgsPath = nixpkgs;
  nixosModule = ./module.nix;
  nixosTest = import ./nix/nixos-test.nix { inherit pkgs; };
  nixosTestScaleOut = import ./nix/nixos-test-scale-out.nix { inherit pkgs; };
}
