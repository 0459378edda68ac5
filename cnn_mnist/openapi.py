"""The API's description: OpenAPI 3 for /openapi.json, and TensorFlow Serving's model metadata."""

from . import __version__

_ERROR = {"description": "Bad input", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_PIXELS = {
    "description": "784 numbers, 28x28 or 28x28x1; values 0-255 or 0-1; or a list of such images",
    "type": "array",
    "items": {},
}


def _json_body(schema):
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _get(summary):
    return {"get": {"summary": summary, "responses": {"200": {"description": "OK"}}}}


SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "cnn-mnist", "version": __version__, "description": "Handwritten digit recognition (MNIST)"},
    "paths": {
        "/predict": {
            "post": {
                "summary": "Classify one digit or a batch",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "image": {"type": "string", "description": "base64 PNG/JPEG or a data: URL"},
                                    "images": {"type": "array", "items": {"type": "string"}},
                                    "pixels": _PIXELS,
                                },
                            }
                        },
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {"image": {"type": "string", "format": "binary"}},
                            }
                        },
                    },
                },
                "responses": {
                    "200": {
                        "description": "The prediction (a list of them for a batch)",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Prediction"}}},
                    },
                    "400": _ERROR,
                    "413": _ERROR,
                    "415": _ERROR,
                },
            }
        },
        "/v1/models/cnn-mnist:predict": {
            "post": {
                "summary": "TensorFlow Serving REST predict (row `instances` or columnar `inputs`)",
                "requestBody": _json_body(
                    {"type": "object", "properties": {"instances": _PIXELS, "inputs": _PIXELS}}
                ),
                "responses": {"200": {"description": "`predictions` or `outputs`: ten probabilities per image"},
                              "400": _ERROR},
            }
        },
        "/v1/models/cnn-mnist": _get("TensorFlow Serving model version status"),
        "/v1/models/cnn-mnist/metadata": _get("TensorFlow Serving model metadata (signature)"),
        "/healthz": _get("The process is alive"),
        "/readyz": _get("A model is loaded and serving"),
        "/metrics": _get("Prometheus metrics"),
        "/openapi.json": _get("This document"),
        "/": _get("The drawing page"),
    },
    "components": {
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
            "Prediction": {
                "type": "object",
                "properties": {
                    "digit": {"type": "integer", "minimum": 0, "maximum": 9},
                    "probabilities": {"type": "array", "items": {"type": "number"}, "minItems": 10, "maxItems": 10},
                    "model": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                                       "sha256": {"type": "string"}},
                    },
                },
            },
        }
    },
}


def tf_serving_metadata(name: str, version: str) -> dict:
    """The answer of TF Serving's GET /v1/models/NAME/metadata for our one signature."""
    def tensor(tensor_name, *dims):
        shape = {"dim": [{"size": str(size)} for size in dims], "unknown_rank": False}
        return {"dtype": "DT_FLOAT", "tensor_shape": shape, "name": tensor_name}

    inputs, outputs = tensor("inputs", -1, 28, 28, 1), tensor("probabilities", -1, 10)
    return {
        "model_spec": {"name": name, "signature_name": "", "version": version},
        "metadata": {
            "signature_def": {
                "signature_def": {
                    "serving_default": {
                        "inputs": {"inputs": inputs},
                        "outputs": {"probabilities": outputs},
                        "method_name": "tensorflow/serving/predict",
                    }
                }
            }
        },
    }
