# The host of nixosConfigurations.cnn-mnist: the server behind nginx on port
# 80, the firewall open for it, ssh for the deploy tools.  Hardware, boot
# loader and file systems come from the machine's own module.
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

  system.stateVersion = "25.11";
}
