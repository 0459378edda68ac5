"""The API's description: OpenAPI 3 for /openapi.json (v2's in openapi_v2), and TensorFlow Serving's model metadata."""

from .. import __version__
from . import NAME, openapi_v2


def _array(items, size=None, **more):
    """A JSON array of `items`, exactly `size` long when given."""
    return {"type": "array", "items": items, **({"minItems": size, "maxItems": size} if size else {}), **more}


def _images(low_high, description):
    """One image (784 numbers, 28x28 or 28x28x1) or a non-empty batch of images of one of those shapes."""
    value = {"type": "number", "minimum": low_high[0], "maximum": low_high[1]}
    one = [_array(value, 784), _array(_array(value, 28), 28), _array(_array(_array(value, 1), 28), 28)]
    return {"description": description, "oneOf": one + [_array(image, minItems=1) for image in one]}


PIXELS = _images(
    (0, 255),
    "One 28x28 image (784 numbers, 28x28 or 28x28x1) or a batch of them; "
    "values 0-255, or 0-1 when none is above 1 (ink is high)",
)
TF_BATCH = {
    "description": "A batch of 28x28x1 images in 0-1 (flat 784 or 28x28 per image are accepted too)",
    "oneOf": _images((0, 1), "")["oneOf"][3:],
}  # TF Serving's tensors always have the batch dimension
TF_INSTANCE = {"oneOf": [batch["items"] for batch in TF_BATCH["oneOf"]]}
PREDICT_OPTIONS = {
    "include_input": {"type": "boolean", "description": "Also answer the 28x28 image the model saw, as `input`"},
    "version": {"type": "string", "pattern": "^[0-9]+$", "description": "Serve with this model version"},
    "label": {"type": "string", "pattern": "^[^/:]+$", "description": "Serve with the version this label points to"},
}
PREDICT_JSON = {
    "type": "object",
    "description": 'Exactly one of "image", "images" or "pixels"; optionally the answer options',
    "oneOf": [
        {
            "required": ["image"],
            "properties": {
                "image": {"type": "string", "description": "A base64 PNG/JPEG/GIF/BMP/WEBP/TIFF, or a data: URL"}
            },
        },
        {
            "required": ["images"],
            "properties": {"images": _array({"type": "string", "description": "base64 or a data: URL"}, minItems=1)},
        },
        {"required": ["pixels"], "properties": {"pixels": PIXELS}},
    ],
    "properties": PREDICT_OPTIONS,
}
TF_PREDICT_JSON = {
    "type": "object",
    "description": 'TF Serving REST: row ("instances") or columnar ("inputs") format, exactly one of them',
    "oneOf": [
        {
            "required": ["instances"],
            "properties": {
                "instances": {
                    "oneOf": [
                        *TF_BATCH["oneOf"],
                        _array(
                            {
                                "type": "object",
                                "required": ["inputs"],
                                "properties": {"inputs": TF_INSTANCE},
                                "additionalProperties": False,
                            },
                            minItems=1,
                        ),
                    ]
                }
            },
        },
        {
            "required": ["inputs"],
            "properties": {
                "inputs": {
                    "oneOf": [
                        *TF_BATCH["oneOf"],
                        # as TF Serving: only the signature's input is read from the object
                        {"type": "object", "required": ["inputs"], "properties": {"inputs": TF_BATCH}},
                    ]
                }
            },
        },
    ],
    "properties": {"signature_name": {"type": "string", "enum": ["serving_default", ""]}},  # "": the default
}


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "Malformed input"),
    "404": _json(_ref("Error"), "No such model version"),
    "413": _json(
        _ref("Error"),
        "Over a limit: the body's bytes, the images in the request, the pixels of one "
        "image or of all of them (read from the image headers, before decoding)",
    ),
    "415": _json(_ref("Error"), "An image format that is not supported"),
    "503": {
        **_json(
            _ref("Error"),
            "Overloaded: as many predictions as the server answers at once are in flight, "
            "or none answered in time; send it again after Retry-After",
        ),
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before sending the request again",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    },
}


def _get(summary, response):
    return {"get": {"summary": summary, "responses": {"200": response}}}


