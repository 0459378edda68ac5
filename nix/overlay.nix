# Adds the project to a nixpkgs package set:
#   cnn-mnist        the application (trainer + server)
#   cnn-mnist-model  the default trained model
final: prev: {
  cnn-mnist = final.callPackage ../package.nix { };
  cnn-mnist-model = final.callPackage ../model.nix { };
}
