# The flake's outputs with stand-ins for its nixpkgs input: nixpkgs' real lib,
# a stub nixosSystem, and fake packages.  The NixOS modules it yields are
# evaluated by module-eval.nix.
#
#   nix-instantiate --eval --strict --json tests/nix/flake-eval.nix \
#     --argstr nixpkgsLib "$NIXPKGS_LIB" -A report
#
# The stand-in nixpkgs is this file: the flake's `import nixpkgs { system;
# config; overlays; }` lands in the first branch below, which applies the
# overlays to an empty set.  The overlay it gets is `fakeOverlay` (passed as
# the flake's self.overlays.default), so `packages`, `checks` and `hydraJobs`
# evaluate to fake derivations that carry what the real ones would be built
# from (backend, override arguments, requiredSystemFeatures, system).
#
# nixosSystem evaluates the modules with the real lib.evalModules, NixOS's
# options declared free-form, and a system.build.toplevel that behaves like
# NixOS's: forcing it throws on a failed assertion and prints the warnings;
# its build would depend on system.checks (kept as `passedChecks`).
#
# root: the checkout whose flake.nix is evaluated (a test passes a copy with a
# hardware-configuration.nix).
{
  nixpkgsLib ? null,
  root ? ../..,
  ...
}@args:

if args ? overlays then
  # `import nixpkgs { … }`
  let
    final = builtins.foldl' (prev: overlay: prev // overlay final prev) {
      inherit (args) system;
    } args.overlays;
  in
  final