def _tf_serving_routes(prefix, parameter=None):
    """TF Serving's status, metadata and predict under `prefix`: the model, or one `parameter` (version, label)."""
    scope, not_found = {}, {}
    if parameter:
        scope = {
            "parameters": [{"name": parameter, "in": "path", "required": True, "schema": PREDICT_OPTIONS[parameter]}]
        }
        # as TF Serving answers: an unknown version is NOT_FOUND (404), an unknown label INVALID_ARGUMENT (400)
        not_found = (
            {
                "400": _json(_ref("Error"), "A version above int64: TF Serving's Failed to convert version"),
                "404": _json(_ref("Error"), "No such version"),
            }
            if parameter == "version"
            else {"400": _json(_ref("Error"), "No such label, or one holding / or : (a malformed request)")}
        )

    def malformed(method):
        """TF Serving's handler routes only GET on status and metadata, POST on the rest: the other is a 400."""
        answer = _json(_ref("Error"), f"Malformed request: TF Serving's INVALID_ARGUMENT for {method.upper()} here")
        return {method: {"summary": f"{method.upper()}: TF Serving's Malformed request", "responses": {"400": answer}}}

    def get(summary, schema):
        return {
            **scope,
            "get": {"summary": summary, "responses": {"200": _json(_ref(schema)), **not_found}},
            **malformed("post"),
        }

    def predict_only(verb):
        return {
            **scope,
            **malformed("get"),
            "post": {
                "summary": f"TensorFlow Serving REST {verb}: always a 400, the model has a predict signature only",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {**not_found, "400": _json(_ref("Error"), f"No {verb} signature (or a malformed body)")},
            },
        }

    return {
        prefix: get("TensorFlow Serving model version status", "Status"),
        f"{prefix}/metadata": get("TensorFlow Serving model metadata (signature)", "Metadata"),
        f"{prefix}:predict": {
            **scope,
            **malformed("get"),
            "post": {
                "summary": "TensorFlow Serving REST predict (row `instances` or columnar `inputs`)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": TF_PREDICT_JSON}}},
                "responses": {"200": _json(_ref("TFPrediction")), **_ERRORS},
            },
        },
        f"{prefix}:classify": predict_only("classify"),
        f"{prefix}:regress": predict_only("regress"),
    }


def _text(media_type, description):
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


