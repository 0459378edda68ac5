# The flake's outputs with stand-ins for its nixpkgs input: nixpkgs' real lib,
# a stub nixosSystem that returns its arguments, and this flake's packages
# replaced by fakes.  The NixOS modules it yields are evaluated by
# module-eval.nix.
#
#   nix-instantiate --eval --strict --json tests/nix/flake-eval.nix \
#     --argstr nixpkgsLib "$NIXPKGS_LIB" -A report
{ nixpkgsLib }:

let
  root = /. + nixpkgsLib;
  lib = if builtins.pathExists (root + "/lib/default.nix") then import (root + "/lib") else import root;

  fakeDrv = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/0000000000000000000000000000000-${name}";
  };

  nixpkgs = {
    lib = lib // {
      nixosSystem = args: { nixosSystemArgs = args; };
    };
    outPath = "/nix/store/0000000000000000000000000000000-nixpkgs-source";
  };

  flake = import ../../flake.nix;
  outputs = flake.outputs {
    inherit nixpkgs;
    self = outputs // {
      # this flake's own packages, as nixosModules.default finds them
      packages.x86_64-linux = {
        cnn-mnist = fakeDrv "cnn-mnist-flake" // {
          backend = "tensorflow";
          meta.mainProgram = "cnn-mnist";
        };
        model = fakeDrv "cnn-mnist-model-flake";
      };
    };
  };

  network = replicas: outputs.nixopsConfigurations.default { inherit replicas; };

  # the scale-out VM test, with runNixOSTest returning its argument
  scaleOutTest = import ../../nix/nixos-test-scale-out.nix {
    pkgs = {
      testers.runNixOSTest = test: test;
      cnn-mnist-model.override = args: fakeDrv "cnn-mnist-model-quick" // { inherit args; };
      curl = fakeDrv "curl";
    };
  };
  machines = replicas: builtins.removeAttrs (network replicas) [ "network" "nixpkgs" ];
in
{
  inherit outputs network machines scaleOutTest;

  # read-only pkgs: no overlay, so no pkgs.cnn-mnist
  readOnlyPkgs = {
    inherit lib;
    stdenv.hostPlatform.system = "x86_64-linux";
    coreutils = fakeDrv "coreutils";
    runCommandLocal = name: env: script: fakeDrv name;
    callPackage = file: args: fakeDrv "called-${baseNameOf file}";
  };

  report = {
    inputUrl = flake.inputs.nixpkgs.url;
    outputNames = builtins.attrNames outputs;
    host = {
      inherit (outputs.nixosConfigurations.cnn-mnist.nixosSystemArgs) system;
      modules = map (m: if builtins.isPath m then baseNameOf m else builtins.typeOf m)
        outputs.nixosConfigurations.cnn-mnist.nixosSystemArgs.modules;
    };
    checks = builtins.attrNames (outputs.checks.x86_64-linux or { });
    networks = lib.genAttrs [ "1" "3" ] (n: {
      network = builtins.removeAttrs (network (lib.toInt n)).network [ "nixpkgs" ];
      hasNetworkNixpkgs = (network (lib.toInt n)).network ? nixpkgs;
      flakeNixpkgs = (network (lib.toInt n)).nixpkgs.outPath;
      machines = builtins.attrNames (machines (lib.toInt n));
    });
  };
}
