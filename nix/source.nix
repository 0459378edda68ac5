# The sources Nix builds from: the files each build needs, chosen by name, never
# by what happens to lie in a checkout.  `__pycache__`, editor back-ups and swap
# files, hidden files and files of any other type stay out.
#
#   import ./source.nix { root = ../.; part = "package"; }  # cnn-mnist: server, trainer, tests
#   import ./source.nix { root = ../.; part = "trainer"; }  # cnn-mnist-trainer: what training imports
#
# The trainer's part is a model's identity: every model is trained by the
# package built from it, so it holds cnn_mnist.core and cnn_mnist.training and
# nothing else.  A change to the README, a test, the page or the server leaves
# every model's store path as it was.
#
# builtins.path with a filter rather than lib.fileset: the same selection
# evaluates on Nix 2.8 (the tests' Nix) and on current Nix.
{
  root,
  part,
}:

let
  parts = {
    trainer = {
      files = [
        "LICENSE"
        "cnn_mnist/__init__.py"
      ];
      trees = {
        "cnn_mnist/core" = [ "py" ];
        "cnn_mnist/training" = [
          "py"
          "json"
        ];
      };
    };
    package = {
      files = [
        "pyproject.toml"
        "README.md"
        "LICENSE"
        "data/mnist-small.npz" # for the check phase
        "train/train.py" # the checkout's entry point, which a test runs
      ];
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
    };
  };
  inherit (parts.${part} or (throw "nix/source.nix: unknown part \"${part}\"")) files trees;

  prefix = toString root + "/";
  relative = path: builtins.substring (builtins.stringLength prefix) (-1) (toString path);
  startsWith = start: s: builtins.substring 0 (builtins.stringLength start) s == start;
  extension =
    name:
    let
      m = builtins.match ".*\\.([A-Za-z0-9]+)" name;
    in
    if m == null then "" else builtins.head m;
  # the tree a path lies in (its key in `trees`), or null
  treeOf =
    rel:
    let
      found = builtins.filter (tree: startsWith "${tree}/" rel) (builtins.attrNames trees);
    in
    if found == [ ] then null else builtins.head found;
  # a directory on the way to a chosen file or tree
  onTheWay =
    rel: builtins.any (target: startsWith "${rel}/" target || target == rel) (files ++ builtins.attrNames trees);

  wanted =
    path: type:
    let
      rel = relative path;
      name = baseNameOf (toString path);
      hidden = builtins.substring 0 1 name == "." || builtins.substring 0 1 name == "#";
      tree = treeOf rel;
    in
    if hidden || name == "__pycache__" then
      false
    else if type == "directory" then
      tree != null || onTheWay rel
    else if type != "regular" then
      false
    else
      builtins.elem rel files || (tree != null && builtins.elem (extension name) trees.${tree});
in
builtins.path {
  path = root;
  name = if part == "trainer" then "cnn-mnist-trainer-source" else "cnn-mnist-source";
  filter = wanted;
}
