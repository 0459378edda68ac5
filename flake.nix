{
  description = "A Keras ConvNet trained on MNIST as a reproducible Nix build, served over HTTP";

  # A stable NixOS release, pinned in flake.lock (see the README's evidence
  # table); default.nix reads the same lock (nix/lock.nix).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f (pkgsFor system));
      pkgsFor =
        system:
        import nixpkgs {
          inherit system;
          config = { };
          overlays = [ self.overlays.default ];
        };
      outputsFor = pkgs: import ./nix/packages.nix { inherit pkgs; };

      # A whole host: the module behind nginx with the firewall open.  The
      # machine's own hardware and file systems come from `hardware`.
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
      # is the machine's own, from nixos-generate-config.
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

      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);
    };
}
