# ../../nix/lock.nix on the project's flake.lock and on a synthetic lock:
#   nix-instantiate --eval --strict --json tests/nix/lock.nix
let
  read = import ../../nix/lock.nix;
  synthetic = ./synthetic-flake.lock;
  fails = value: !(builtins.tryEval (builtins.deepSeq value value)).success;
in
{
  project = (read { lockFile = ../../flake.lock; }).nixpkgs;
  projectLock = builtins.fromJSON (builtins.readFile ../../flake.lock);
  synthetic = (read { lockFile = synthetic; }).nixpkgs;
  missingInputFails = fails (read {
    lockFile = synthetic;
    inputs = [ "flake-utils" ];
  });
}