PREDICTION = {
    "type": "object",
    "required": ["digit", "probabilities", "model"],
    "properties": {
        "digit": {"type": "integer", "minimum": 0, "maximum": 9},
        "probabilities": _array({"type": "number", "minimum": 0, "maximum": 1}, 10),
        "model": {
            "type": "object",
            "required": ["name", "version", "sha256"],
            "properties": {"name": {"type": "string"}, "version": {"type": "string"}, "sha256": {"type": "string"}},
        },
        "input": {
            "type": "string",
            "pattern": "^data:image/png;base64,",
            "description": "With include_input: the 28x28 image the model saw",
        },
    },
}
_DIGIT = {"type": "integer", "minimum": 0, "maximum": 9}
CORRECTION_JSON = {
    "type": "object",
    "description": 'Exactly one of "pixels" or "input" (the image the model saw), and the digit it shows',
    "required": ["label"],
    "oneOf": [
        {"required": ["pixels"], "properties": {"pixels": {"oneOf": PIXELS["oneOf"][:3]}}},
        {
            "required": ["input"],
            "properties": {
                "input": {
                    "type": "string",
                    "pattern": "^data:image/png;base64,",
                    "description": "The 28x28 8-bit grayscale PNG /predict answered as `input` (include_input)",
                }
            },
        },
    ],
    "properties": {
        "label": {**_DIGIT, "description": "The digit the image shows"},
        "predicted": {**_DIGIT, "description": "The digit the model said"},
        "model_version": {"type": "string", "pattern": "^[!-~]{1,64}$", "description": "The version that said it"},
    },
}
CORRECTION = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {"id": {"type": "string"}, "status": {"type": "string", "enum": ["pending", "accepted", "rejected"]}},
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before sending the request again",
        "schema": {"type": "integer", "minimum": 1},
    }
}
MODEL_VERSION_STATUS = {
    "type": "object",
    "required": ["version", "state", "status"],
    "properties": {
        "version": {"type": "string"},
        "state": {"type": "string", "enum": ["START", "LOADING", "AVAILABLE", "UNLOADING", "END"]},
        "status": {
            "type": "object",
            "properties": {"error_code": {"type": "string"}, "error_message": {"type": "string"}},
        },
    },
}

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": NAME, "version": __version__, "description": "Handwritten digit recognition (MNIST)"},
    "paths": {
        "/predict": {
            "post": {
                "summary": "Classify one digit or a batch",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": PREDICT_JSON},
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["image"],
                                "properties": {
                                    "image": {
                                        "type": "string",
                                        "format": "binary",
                                        "description": "An image file; several make a batch",
                                    }
                                },
                            }
                        },
                    },
                },
                "responses": {
                    "200": _json(
                        {"oneOf": [PREDICTION, _array(PREDICTION, minItems=1)]},
                        "The prediction; a list of them for a batch",
                    ),
                    **_ERRORS,
                },
            }
        },
        **_tf_serving_routes(f"/v1/models/{NAME}"),
        **_tf_serving_routes(f"/v1/models/{NAME}/versions/{{version}}", "version"),
        **_tf_serving_routes(f"/v1/models/{NAME}/labels/{{label}}", "label"),
        "/v1/corrections": {
            "post": {
                "summary": "Say what a misread digit was: kept, pending review (docs/corrections.md)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": CORRECTION_JSON}}},
                "responses": {
                    "201": _json(CORRECTION, "Stored, pending review"),
                    "200": _json(CORRECTION, "The same image with the same label was stored before: its id"),
                    "400": _ERRORS["400"],
                    "404": _json(_ref("Error"), "Corrections are off on this server (no --corrections)"),
                    "413": _json(_ref("Error"), "The body is over the byte limit"),
                    "429": {
                        **_json(_ref("Error"), "Over --corrections-per-minute from this client"),
                        "headers": _RETRY_AFTER,
                    },
                    "503": {**_json(_ref("Error"), "The corrections store failed; try again"), "headers": _RETRY_AFTER},
                },
            }
        },
        "/healthz": _get("The process is alive", _json({"type": "object", "required": ["status"]})),
        "/readyz": {
            "get": {
                "summary": "A model is loaded and serving",
                "responses": {
                    "200": _json({"type": "object", "required": ["status", "model"]}),
                    "503": _json({"type": "object", "required": ["status"]}, "Draining after SIGTERM: send elsewhere"),
                },
            }
        },
        "/metrics": _get("Prometheus metrics", _text("text/plain", "Prometheus' text format")),
        "/openapi.json": _get("This document", _json({"type": "object", "required": ["openapi", "paths"]})),
        **openapi_v2.PATHS,
        "/": _get("The drawing page", _text("text/html", "The page")),
    },
    "components": {
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
            "Prediction": PREDICTION,
            "TFPrediction": {
                "type": "object",
                "oneOf": [
                    {
                        "required": ["predictions"],
                        "properties": {"predictions": _array(_array({"type": "number"}, 10))},
                    },
                    {"required": ["outputs"], "properties": {"outputs": _array(_array({"type": "number"}, 10))}},
                ],
            },
            "Status": {
                "type": "object",
                "required": ["model_version_status"],
                "properties": {"model_version_status": _array(MODEL_VERSION_STATUS, minItems=1)},
            },
            "Metadata": {"type": "object", "required": ["model_spec", "metadata"]},
            **openapi_v2.SCHEMAS,
        }
    },
}


def tf_serving_metadata(name: str, version: str) -> dict:
    """The answer of TF Serving's GET /v1/models/NAME/metadata for our one signature."""

    def tensor(tensor_name, *dims):
        # TF Serving prints every field, defaults too (always_print_primitive_fields): a dim's name is ""
        shape = {"dim": [{"size": str(size), "name": ""} for size in dims], "unknown_rank": False}
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
                        "defaults": {},
                    }
                }
            }
        },
    }
