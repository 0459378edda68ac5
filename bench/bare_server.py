"""The ceiling for `bench/serve.py`: a bare Flask + waitress endpoint with cnn-mnist's waitress settings.

It parses the same JSON body as cnn-mnist's `/predict` and answers a constant of the same shape (a digit,
ten probabilities, the model's name, version and sha256), so the difference to cnn-mnist is everything
cnn-mnist does beyond the HTTP stack: validation, the forward pass, batching, metrics.

    python bench/bare_server.py --port 5000 [--threads N]
"""

import argparse
import sys

from flask import Flask, jsonify, request

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])
from cnn_mnist.serving.defaults import SERVER  # noqa: E402  (the same defaults as cnn-mnist's CLI)

ANSWER = {
    "digit": 7,
    "probabilities": [0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.0006, 0.0007, 0.9962, 0.0008, 0.0002],
    "model": {"name": "cnn_mnist", "version": "1", "sha256": "0" * 64},
}


def create_app():
    app = Flask(__name__)

    @app.get("/readyz")
    def readyz():
        return jsonify({"status": "ready"})

    @app.post("/predict")
    def predict():
        body = request.get_json(force=True)
        if not isinstance(body, dict) or not isinstance(body.get("pixels"), list) or not body["pixels"]:
            return jsonify({"error": "send pixels"}), 400
        pixels = body["pixels"]
        is_batch = isinstance(pixels[0], list) and bool(pixels[0]) and isinstance(pixels[0][0], list)
        return jsonify([ANSWER] * len(pixels) if is_batch else ANSWER)  # a batch of 28x28 images: a list

    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=SERVER["threads"])
    args = parser.parse_args()
    import waitress

    waitress.serve(
        create_app(),
        host="127.0.0.1",
        port=args.port,
        threads=args.threads,
        ident="bare",
        connection_limit=SERVER["connection_limit"],
        channel_timeout=SERVER["channel_timeout"],
        max_request_body_size=2 * SERVER["max_body_bytes"],
    )


if __name__ == "__main__":
    main()
