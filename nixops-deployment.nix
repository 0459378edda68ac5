# The NixOps network: cnn-mnist behind nginx on VirtualBox VMs.  NixOps 2
# (nixpkgs' nixops_unstable_full, which has the VirtualBox plugin) reads it
# from the flake (outputs.nixopsConfigurations.default), from the repository
# root:
#
#   nixops create -d cnn-mnist
#   nixops deploy -d cnn-mnist
#   nixops set-args -d cnn-mnist --arg replicas 3 && nixops deploy -d cnn-mnist
#   nixops set-args -d cnn-mnist --arg instances 2 && nixops deploy -d cnn-mnist
#
# replicas = 1: one VM, the server behind its own nginx.
# replicas = N > 1: N backend VMs and a proxy VM whose nginx spreads requests
# over them and retries a request that a stopped backend failed
# (nix/scale-out.nix).  docs/nix.md ("NixOps") says what is and is not known
# to work at the pin, and the other targets.  instances = N: N server
# processes on each machine (services.cnn-mnist.instances; memory is N times
# one process, so size the VMs' memorySize for it).
{
  replicas ? 1,
  instances ? 1,
}:

assert builtins.isInt replicas && replicas >= 1;

let
  backends = builtins.genList (i: "backend-${toString (i + 1)}") replicas;
  scaleOut = import ./nix/scale-out.nix { inherit backends instances; };

  vm = memorySize: {
    # nixops-vbox sets boot.vesa, which nixos-26.05 removed: without this,
    # every VirtualBox machine fails to evaluate (nix/nixops/vbox-boot-vesa.nix)
    imports = [ ./nix/nixops/vbox-boot-vesa.nix ];
    deployment.targetEnv = "virtualbox";
    deployment.virtualbox = {
      inherit memorySize; # MiB
      vcpu = 2;
      headless = true;
    };
    # Another target: any NixOS machine you can ssh into as root.  Replace the
    # targetEnv and virtualbox lines (and the import above) with
    #   deployment.targetEnv = "none";
    #   deployment.targetHost = "203.0.113.10";
    # and import that machine's hardware-configuration.nix.
  };

  single = {
    cnn-mnist = {
      imports = [
        ./module.nix
        (vm 4096) # TensorFlow wants a few GiB
      ];
      services.cnn-mnist = {
        enable = true;
        inherit instances;
        # backend = "jax";   # or "torch"; the package carries that backend
        # model = pkgs.cnn-mnist-model.override { epochs = 5; };
        nginx.enable = true;
        nginx.virtualHost = "cnn-mnist";
        # opens nginx's port 80; the server itself listens on 127.0.0.1 only
        openFirewall = true;
      };
    };
  };

  scaled =
    builtins.listToAttrs (
      map (name: {
        inherit name;
        value.imports = [
          scaleOut.backend
          (vm 4096)
        ];
      }) backends
    )
    // {
      proxy =
        { nodes, lib, ... }:
        {
          imports = [
            scaleOut.proxy
            (vm 1024)
          ];
          # the backends by name, at the private addresses NixOps gives them
          networking.extraHosts = lib.concatMapStrings (
            name: "${nodes.${name}.config.networking.privateIPv4} ${name}\n"
          ) backends;
        };
    };
in
{
  network = {
    description = "cnn-mnist: MNIST digit classifier behind nginx (${toString replicas} replica(s))";
    # NixOps 2 rejects a network without a state backend; "legacy" keeps the
    # state in ~/.nixops/deployments.nixops as NixOps 1 did ($NIXOPS_STATE overrides).
    storage.legacy = { };
    # without the flake (nix/nixops/nixops.nix): the nixpkgs pinned in flake.lock
    nixpkgs = (import ./default.nix).pkgs;
  };
}
// (if replicas == 1 then single else scaled)
