"""`cnn-mnist`: the web app, its APIs and the model store that serve a trained model."""

# The served model's name: in the routes (/v1/models/cnn-mnist), the answers, the page and the logs.
NAME = "cnn-mnist"
