# The host of nixosConfigurations.cnn-mnist: the server behind nginx on port
# 80, the firewall open for it, ssh for the deploy tools.  Hardware, boot
# loader and file systems come from the machine's own module
# (hardware-configuration.nix; nix/no-hardware.nix until there is one).
{ lib, ... }:
{
  services.cnn-mnist = {
    enable = true;
    nginx.enable = true;
    nginx.virtualHost = "cnn-mnist";
    openFirewall = true;
  };
  # answer on the machine's address too, whatever the Host header
  services.nginx.virtualHosts.cnn-mnist.default = lib.mkDefault true;
  networking.hostName = lib.mkDefault "cnn-mnist";
  networking.firewall.enable = true;

  services.openssh = {
    enable = true;
    settings.PasswordAuthentication = false;
  };

  # The release this host was first deployed with (the pin was nixos-25.11
  # then).  It is not the nixpkgs version and must not follow the pin: a
  # machine keeps the stateVersion it was installed with.  A new machine may
  # set its own in its hardware module (e.g. "26.05").
  system.stateVersion = lib.mkDefault "25.11";
}
