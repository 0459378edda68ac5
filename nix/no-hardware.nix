# Stands in for hardware-configuration.nix until the machine has one, and says
# how to get it (the README's "Nix" section has the deploy commands).
{
  assertions = [
    {
      assertion = false;
      message = ''
        nixosConfigurations.cnn-mnist needs the machine's hardware-configuration.nix
        beside flake.nix: run `nixos-generate-config --show-hardware-config` on the
        machine (or let nixos-anywhere do it with --generate-hardware-config),
        save it as hardware-configuration.nix and `git add` it.  Another flake can
        instead call cnn-mnist.lib.mkHost { hardware = ./its-hardware.nix; }.
      '';
    }
  ];
}
