# The Keras backends the Nix layer builds for, and its one refusal of the rest.
{ lib }:

let
  supported = [
    "tensorflow"
    "jax"
    "torch"
  ];
in
rec {
  inherit supported;
  # why Theano is refused, for assertions (module.nix) and `check`
  theanoRefusal =
    what:
    "${what}: backend \"theano\" is not supported: Keras 3 removed the Theano backend (Theano itself is unmaintained since 2017). Use one of: ${lib.concatStringsSep ", " supported}.";
  # `assert check "what" backend;`: `what` names the caller in the message
  check =
    what: backend:
    assert lib.assertMsg (backend != "theano") (theanoRefusal what);
    assert lib.assertMsg (builtins.elem backend supported)
      "${what}: unknown backend \"${backend}\"; use one of: ${lib.concatStringsSep ", " supported}.";
    true;
}
