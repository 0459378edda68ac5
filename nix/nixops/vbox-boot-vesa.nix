# nixops-vbox vs. nixos-26.05: every VirtualBox machine imports the plugin's
# virtualbox-image-nixops.nix, which sets `boot.vesa = false;`.  nixpkgs
# PR #518397 (in 26.05) removed boot.vesa with lib.mkRemovedOptionModule,
# which keeps the option declared and adds an assertion that fails whenever it
# is *defined*, false included: "The option definition `boot.vesa' in … no
# longer has any effect; please remove it."  So every nixops-vbox machine
# fails to evaluate at the pin.
#
# A removed option cannot be un-removed or overridden (its value throws when
# read, and the assertion tests `isDefined`, which no priority changes).  This
# module drops that one assertion instead, and only while every definition of
# boot.vesa is `false`, i.e. the no-op the plugin sets (false was the old
# default and nothing in 26.05 reads the option).  `boot.vesa = true`, set by
# anyone, still fails with nixpkgs' message.  It declares `assertions` a
# second time with only an `apply`, which the module system merges (NixOS's
# own declaration has none).  With nixpkgs before the removal, or without a
# boot.vesa option at all, it changes nothing.
#
# Imported by the VirtualBox machines of ../../nixops-deployment.nix; drop it
# once nixops-vbox no longer sets the option.
{ lib, options, ... }:

let
  vesa = options.boot.vesa or null;
  onlyFalse = vesa != null && vesa.isDefined && lib.all (value: value == false) vesa.definitions;
  isVesaRemoval =
    assertion: lib.hasPrefix "The option definition `boot.vesa' " (assertion.message or "");
in
{
  options.assertions = lib.mkOption {
    apply = assertions: if onlyFalse then builtins.filter (a: !isVesaRemoval a) assertions else assertions;
  };
}
