{
  description = "A Keras ConvNet trained on MNIST as a reproducible Nix build, served over HTTP";

  # A stable NixOS release, pinned in flake.lock (docs/nix-pin.md has the
  # evidence for the rev); default.nix reads the same lock (nix/lock.nix).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      # one nixpkgs per system, shared by every output
      forAllSystems = f: lib.genAttrs systems (system: f pkgsBySystem.${system});
      pkgsBySystem = lib.genAttrs systems pkgsFor;
      # NixOS VM tests need KVM (their derivations require the `kvm` and
      # `nixos-test` system features); they run on x86_64-linux builders only.
      vmTestSystems = [ "x86_64-linux" ];
      backends = [
        "tensorflow"
        "jax"
        "torch"
      ];
      pkgsFor =
        system:
        import nixpkgs {
          inherit system;
          config = { };
          overlays = [ self.overlays.default ];
        };
      outputsFor = pkgs: import ./nix/packages.nix { inherit pkgs; };
      outputsBySystem = lib.genAttrs systems (system: outputsFor pkgsBySystem.${system});

      # A whole host: the module behind nginx with the firewall open.  The
      # machine's own hardware, file systems and boot loader come from
      # `hardware` (a module or a path to one).
      mkHost =
        {
          hardware,
          system ? "x86_64-linux",
        }:
        nixpkgs.lib.nixosSystem {
          inherit system;
          modules = [
            self.nixosModules.default
            ./nix/host.nix
            hardware
          ];
        };
    in
    {
      overlays.default = import ./nix/overlay.nix;

      # No nixpkgs.overlays here, so that it works with read-only pkgs
      # (nixpkgs.pkgs, readOnlyPkgs, runNixOSTest): the package is
      # pkgs.cnn-mnist when an overlay provides it, else this flake's own.
      nixosModules.default =
        { lib, pkgs, ... }:
        let
          own = self.packages.${pkgs.stdenv.hostPlatform.system} or { };
        in
        {
          imports = [ ./module.nix ];
          services.cnn-mnist.package = lib.mkIf (!(pkgs ? cnn-mnist) && own ? cnn-mnist) (
            lib.mkDefault own.cnn-mnist
          );
          services.cnn-mnist.model = lib.mkIf (!(pkgs ? cnn-mnist-model) && own ? model) (
            lib.mkDefault own.model
          );
        };

      lib = { inherit mkHost; };

      # nixos-rebuild switch --flake .#cnn-mnist --target-host root@HOST,
      # nixos-anywhere and deploy-rs; hardware-configuration.nix (git add it)
      # is the machine's own, from nixos-generate-config, plus its boot loader.
      # Without it the host evaluates with nix/no-hardware.nix, a placeholder
      # whose build fails saying so: `nix flake check` (which evaluates the
      # toplevel, never builds it) passes on a fresh clone, and every deploy,
      # which builds the toplevel first, stops before anything is copied.
      nixosConfigurations.cnn-mnist = mkHost {
        hardware =
          if builtins.pathExists ./hardware-configuration.nix then
            ./hardware-configuration.nix
          else
            ./nix/no-hardware.nix;
      };

      # NixOps 2 reads this from the repository root (nixops-deployment.nix;
      # `nixops set-args --arg replicas 3` passes the argument).
      nixopsConfigurations.default =
        args: import ./nixops-deployment.nix args // { inherit nixpkgs; };

      packages = forAllSystems (
        pkgs:
        let
          out = outputsFor pkgs;
        in
        {
          default = out.frontend;
          inherit (out) cnn-mnist model dockerImage;
          model-quick = out.models.quick;
          docker-jax = out.dockerImages.jax;
          docker-torch = out.dockerImages.torch;
        }
      );

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = lib.getExe (outputsFor pkgs).serve;
          meta.description = "Serve the default cnn-mnist model";
        };
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            (pkgs.python3.withPackages (
              ps:
              pkgs.cnn-mnist.pythonDependencies
              ++ [
                ps.jupyterlab
                ps.tensorboard
                ps.pytest
                ps.setuptools
              ]
            ))
            pkgs.nixfmt-tree
          ];
          shellHook = ''
            export MPLCONFIGDIR="$PWD/.cache/matplotlib" KERAS_HOME="$PWD/.cache/keras"
            export PYTHONPATH="$PWD''${PYTHONPATH:+:$PYTHONPATH}"
          '';
        };
      });

      checks = forAllSystems (pkgs: {
        # the package's pytest suite (pytestCheckHook runs in its check phase)
        pytest = pkgs.cnn-mnist;
        # trains, tests and gates a model: its build fails below the floor (0.9)
        model-quick = (outputsFor pkgs).models.quick;
        nixos = import ./nix/nixos-test.nix { inherit pkgs; };
        nixos-scale-out = import ./nix/nixos-test-scale-out.nix { inherit pkgs; };
      });

      # Hydra (a jobset of type "Flake"), and `nix build .#hydraJobs.<job>`:
      # <job>.<system>, system last as in nixpkgs' release.nix.  The full
      # models require the `big-parallel` system feature (model.nix), so Hydra
      # and --builders send them to a machine that offers it (docs/nix.md).
      # bestModel is left out: it reads accuracy.txt during evaluation
      # (import-from-derivation), i.e. trains five models inside the evaluator.
      hydraJobs = {
        # the server and trainer, each with one backend's libraries only
        cnn-mnist = lib.genAttrs backends (
          backend:
          lib.genAttrs systems (system: outputsBySystem.${system}.frontend.override { inherit backend; })
        );
        # the full-dataset model per backend, and the quick one (1 epoch on the
        # bundled subset, as checks.model-quick; no system feature)
        models = lib.genAttrs (backends ++ [ "quick" ]) (
          name: lib.genAttrs systems (system: outputsBySystem.${system}.models.${name})
        );
        tests = lib.genAttrs [ "nixos" "nixos-scale-out" ] (
          test: lib.genAttrs vmTestSystems (system: self.checks.${system}.${test})
        );
      };

      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);
    };
}
