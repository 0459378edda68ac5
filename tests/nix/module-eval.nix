# Evaluates ../../module.nix with nixpkgs' real `lib.evalModules`, without the
# rest of nixpkgs or NixOS: the NixOS options the module sets are declared
# free-form here, and `pkgs` is a fake package set.
#
#   nix-instantiate --eval --strict --json tests/nix/module-eval.nix \
#     --argstr nixpkgsLib "$NIXPKGS_LIB" --arg settings '{ backend = "jax"; }'
#
# nixpkgsLib: a nixpkgs checkout (containing lib/) or its lib/ directory.
{
  nixpkgsLib,
  # services.cnn-mnist settings of the scenario; `enable = true` is implied
  settings ? { },
  # further NixOS configuration of the scenario (e.g. services.nginx)
  extraConfig ? { },
}:

let
  root = /. + nixpkgsLib;
  lib = if builtins.pathExists (root + "/lib/default.nix") then import (root + "/lib") else import root;
  inherit (lib) mkOption types;

  freeform = types.submodule { freeformType = types.lazyAttrsOf types.anything; };
  freeformOption = mkOption {
    type = freeform;
    default = { };
  };

  store = "/nix/store/0000000000000000000000000000000";
  fakeDrv = name: extra: {
    type = "derivation";
    inherit name;
    outPath = "${store}-${name}";
    outputName = "out";
    meta = { };
  } // extra;
  fakePackage =
    backend:
    fakeDrv "cnn-mnist-${backend}" {
      version = "0.1.0";
      meta.mainProgram = "cnn-mnist";
      passthru = { inherit backend; };
      override = args: fakePackage (args.backend or backend);
    };

  pkgs = {
    coreutils = fakeDrv "coreutils" { };
    cnn-mnist = fakePackage "default";
    cnn-mnist-model = fakeDrv "cnn-mnist-model" { };
  };

  # The NixOS options module.nix defines values for, as free-form stubs.
  stubs = {
    options = {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      systemd.services = mkOption {
        type = types.attrsOf freeform;
        default = { };
      };
      environment.etc = mkOption {
        type = types.attrsOf freeform;
        default = { };
      };
      services.nginx = freeformOption;
      users = freeformOption;
      networking = mkOption {
        type = types.submodule {
          freeformType = types.lazyAttrsOf types.anything;
          options.fqdnOrHostName = mkOption {
            type = types.str;
            default = "testhost";
          };
          options.firewall = freeformOption;
        };
        default = { };
      };
    };
  };

  eval = lib.evalModules {
    modules = [
      stubs
      ../../module.nix
      { _module.args.pkgs = pkgs; }
      { services.cnn-mnist = { enable = true; } // settings; }
      extraConfig
    ];
  };

  inherit (eval) config options;
  opts = options.services.cnn-mnist;

  describe = opt: {
    type = opt.type.name;
    typeDescription = opt.type.description;
    default = opt.default or null;
    hasDefaultText = opt ? defaultText;
    hasDescription = (opt.description or "") != "";
    hasExample = opt ? example;
  };
in
{
  options = {
    enable = describe opts.enable;
    package = describe opts.package // {
      default = toString opts.package.default;
    };
    host = describe opts.host;
    port = describe opts.port;
    backend = describe opts.backend // {
      values = opts.backend.type.functor.payload.values or opts.backend.type.functor.payload;
    };
    model = describe opts.model // {
      default = toString opts.model.default;
    };
    threads = describe opts.threads;
    openFirewall = describe opts.openFirewall;
    nginxEnable = describe opts.nginx.enable;
    nginxVirtualHost = describe opts.nginx.virtualHost;
    environment = describe opts.environment;
  };

  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);

  service = config.systemd.services.cnn-mnist or null;
  etc = builtins.mapAttrs (_: e: { source = toString e.source; }) config.environment.etc;
  nginx = config.services.nginx;
  firewall = config.networking.firewall;
}
