"""`cnn-mnist`: the web app, its APIs and the model store that serve a trained model."""
