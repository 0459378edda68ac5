{
  description = "A Keras ConvNet trained on MNIST as a reproducible Nix build, served over HTTP";

  # Pinned in flake.lock; default.nix reads the same lock (nix/lock.nix).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

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
    in
    {
      overlays.default = import ./nix/overlay.nix;

      nixosModules.default = {
        imports = [ ./module.nix ];
        nixpkgs.overlays = [ self.overlays.default ];
      };

      packages = forAllSystems (
        pkgs:
        let
          out = outputsFor pkgs;
        in
        {
          default = out.frontend;
          inherit (out) cnn-mnist model dockerImage;
          model-quick = out.models.quick;
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
        nixos = import ./nix/nixos-test.nix { inherit pkgs; };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);
    };
}
