# Everything default.nix and flake.nix expose, for one package set `pkgs`
# (nixpkgs with ./overlay.nix applied).
{
  pkgs,
  # seeds that `bestModel` trains and chooses from
  bestModelSeeds ? [
    0
    1
    2
    3
    4
  ],
}:

let
  inherit (pkgs) lib;
  selectBest = import ./best-model.nix;

  model = pkgs.cnn-mnist-model;
  frontend = pkgs.cnn-mnist;

  models = {
    tensorflow = model.override { backend = "tensorflow"; };
    jax = model.override { backend = "jax"; };
    torch = model.override { backend = "torch"; };
    quick = model.override (import ./quick-model.nix);
  };

  # Pylightnix's `match_best` in Nix: train one model per seed, read each
  # accuracy.txt (import-from-derivation) and keep the most accurate of those
  # that reach `base`'s floor.  The candidates are built without the gate, so
  # one seed below the floor is skipped instead of failing the whole choice.
  bestModelOf =
    base: seeds:
    (selectBest { minAccuracy = base.minAccuracy or 0; } (
      map (
        seed:
        let
          candidate = base.override {
            inherit seed;
            minAccuracy = 0;
          };
        in
        {
          inherit seed;
          model = candidate;
          accuracy = builtins.readFile "${candidate}/accuracy.txt";
        }
      ) seeds
    )).model;

  # `nix run`: serve the default model unless MODEL says otherwise
  serve = pkgs.writeShellApplication {
    name = "cnn-mnist-serve";
    text = ''
      export MODEL="''${MODEL:-${model}}"
      exec ${lib.getExe frontend} "$@"
    '';
    meta.description = "Serve the default cnn-mnist model";
  };
in
{
  inherit
    model
    models
    frontend
    serve
    bestModelOf
    ;
  cnn-mnist = frontend;
  bestModel = bestModelOf model bestModelSeeds;

  dockerImage = pkgs.callPackage ./docker.nix {
    cnn-mnist = frontend;
    inherit model;
  };
  # one image per backend: the jax and torch images carry no TensorFlow
  dockerImages = lib.genAttrs [ "tensorflow" "jax" "torch" ] (
    backend:
    pkgs.callPackage ./docker.nix {
      cnn-mnist = frontend.override { inherit backend; };
      model = models.${backend};
    }
  );
}
