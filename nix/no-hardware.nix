# Stands in for hardware-configuration.nix until the machine has one.
#
# nixosConfigurations.cnn-mnist *evaluates* with it, so `nix flake check`
# (which forces config.system.build.toplevel to a derivation but does not
# build it) passes on a fresh clone.  It cannot be *built*: system.checks
# holds a derivation that fails with the message below, and the system's
# build depends on it.  Every deploy builds the toplevel before it copies or
# activates anything (nixos-rebuild, nixos-anywhere, deploy-rs, `nix build
# .#nixosConfigurations.cnn-mnist.config.system.build.toplevel`), so a machine
# never receives the placeholder file system and boot loader below; they exist
# only to satisfy NixOS's evaluation-time assertions.
{ pkgs, ... }:

let
  # Nix shows the last 10 lines of a failed build's log: keep it shorter.
  message = ''
    nixosConfigurations.cnn-mnist needs the machine's hardware-configuration.nix beside
    flake.nix; without it the flake has only a placeholder (nix/no-hardware.nix) that
    evaluates but refuses to build.  On the machine, run
      nixos-generate-config --show-hardware-config > hardware-configuration.nix
    (or let nixos-anywhere write it: --generate-hardware-config), add the boot loader
    to it (e.g. boot.loader.systemd-boot.enable = true; or boot.loader.grub.device),
    and `git add` it.  Or call cnn-mnist.lib.mkHost { hardware = ./hardware.nix; }.
  '';
in
{
  # placeholders, never deployed (see above)
  fileSystems."/" = {
    device = "/dev/disk/by-label/placeholder-see-nix-no-hardware.nix";
    fsType = "ext4";
  };
  boot.loader.grub.device = "nodev";

  warnings = [
    "nixosConfigurations.cnn-mnist has no hardware-configuration.nix: it evaluates with the placeholder nix/no-hardware.nix, whose build fails on purpose."
  ];

  system.checks = [
    (pkgs.runCommandLocal "cnn-mnist-needs-hardware-configuration" { inherit message; } ''
      printf '%s' "$message" >&2
      exit 1
    '')
  ];
}
