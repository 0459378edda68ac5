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
  # configuration that needs the fake packages: fakes: { … }
  withFakes ? (fakes: { }),
  # the NixOS modules to evaluate (the flake passes nixosModules.default)
  modules ? [ ../../module.nix ],
  # pkgs as nixpkgs would pass it; the default carries the project's overlay
  pkgs ? null,
  # whether the scenario enables services.cnn-mnist (null: leave it to `modules`)
  enable ? true,
  # NixOps' `nodes` module argument: the other machines' configurations
  nodes ? { },
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
  # like a buildPythonApplication result: passthru is merged into the derivation
  fakePackage =
    backend:
    fakeDrv "cnn-mnist-${backend}" {
      version = "0.1.0";
      meta.mainProgram = "cnn-mnist";
      inherit backend;
      passthru = { inherit backend; };
      override = args: fakePackage (args.backend or backend);
    };
  fakes = {
    inherit fakeDrv fakePackage;
    # what overridePythonAttrs returns: no `.override`
    withoutOverride =
      backend: builtins.removeAttrs (fakePackage backend) [ "override" ] // { name = "cnn-mnist-${backend}-custom"; outPath = "${store}-cnn-mnist-${backend}-custom"; };
    # a derivation that says nothing about its backend
    plain = fakeDrv "my-cnn-mnist" { meta.mainProgram = "cnn-mnist"; };
  };

  fakePkgs = {
    inherit lib;
    coreutils = fakeDrv "coreutils" { };
    util-linux = fakeDrv "util-linux" { };
    # the script is kept, so that the tests can read it
    writeShellApplication =
      { name, text, ... }:
      fakeDrv name {
        inherit text;
        meta.mainProgram = name;
      };
    cnn-mnist = fakePackage "default";
    cnn-mnist-model = fakeDrv "cnn-mnist-model" { };
    # the script is kept, so that the tests can run it; like a real
    # derivation, its output path changes with the script
    runCommandLocal =
      name: env: script:
      fakeDrv name {
        inherit script;
        outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" script)}-${name}";
      };
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
      environment.systemPackages = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      # the VM tests' virtualisation.* and specialisation.*
      virtualisation = freeformOption;
      specialisation = freeformOption;
      services.nginx = freeformOption;
      services.postgresql = freeformOption;
      services.openssh = freeformOption;
      system = freeformOption;
      # NixOps' deployment.* (nixops and its VirtualBox plugin)
      deployment = freeformOption;
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
    modules = modules ++ [
      stubs
      { _module.args.pkgs = if pkgs == null then fakePkgs else pkgs; }
      { _module.args.nodes = nodes; }
      { services.cnn-mnist = lib.optionalAttrs (enable != null) { inherit enable; } // settings; }
      extraConfig
      (withFakes fakes)
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
    instances = describe opts.instances;
    models = describe opts.models;
    labels = describe opts.labels;
    canary = describe opts.canary;
  }
  // lib.genAttrs [
    "maxBodyBytes"
    "drainSeconds"
    "connectionLimit"
    "channelTimeout"
    "minAccuracy"
    "maxRegression"
  ] (name: describe opts.${name})
  // {
    openFirewall = describe opts.openFirewall;
    nginxEnable = describe opts.nginx.enable;
    nginxVirtualHost = describe opts.nginx.virtualHost;
    environment = describe opts.environment;
    correctionsEnable = describe opts.corrections.enable;
    correctionsDatabase = describe opts.corrections.database;
    correctionsPerMinute = describe opts.corrections.perMinute;
  };

  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);

  service = config.systemd.services.cnn-mnist or null;
  # every unit, by name (instances > 1: cnn-mnist-1 …)
  services = config.systemd.services;
  etc = builtins.mapAttrs (_: e: { source = toString e.source; }) config.environment.etc;
  # the versions directory's build script, when `models` is set
  versionsScript = config.environment.etc."cnn-mnist/model".source.script or null;
  nginx = config.services.nginx;
  postgresql = config.services.postgresql;
  users = config.users;
  # the programs the module puts on the system's PATH: name and script
  systemPackages = map (p: {
    inherit (p) name;
    text = p.text or null;
  }) config.environment.systemPackages;
  firewall = config.networking.firewall;
  extraHosts = config.networking.extraHosts or null;
}
