"""The OpenAPI description of the Open Inference Protocol (KServe v2) routes (kserve_v2), for /openapi.json.

`PATHS` and `SCHEMAS` go into openapi.SPEC; errors are its `Error` schema. What the document forbids the
server refuses (tests/test_fuzz.py checks it), so the schemas are as strict as kserve_tensors where a
JSON schema can say it, and looser where it cannot (a shape's product against the data's length).
"""

from . import NAME
from .kserve_tensors import IMAGE_SHAPES, INPUT, OUTPUTS, PIXEL_TYPES


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


BINARY = {"type": "string", "format": "binary"}
BINARY_FORM = "The JSON header (Inference-Header-Content-Length bytes long), then the binary tensors in order"
PARAMETERS = {
    "type": "object",
    "description": "Name/value pairs; values are strings, numbers or booleans",
    "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]},
}


def _parameters(**known):
    return {**PARAMETERS, "properties": known}


INPUT_TENSOR = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string", "enum": [INPUT]},
        "datatype": {"type": "string", "enum": sorted(PIXEL_TYPES), "description": "FP32/FP64 in 0-1, UINT8 in 0-255"},
        "shape": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
            "minItems": 1 + min(map(len, IMAGE_SHAPES)),
            "maxItems": 1 + max(map(len, IMAGE_SHAPES)),
            "description": "[N, 28, 28, 1], [N, 28, 28] or [N, 784]",
        },
        "parameters": _parameters(
            binary_data_size={
                "type": "integer",
                "minimum": 0,
                "description": "The tensor is this many bytes of binary data after the JSON header",
            }
        ),
        "data": {
            "type": "array",
            "minItems": 1,
            "description": "The pixels, flat (row-major) or nested as the shape; absent with binary_data_size",
        },
    },
}
INFERENCE_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string", "description": "Echoed in the answer"},
        "parameters": _parameters(
            binary_data_output={"type": "boolean", "description": "Answer every output as binary data"}
        ),
        "inputs": {"type": "array", "items": INPUT_TENSOR, "minItems": 1, "maxItems": 1},
        "outputs": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "description": "The outputs to answer (all when absent)",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "enum": list(OUTPUTS)},
                    "parameters": _parameters(
                        binary_data={"type": "boolean", "description": "This output as binary data (overrides)"}
                    ),
                },
            },
        },
    },
}
TENSOR_METADATA = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}, "description": "-1: the batch"},
    },
}
SCHEMAS = {
    "V2InferenceRequest": INFERENCE_REQUEST,
    "V2InferenceResponse": {
        "type": "object",
        "required": ["model_name", "model_version", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "datatype", "shape"],
                    "properties": {
                        "name": {"type": "string", "enum": list(OUTPUTS)},
                        "datatype": {"type": "string", "enum": sorted(set(OUTPUTS.values()))},
                        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                        "data": {"type": "array", "items": {"type": "number"}},
                        "parameters": _parameters(binary_data_size={"type": "integer", "minimum": 0}),
                    },
                },
            },
        },
    },
    "V2ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "V2ModelMetadata": {
        "type": "object",
        "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": TENSOR_METADATA},
            "outputs": {"type": "array", "items": TENSOR_METADATA},
        },
    },
}

ERROR = _ref("Error")
NOT_FOUND = {"404": _json(ERROR, "No such model or version")}
INFER_ERRORS = {
    "400": _json(ERROR, "Malformed: another datatype, a shape that is not an image batch, data that does not match"),
    **NOT_FOUND,
    "413": _json(ERROR, "Over a limit: the body's bytes, or the images in the request (counted from the shape)"),
    "415": _json(ERROR, "A compressed body (Content-Encoding); send it uncompressed"),
    "503": {
        **_json(ERROR, "Overloaded: as many predictions as the server answers at once are in flight; retry later"),
        "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 1}}},
    },
}
MODEL_NAME = {"name": "model_name", "in": "path", "required": True, "schema": {"type": "string", "enum": [NAME]}}
MODEL_VERSION = {
    "name": "model_version",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
HEADER_LENGTH = {
    "name": "Inference-Header-Content-Length",
    "in": "header",
    "required": False,
    "description": "With binary tensors: the length of the JSON header at the start of the body",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
EMPTY_OK = {"description": "True (an empty body)"}
EXAMPLE = {  # one blank image, flat, and its digit only
    "id": "example",
    "inputs": [{"name": INPUT, "datatype": "UINT8", "shape": [1, 784], "data": [0] * 784}],
    "outputs": [{"name": "digit"}],
}


def _model_routes(prefix, scope):
    return {
        prefix: {
            "parameters": scope,
            "get": {"summary": "v2 model metadata", "responses": {"200": _json(_ref("V2ModelMetadata")), **NOT_FOUND}},
        },
        f"{prefix}/ready": {
            "parameters": scope,
            "get": {"summary": "v2 model ready: the version serves", "responses": {"200": EMPTY_OK, **NOT_FOUND}},
        },
        f"{prefix}/infer": {
            "parameters": scope,
            "post": {
                "summary": "v2 inference (JSON tensors, or binary tensors after the JSON header)",
                "parameters": [HEADER_LENGTH],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("V2InferenceRequest"), "example": EXAMPLE},
                        "application/octet-stream": {"schema": {**BINARY, "description": BINARY_FORM}},
                    },
                },
                "responses": {
                    "200": {
                        "description": "The outputs, any binary ones after the JSON header",
                        "content": {
                            "application/json": {"schema": _ref("V2InferenceResponse")},
                            "application/octet-stream": {"schema": {**BINARY, "description": BINARY_FORM}},
                        },
                    },
                    **INFER_ERRORS,
                },
            },
        },
    }


PATHS = {
    "/v2/health/live": {"get": {"summary": "v2 server live", "responses": {"200": EMPTY_OK}}},
    "/v2/health/ready": {
        "get": {
            "summary": "v2 server ready",
            "responses": {"200": EMPTY_OK, "400": _json(ERROR, "Not ready: draining after SIGTERM")},
        }
    },
    "/v2": {"get": {"summary": "v2 server metadata", "responses": {"200": _json(_ref("V2ServerMetadata"))}}},
    **_model_routes("/v2/models/{model_name}", [MODEL_NAME]),
    **_model_routes("/v2/models/{model_name}/versions/{model_version}", [MODEL_NAME, MODEL_VERSION]),
}
