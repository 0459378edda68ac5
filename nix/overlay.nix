# Adds the project to a nixpkgs package set:
#   cnn-mnist          the application (server + trainer)
#   cnn-mnist-trainer  the trainer alone, which every model is built with
#   cnn-mnist-model    the default trained model
final: prev: {
  cnn-mnist = final.callPackage ../package.nix { };
  cnn-mnist-trainer = final.callPackage ./trainer.nix { };
  cnn-mnist-model = final.callPackage ../model.nix { };
}
