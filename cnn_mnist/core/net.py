"""The ConvNet: Keras' classic MNIST example (Conv 32, Conv 64, MaxPool, Dropout, Dense 128, softmax)."""

import keras
from keras import layers

from .data import IMAGE_SHAPE, NUM_CLASSES

INPUT_SHAPE = (*IMAGE_SHAPE, 1)


def build_model(learning_rate: float = 1e-3, **compile_options) -> keras.Model:
    """The network, compiled for training with Adam on sparse categorical cross-entropy.

    `compile_options` go to `Model.compile` (bench/train.py uses them to time alternatives).
    """
    model = keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            layers.Conv2D(32, kernel_size=3, activation="relu"),
            layers.Conv2D(64, kernel_size=3, activation="relu"),
            layers.MaxPooling2D(pool_size=2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="cnn_mnist",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        **compile_options,
    )
    return model
