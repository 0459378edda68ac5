# The package's source: the files the build needs, chosen by name, never by
# what happens to lie in a checkout.  `__pycache__`, editor back-ups and swap
# files, hidden files and files of any other type stay out, so the source hash
# (and with it every model) depends only on the project's own files.
#
# builtins.path with a filter rather than lib.fileset: the same selection
# evaluates on Nix 2.8 (the tests' Nix) and on current Nix.
#
#   import ./source.nix { root = ../.; }
{ root }:

let
  # top-level files, by name
  files = [
    "pyproject.toml"
    "README.md"
    "LICENSE"
    "data/mnist-small.npz" # for the check phase
  ];
  # directories taken with the file types the package and its checks use
  trees = {
    # code, the shared defaults, the page, the canary set
    cnn_mnist = [
      "py"
      "json"
      "html"
      "js"
      "css"
      "svg"
      "png"
      "ico"
      "npz"
    ];
    tests = [ "py" ]; # for the check phase
  };

  prefix = toString root + "/";
  relative = path: builtins.substring (builtins.stringLength prefix) (-1) (toString path);
  components = path: builtins.filter builtins.isString (builtins.split "/" (relative path));
  extension =
    name:
    let
      m = builtins.match ".*\\.([A-Za-z0-9]+)" name;
    in
    if m == null then "" else builtins.head m;

  wanted =
    path: type:
    let
      parts = components path;
      top = builtins.head parts;
      name = baseNameOf (toString path);
      hidden = builtins.substring 0 1 name == "." || builtins.substring 0 1 name == "#";
    in
    if hidden || name == "__pycache__" then
      false
    else if type == "directory" then
      trees ? ${top} || builtins.any (file: builtins.head (components (prefix + file)) == top) files
    else if trees ? ${top} && builtins.length parts > 1 then
      builtins.elem (extension name) trees.${top}
    else
      builtins.elem (relative path) files;
in
builtins.path {
  path = root;
  name = "source";
  filter = path: type: (type == "directory" || type == "regular") && wanted path type;
}
