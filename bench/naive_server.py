"""The baseline for `bench/serve.py`: a seed-style server, written the plain way the seed did it.

Flask's development server (`app.run(threaded=True)`), the model loaded with `keras.saving.load_model`,
and `model.predict()` called once per request on the posted pixels. No micro-batching, no compiled
forward pass: every request pays for `predict()` building its own input pipeline and step function
call, and concurrent requests contend for the same model. It is here to be measured against, not
to be improved; the request and answer shapes match cnn-mnist's `/predict` so one load generator
drives both.

    python bench/naive_server.py --model out/ --port 5000

`verbose=0` keeps `predict()` from printing a progress bar per request (which would only make the
baseline slower and flood the log); everything else is as the seed had it.
"""

import argparse
import os
import sys


def model_file(location: str) -> str:
    """A .keras file, or a trainer output directory holding model.keras (as cnn-mnist accepts)."""
    if os.path.isdir(location):
        location = os.path.join(location, "model.keras")
    if not os.path.isfile(location):
        sys.exit(f"naive_server: model not found: {location}")
    return location


def create_app(model):
    import numpy as np
    from flask import Flask, jsonify, request

    app = Flask(__name__)

    @app.get("/readyz")
    def readyz():
        return jsonify({"status": "ready"})

    @app.post("/predict")
    def predict():
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or "pixels" not in body:
            return jsonify({"error": 'send {"pixels": 28x28 numbers 0-255}'}), 400
        try:
            pixels = np.array(body["pixels"], dtype="float32")
            is_batch = pixels.ndim == 3
            pixels = pixels.reshape(-1, 28, 28, 1) / 255.0
        except (TypeError, ValueError):
            return jsonify({"error": "pixels must be 28x28 numbers (or a list of such images)"}), 400
        probabilities = model.predict(pixels, verbose=0)
        answers = [{"digit": int(np.argmax(row)), "probabilities": row.tolist()} for row in probabilities]
        return jsonify(answers if is_batch else answers[0])

    return app


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a .keras file or a trainer output directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    args = parser.parse_args(argv)

    os.environ["KERAS_BACKEND"] = args.backend  # must be set before Keras is imported
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    model = keras.saving.load_model(model_file(args.model))
    app = create_app(model)
    print(f"naive_server: serving at http://{args.host}:{args.port}/", flush=True)
    app.run(host=args.host, port=args.port, threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
