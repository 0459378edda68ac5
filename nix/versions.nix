# A TensorFlow-Serving style versions directory in the store, for
# services.cnn-mnist.models and .labels:
#
#   $out/1 -> /nix/store/…-cnn-mnist-model          a trainer output directory
#   $out/2/model.keras -> /nix/store/…-model.keras   a single .keras/.h5 file
#   $out/stable -> 2                                 a label: a relative link
#
# The server treats every symlink in the directory as a label.
{ runCommandLocal, lib }:
{
  # { "1" = model; … }: a trainer output directory, or a .keras/.h5 file
  models,
  # { stable = "2"; … }
  labels ? { },
}:

let
  linkVersion = version: model: "link_version ${lib.escapeShellArgs [ version "${model}" ]}";
  linkLabel = label: version: "ln -s ${lib.escapeShellArg version} \"$out\"/${lib.escapeShellArg label}";
in
runCommandLocal "cnn-mnist-versions" { } ''
  mkdir "$out"
  link_version() {
    if [ -d "$2" ]; then
      ln -s "$2" "$out/$1"
    elif [ -f "$2" ]; then
      mkdir "$out/$1"
      case "$2" in
        *.keras) ln -s "$2" "$out/$1/model.keras" ;;
        *.h5) ln -s "$2" "$out/$1/model.h5" ;;
        *) echo "cnn-mnist versions: version $1: $2 is neither a .keras nor a .h5 file" >&2; exit 1 ;;
      esac
    else
      echo "cnn-mnist versions: version $1: $2 does not exist" >&2
      exit 1
    fi
  }
  ${lib.concatStringsSep "\n" (lib.mapAttrsToList linkVersion models)}
  ${lib.concatStringsSep "\n" (lib.mapAttrsToList linkLabel labels)}
''
