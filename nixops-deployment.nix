# nixops deployment of cnn-mnist behind nginx on a VirtualBox VM:
#
#   nixops create -d cnn-mnist nixops-deployment.nix \
#     -I nixpkgs=$(nix-instantiate --eval -A nixpkgsPath | tr -d '"')
#   nixops deploy -d cnn-mnist
#   nixops info -d cnn-mnist        # shows the VM's IP address
#   curl http://<that address>/healthz
#
# (-I nixpkgs=… uses the nixpkgs pinned in flake.lock; without it nixops uses
# the nixpkgs on NIX_PATH.)
{
  network.description = "cnn-mnist: MNIST digit classifier behind nginx";

  cnn-mnist =
    { config, pkgs, ... }:
    {
      imports = [ ./module.nix ];
      nixpkgs.overlays = [ (import ./nix/overlay.nix) ];

      deployment.targetEnv = "virtualbox";
      deployment.virtualbox = {
        memorySize = 4096; # MiB; TensorFlow wants a few GiB
        vcpu = 2;
        headless = true;
      };

      # Another target: any machine running NixOS that you can ssh into as
      # root.  Replace the three lines above with
      #   deployment.targetEnv = "none";
      #   deployment.targetHost = "203.0.113.10";
      # and import that machine's hardware-configuration.nix here.
      # (Cloud backends work the same way, e.g. targetEnv = "ec2" with the
      # deployment.ec2.* options.)

      services.cnn-mnist = {
        enable = true;
        # backend = "jax";   # or "torch"; the package carries that backend
        # model = pkgs.cnn-mnist-model.override { epochs = 5; };
        nginx.enable = true;
        nginx.virtualHost = "cnn-mnist";
        # opens nginx's port 80; the server itself listens on 127.0.0.1 only
        openFirewall = true;
      };
    };
}