else

  let
    libRoot = /. + nixpkgsLib;
    lib =
      if builtins.pathExists (libRoot + "/lib/default.nix") then
        import (libRoot + "/lib")
      else
        import libRoot;
    inherit (lib) mkOption types;

    fakeDrv = name: {
      type = "derivation";
      inherit name;
      outPath = "/nix/store/0000000000000000000000000000000-${name}";
    };

    # --- the package set `import nixpkgs` yields --------------------------------

    fakeOverlay = final: prev: {
      inherit lib;
      stdenv.hostPlatform.system = prev.system;
      cnn-mnist = fakePackage prev.system "tensorflow";
      cnn-mnist-model = fakeModel prev.system { };
      writeShellApplication = a: fakeDrv a.name // { meta.mainProgram = a.name; };
      callPackage = file: a: fakeDrv "called-${baseNameOf file}";
      runCommand = name: env: script: fakeDrv name;
      runCommandLocal = name: env: script: fakeDrv name;
      python3.withPackages = f: fakeDrv "python3-env";
      mkShell = a: fakeDrv "nix-shell";
      curl = fakeDrv "curl";
      coreutils = fakeDrv "coreutils";
      nixfmt-tree = fakeDrv "nixfmt-tree";
      # what runTest's derivations require of a builder
      testers.runNixOSTest =
        test:
        fakeDrv "vm-test-run-${test.name}"
        // {
          inherit (prev) system;
          inherit test;
          requiredSystemFeatures = [
            "kvm"
            "nixos-test"
          ];
        };
    };

    fakePackage =
      system: backend:
      fakeDrv "cnn-mnist-${backend}"
      // {
        inherit system backend;
        version = "0.1.0";
        meta.mainProgram = "cnn-mnist";
        override = a: fakePackage system (a.backend or backend);
      };

    # model.nix's contract: `requiredSystemFeatures ? [ "big-parallel" ]`,
    # passed through to the derivation; overrides accumulate
    fakeModel =
      system: overrides:
      fakeDrv "cnn-mnist-model"
      // {
        inherit system overrides;
        backend = overrides.backend or "tensorflow";
        requiredSystemFeatures = overrides.requiredSystemFeatures or [ "big-parallel" ];
        override = more: fakeModel system (overrides // more);
      };

    # --- nixosSystem ---------------------------------------------------------------

    freeform = types.submodule { freeformType = types.lazyAttrsOf types.anything; };
    freeformOption = mkOption {
      type = freeform;
      default = { };
    };

    # NixOS's options, as far as the host's modules set them: free-form, with
    # assertions, warnings, system.checks and system.build.toplevel as NixOS
    # has them (nixos/modules/misc/assertions.nix, system/activation/top-level.nix)
    nixosStubs =
      { config, ... }:
      {
        config._module.freeformType = types.lazyAttrsOf types.anything;
        options = {
          assertions = mkOption {
            type = types.listOf types.unspecified;
            default = [ ];
          };
          warnings = mkOption {
            type = types.listOf types.str;
            default = [ ];
          };
          system = mkOption {
            type = types.submodule {
              freeformType = types.lazyAttrsOf types.anything;
              options.checks = mkOption {
                type = types.listOf types.unspecified;
                default = [ ];
              };
              options.build = mkOption {
                type = types.lazyAttrsOf types.unspecified;
                default = { };
              };
            };
            default = { };
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
          services.nginx = freeformOption;
          services.openssh = freeformOption;
          services.postgresql = freeformOption;
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
        config.system.build.toplevel =
          let
            failed = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
          in
          if failed != [ ] then
            throw "\nFailed assertions:\n${lib.concatMapStrings (m: "- ${m}\n") failed}"
          else
            lib.showWarnings config.warnings (
              fakeDrv "nixos-system-${config.networking.hostName or "nixos"}"
              // {
                passedChecks = config.system.checks;
              }
            );
      };

    nixosSystem =
      nixosArgs:
      let
        eval = lib.evalModules {
          modules = nixosArgs.modules ++ [
            nixosStubs
            { _module.args.pkgs = readOnlyPkgs; }
          ];
        };
      in
      {
        nixosSystemArgs = nixosArgs;
        inherit (eval) config options;
      };

    # nixpkgs as nixosSystem gets it: no overlay, so no pkgs.cnn-mnist.  The
    # scripts of runCommandLocal are kept, so that tests can run them.
    readOnlyPkgs = {
      inherit lib;
      stdenv.hostPlatform.system = "x86_64-linux";
      coreutils = fakeDrv "coreutils";
      runCommandLocal = name: env: script: fakeDrv name // { inherit env script; };
      callPackage = file: a: fakeDrv "called-${baseNameOf file}";
    };

    # --- the flake ---------------------------------------------------------------

    nixpkgs = {
      lib = lib // {
        inherit nixosSystem;
      };
      # `import nixpkgs` comes back to this file (see the top)
      outPath = toString ./flake-eval.nix;
    };

    flake = import (root + "/flake.nix");
    outputs = flake.outputs {
      inherit nixpkgs;
      self = outputs // {
        overlays.default = fakeOverlay;
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
        cnn-mnist-model.override =
          a:
          fakeDrv "cnn-mnist-model-quick"
          // {
            args = a;
            override = b: fakeDrv "cnn-mnist-model-quick-seed-${toString b.seed}";
          };
        curl = fakeDrv "curl";
      };
    };
    machines = replicas: builtins.removeAttrs (network replicas) [ "network" "nixpkgs" ];

    # What `nix flake check` does with a NixOS configuration: force
    # config.system.build.toplevel and check that it is a derivation, without
    # building it.  A deploy builds it, and with it every system.checks entry.
    toplevelOf =
      host:
      let
        toplevel = host.config.system.build.toplevel;
      in
      {
        isDerivation = (toplevel.type or null) == "derivation";
        warnings = host.config.warnings;
        passedChecks = map (c: {
          inherit (c) name;
          script = c.script or null;
          env = c.env or { };
        }) toplevel.passedChecks;
      };

    # hydraJobs down to the jobs; like `nix flake check`, it fails on anything
    # that is neither an attribute set nor a derivation
    describeJobs = builtins.mapAttrs (
      name: value:
      if !(builtins.isAttrs value) then
        throw "hydraJobs: ${name} is a ${builtins.typeOf value}, not an attribute set"
      else if (value.type or null) == "derivation" then
        {
          job = {
            inherit (value) name;
            system = value.system or null;
            backend = value.backend or null;
            requiredSystemFeatures = value.requiredSystemFeatures or [ ];
            overrides = builtins.mapAttrs (
              _: v: if builtins.isPath v then baseNameOf v else v
            ) (value.overrides or { });
          };
        }
      else
        describeJobs value
    );

    # nixops-vbox at nixos-26.05: the plugin's image module sets boot.vesa,
    # which 26.05's kernel.nix removes with lib.mkRemovedOptionModule (the
    # real one, from nixpkgsLib)
    vbox = {
      removedVesa = lib.mkRemovedOptionModule [
        "boot"
        "vesa"
      ] "The `boot.vesa` option has been removed; set boot.kernelParams = [ \"vga=0x317\" \"nomodeset\" ] directly.";
      pluginSetsVesa = {
        boot.vesa = false;
      };
      userSetsVesa = {
        boot.vesa = true;
      };
    };

    # module-eval.nix declares only what module.nix sets; the host sets these too
    hostStubs = {
      options.fileSystems = freeformOption;
      options.boot = freeformOption;
      options.warnings = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
    };
  in
  {
    inherit
      outputs
      network
      machines
      scaleOutTest
      readOnlyPkgs
      hostStubs
      vbox
      toplevelOf
      ;

    report = {
      inputUrl = flake.inputs.nixpkgs.url;
      outputNames = builtins.attrNames outputs;
      host = {
        inherit (outputs.nixosConfigurations.cnn-mnist.nixosSystemArgs) system;
        modules = map (
          m: if builtins.isPath m then baseNameOf m else builtins.typeOf m
        ) outputs.nixosConfigurations.cnn-mnist.nixosSystemArgs.modules;
      };
      # `nix flake check` on every nixosConfigurations.*
      toplevels = builtins.mapAttrs (_: toplevelOf) outputs.nixosConfigurations;
      checks = builtins.attrNames (outputs.checks.x86_64-linux or { });
      hydraJobs = describeJobs outputs.hydraJobs;
      hydraJobsIsDerivation = (outputs.hydraJobs.type or null) == "derivation";
      stubNixpkgs = nixpkgs.outPath;
      networks = lib.genAttrs [ "1" "3" ] (n: {
        network = builtins.removeAttrs (network (lib.toInt n)).network [ "nixpkgs" ];
        hasNetworkNixpkgs = (network (lib.toInt n)).network ? nixpkgs;
        flakeNixpkgs = (network (lib.toInt n)).nixpkgs.outPath;
        machines = builtins.attrNames (machines (lib.toInt n));
      });
    };
  }
