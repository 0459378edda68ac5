# The documented services.cnn-mnist.* options of ../../module.nix, from its own
# declarations, as nixpkgs' nixosOptionsDoc reads them (lib.evalModules, then
# lib.optionAttrSetToDocList), without the rest of nixpkgs or NixOS:
# docs/generate_reference.py renders them into docs/reference/options.md.
#
#   nix-instantiate --eval --strict --json tests/nix/options-doc.nix \
#     --argstr nixpkgsLib "$NIXPKGS_LIB"
#
# nixpkgsLib: a nixpkgs checkout (containing lib/) or its lib/ directory.
#
# A list sorted by name of { name, type, default, example, description,
# readOnly }: `type` is the type's description, `default` and `example` are
# nixosOptionsDoc's { _type = "literalExpression" (or "literalMD"); text; } or
# null.  No `declarations`: they are absolute paths of this checkout.
{ nixpkgsLib }:

let
  root = /. + nixpkgsLib;
  lib = if builtins.pathExists (root + "/lib/default.nix") then import (root + "/lib") else import root;
  inherit (lib) mkOption types;

  freeformOption = mkOption {
    type = types.submodule { freeformType = types.lazyAttrsOf types.anything; };
    default = { };
  };

  # The NixOS options module.nix defines values for, as free-form stubs (the
  # service stays disabled: only the declarations are read).
  stubs = {
    options = {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      environment = freeformOption;
      systemd = freeformOption;
      services.nginx = freeformOption;
      services.postgresql = freeformOption;
      networking = freeformOption;
      users = freeformOption;
    };
  };

  eval = lib.evalModules {
    modules = [
      ../../module.nix
      stubs
      {
        # A default that needs packages must say what it is in a defaultText.
        _module.args.pkgs = throw "tests/nix/options-doc.nix: an option's default needs pkgs; give the option a defaultText";
      }
    ];
  };

  prefix = "services.cnn-mnist.";
  documented = builtins.filter (
    o: o.visible && !o.internal && lib.hasPrefix prefix o.name
  ) (lib.optionAttrSetToDocList eval.options.services.cnn-mnist);

  rendered = value: if value == null then null else { inherit (value) _type text; };
in
lib.sort (a: b: a.name < b.name) (
  map (o: {
    inherit (o) name readOnly;
    type = o.type;
    description = if o.description == null then null else lib.removeSuffix "\n" o.description;
    default = rendered (o.default or null);
    example = rendered (o.example or null);
  }) documented
)
