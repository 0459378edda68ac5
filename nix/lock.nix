# Read a flake input from flake.lock without flakes, as flake-compat does, so
# that `nix-build` (default.nix) and `nix build` (flake.nix) use the very same
# nixpkgs.  Pure and builtins-only:
#
#   (import ./lock.nix { lockFile = ../flake.lock; }).nixpkgs
#     => { url; sha256; rev; narHash; ... }   (arguments for builtins.fetchTarball)
{
  lockFile,
  # the root's inputs to resolve
  inputs ? [ "nixpkgs" ],
}:
let
  lock = builtins.fromJSON (builtins.readFile lockFile);
  root = lock.nodes.${lock.root};

  resolve =
    name:
    let
      nodeName = root.inputs.${name} or (throw "flake.lock: the root has no input '${name}'");
      node = lock.nodes.${nodeName};
      locked = node.locked;
    in
    if builtins.isList nodeName then
      throw "flake.lock: input '${name}' follows another input; lock.nix does not resolve follows"
    else if locked.type != "github" then
      throw "flake.lock: input '${name}' is of type '${locked.type}', only 'github' is supported"
    else
      locked
      // {
        # flake-compat fetches github inputs the same way: the archive of the
        # locked revision, checked against the lock's NAR hash.
        url = "https://github.com/${locked.owner}/${locked.repo}/archive/${locked.rev}.tar.gz";
        sha256 = locked.narHash;
      };
in
if (lock.version or 0) < 5 then
  throw "flake.lock: unsupported lock file version ${toString (lock.version or 0)}"
else
  builtins.listToAttrs (
    map (name: {
      inherit name;
      value = resolve name;
    }) inputs
  )
