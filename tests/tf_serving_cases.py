"""TF Serving's own test cases that apply to a one-input, one-output float model, as requests to cnn-mnist.

Data, not a test module: tests/test_tf_serving_conformance.py asserts them one by one and
bench/tf_serving_conformance.py counts how many a server answers as TF Serving does.

Each case is a request from TF Serving's sources, with TF Serving's HTTP status for it (its error code
through http_server.cc's ToHTTPStatusCode: INVALID_ARGUMENT and FAILED_PRECONDITION 400, NOT_FOUND 404)
and the body it answers. Their model, saved_model_half_plus_two_2_versions (float input "x", version 123,
label "Version_Label"), becomes ours: the same version and label (`write_model`), a batch of 28x28x1
images for their list of floats, and a 400 where they call its classify and regress signatures, since
ours has the predict signature only. The line numbers are those of the files at these commits:
"""

import json
import math
import os
from dataclasses import dataclass

HANDLER_TEST = "tensorflow_serving/model_servers/http_rest_api_handler_test.cc@49ac8acb"
JSON_TENSOR_TEST = "tensorflow_serving/util/json_tensor_test.cc@07451ec6"
JSON_TENSOR = "tensorflow_serving/util/json_tensor.cc"
HANDLER = "tensorflow_serving/model_servers/http_rest_api_handler.cc"
SERVER_TEST = "tensorflow_serving/model_servers/tensorflow_model_server_test.py"
API_REST = "tensorflow_serving/g3doc/api_rest.md"

MODEL = "/v1/models/cnn-mnist"
VERSION, LABEL = "123", "Version_Label"  # as TF Serving's test model has them
IMAGE = [[[0.0]] * 28] * 28  # one 28x28x1 instance in 0-1
ROW_2 = [[[0.0]] * 28] * 27 + [[[0.0]] * 29]  # 28x28x1 but for one row one longer: the sizes differ
INT_AND_FLOAT = [[[0]] * 28] * 14 + [[[1.0]] * 28] * 13 + [[[1]] * 28]  # ints and floats mixed, all in 0-1
NAN_IMAGE = json.dumps({"instances": [IMAGE]}).replace("0.0", "NaN", 1)
INFINITY_IMAGE = json.dumps({"instances": [IMAGE]}).replace("0.0", "Infinity", 1)
MINUS_INFINITY_IMAGE = json.dumps({"instances": [IMAGE]}).replace("0.0", "-Infinity", 1)
DEEP = '{"instances": ' + "[" * 100_000 + "]" * 100_000 + "}"
EXAMPLES = {"examples": [{"x": 80.0}]}  # TF Serving's classify/regress body


@dataclass(frozen=True)
class Case:
    name: str
    source: str  # the TF Serving file, line(s) and test the request comes from
    method: str
    path: str
    body: object = None  # a JSON value, sent as JSON
    raw: str | None = None  # or the body's exact text
    status: int | None = 200  # TF Serving's answer; None: it gives none (see `deviation`)
    answer: str = "error"  # what the body is: error, predictions, outputs, status or metadata
    rows: int = 1  # predictions/outputs: how many
    message: str = ""  # the exact error message, where TF Serving's test or docs print it
    deviation: str = ""  # why we answer otherwise on purpose (docs/api.md); "" means as TF Serving
    ours: int = 0  # our status where we deviate


def _case(name, source, method, path, body=None, status=400, **more):
    return Case(name, source, method, path, body, status=status, **more)


def _ok(name, source, path, body, answer="predictions", rows=1, method="POST"):
    return Case(name, source, method, path, body, answer=answer, rows=rows)


H, J = HANDLER_TEST, JSON_TENSOR_TEST
CASES = [
    # ---- UnsupportedApiCalls: paths TF Serving's handler does not know are INVALID_ARGUMENT ----
    _case("GET /v1/foo", f"{H}:179 UnsupportedApiCalls", "GET", "/v1/foo"),
    _case("POST /v1/foo", f"{H}:184 UnsupportedApiCalls", "POST", "/v1/foo"),
    _case("GET /v1/models: missing model name", f"{H}:189 UnsupportedApiCalls", "GET", "/v1/models"),
    _case("GET /v1/models/debug/model_name", f"{H}:193 UnsupportedApiCalls", "GET", "/v1/models/debug/model_name"),
    _case("POST /v1/models", f"{H}:198 UnsupportedApiCalls", "POST", "/v1/models"),
    _case("GET on :predict", f"{H}:203 UnsupportedApiCalls", "GET", "/v1/models/foo:predict"),
    _case("GET on our :predict", f"{H}:203 UnsupportedApiCalls, our model", "GET", f"{MODEL}:predict"),
    _case("/version/ (singular)", f"{H}:208 UnsupportedApiCalls", "GET", "/v1/models/foo/version/50:predict"),
    _case("/version/ on :regress", f"{H}:213 UnsupportedApiCalls", "POST", "/v1/models/foo/version/50:regress"),
    _case("version HELLO", f"{H}:218 UnsupportedApiCalls", "POST", "/v1/models/foo/versions/HELLO:regress"),
    _case("our version HELLO", f"{H}:218 UnsupportedApiCalls, our model", "POST", f"{MODEL}/versions/HELLO:predict"),
    _case(
        "version above int64",
        f"{H}:224 UnsupportedApiCalls",
        "POST",
        f"/v1/models/foo/versions/{2**64 - 1}:regress",
        message=f"Failed to convert version: {2**64 - 1}",
    ),
    _case(
        "our version above int64",
        f"{H}:224 UnsupportedApiCalls, our model",
        "POST",
        f"{MODEL}/versions/{2**64 - 1}:predict",
        {"instances": [IMAGE]},
    ),
    _case("POST on /metadata", f"{H}:232 UnsupportedApiCalls", "POST", "/v1/models/foo/metadata"),
    _case("POST on our /metadata", f"{H}:232 UnsupportedApiCalls, our model", "POST", f"{MODEL}/metadata"),
    _case("/label/ (singular)", f"{H}:237 UnsupportedApiCalls", "POST", "/v1/models/foo/label/some_label:regress"),
    _case(
        "version and label",
        f"{H}:243 UnsupportedApiCalls",
        "POST",
        "/v1/models/foo/versions/50/labels/some_label:regress",
    ),
    _case("a label as version", f"{H}:249 UnsupportedApiCalls", "POST", "/v1/models/foo/versions/some_label:regress"),
    # ---- PredictModelNameVersionErrors: NOT_FOUND ----
    _case(
        "unknown model",
        f"{H}:261 PredictModelNameVersionErrors",
        "POST",
        "/v1/models/foo:predict",
        {"instances": [1]},
        404,
    ),
    _case(
        "unknown model's version",
        f"{H}:267 PredictModelNameVersionErrors",
        "POST",
        "/v1/models/foo/versions/50:predict",
        {"instances": [1]},
        404,
    ),
    _case(
        "our name with 99 appended",
        f"{H}:273 PredictModelNameVersionErrors",
        "POST",
        f"{MODEL}99:predict",
        {"instances": [1]},
        404,
    ),
    _case(
        "our model, no version 99",
        f"{H}:272 PredictModelNameVersionErrors (its comment: invalid version number 99)",
        "POST",
        f"{MODEL}/versions/99:predict",
        {"instances": [IMAGE]},
        404,
    ),
    # ---- PredictRequestErrors: INVALID_ARGUMENT ----
    _case("empty body", f"{H}:287 PredictRequestErrors", "POST", f"{MODEL}:predict", raw=""),
    _case("not JSON", f"{H}:294 PredictRequestErrors", "POST", f"{MODEL}:predict", raw="instances = [1, 2]"),
    _case("strings for floats", f"{H}:301 PredictRequestErrors", "POST", f"{MODEL}:predict", {"instances": ["x", "y"]}),
    _case(
        "unknown label",
        f"{H}:308 PredictRequestErrors",
        "POST",
        f"{MODEL}/labels/Version_Nonexistent:predict",
        {"instances": ["x", "y"]},
    ),
    _case("signature_name 100", f"{H}:319 PredictRequestErrors", "POST", f"{MODEL}:predict", {"signature_name": 100}),
    # ---- Predict: OK, {"predictions": …} or {"outputs": …} ----
    _ok("latest version", f"{H}:332 Predict", f"{MODEL}:predict", {"instances": [IMAGE, IMAGE]}, rows=2),
    _ok("version 123", f"{H}:342 Predict", f"{MODEL}/versions/{VERSION}:predict", {"instances": [IMAGE]}),
    _ok("label", f"{H}:352 Predict", f"{MODEL}/labels/{LABEL}:predict", {"instances": [IMAGE]}),
    _ok(
        "signature_name serving_default",
        f"{H}:362 Predict",
        f"{MODEL}/versions/{VERSION}:predict",
        {"signature_name": "serving_default", "instances": [IMAGE]},
    ),
    _ok(
        "columnar with signature_name",
        f"{H}:373 Predict",
        f"{MODEL}/versions/{VERSION}:predict",
        {"signature_name": "serving_default", "inputs": [IMAGE]},
        answer="outputs",
    ),
    # ---- Regress and Classify: our model has no such signature, which TF Serving refuses as INVALID_ARGUMENT ----
    _case(":regress", f"{H}:389 Regress", "POST", f"{MODEL}:regress", {"signature_name": "regress_x_to_y", **EXAMPLES}),
    _case(
        "version's :regress",
        f"{H}:398 Regress",
        "POST",
        f"{MODEL}/versions/{VERSION}:regress",
        {"signature_name": "regress_x_to_y", **EXAMPLES},
    ),
    _case(
        "label's :regress",
        f"{H}:409 Regress",
        "POST",
        f"{MODEL}/labels/{LABEL}:regress",
        {"signature_name": "regress_x_to_y", **EXAMPLES},
    ),
    _case(
        ":classify", f"{H}:425 Classify", "POST", f"{MODEL}:classify", {"signature_name": "classify_x_to_y", **EXAMPLES}
    ),
    _case(
        "label's :classify",
        f"{H}:434 Classify",
        "POST",
        f"{MODEL}/labels/{LABEL}:classify",
        {"signature_name": "classify_x_to_y", **EXAMPLES},
    ),
    # ---- GetStatus and GetModelMetadata: exactly TF Serving's documents ----
    _ok("status", f"{H}:451 GetStatus", MODEL, None, answer="status", method="GET"),
    _ok("version's status", f"{H}:470 GetStatus", f"{MODEL}/versions/{VERSION}", None, answer="status", method="GET"),
    _ok("label's status", f"{H}:491 GetStatus", f"{MODEL}/labels/{LABEL}", None, answer="status", method="GET"),
    _ok("metadata", f"{H}:518 GetModelMetadata", f"{MODEL}/metadata", None, answer="metadata", method="GET"),
    # ---- json_tensor_test.cc: how a predict body is read ----
    _ok("plain rows", f"{J}:61 SingleUnnamedTensor", f"{MODEL}:predict", {"instances": [IMAGE] * 3}, rows=3),
    _ok("ints and floats", f"{J}:91 MixedInputForFloatTensor", f"{MODEL}:predict", {"instances": [INT_AND_FLOAT]}),
    _case(
        "a signature the model lacks",
        f"{J}:147 SingleUnnamedTensorWithSignature (a model without it: predict's INVALID_ARGUMENT)",
        "POST",
        f"{MODEL}:predict",
        {"signature_name": "predict_images", "instances": [IMAGE]},
    ),
    _ok(
        "named rows",
        f"{J}:257 SingleNamedTensorBase64",
        f"{MODEL}:predict",
        {"instances": [{"inputs": IMAGE}] * 2},
        rows=2,
    ),
    _ok(
        "named columnar",
        f"{J}:378 SingleUnnamedTensorColumnarFormat",
        f"{MODEL}:predict",
        {"inputs": {"inputs": [IMAGE]}},
        answer="outputs",
    ),
    _ok(
        "plain columnar",
        f"{J}:407 SingleUnnamedTensorColumnarFormat",
        f"{MODEL}:predict",
        {"inputs": [IMAGE] * 2},
        answer="outputs",
        rows=2,
    ),
    _case("empty document", f"{J}:492 SingleUnnamedTensorErrors", "POST", f"{MODEL}:predict", raw=""),
    _case(
        "signature_name 5",
        f"{J}:496 SingleUnnamedTensorErrors",
        "POST",
        f"{MODEL}:predict",
        {"signature_name": 5, "instances": [IMAGE]},
    ),
    _case(
        "instances and inputs",
        f"{J}:505 SingleUnnamedTensorErrors",
        "POST",
        f"{MODEL}:predict",
        {"instances": [IMAGE], "inputs": [IMAGE]},
    ),
    _case(
        "rows of other sizes",
        f"{J}:514 SingleUnnamedTensorErrors",
        "POST",
        f"{MODEL}:predict",
        {"instances": [IMAGE, IMAGE, ROW_2]},
    ),
    _case(
        "rows of other shapes",
        f"{J}:522 SingleUnnamedTensorErrors",
        "POST",
        f"{MODEL}:predict",
        {"instances": [IMAGE, IMAGE, [IMAGE]]},
    ),
    _case(
        "a scalar then a list",
        f"{J}:530 SingleUnnamedTensorErrors",
        "POST",
        f"{MODEL}:predict",
        {"instances": [0.5, IMAGE]},
    ),
    _case(
        "a row of strings",
        f"{J}:538 SingleUnnamedTensorErrors",
        "POST",
        f"{MODEL}:predict",
        {"instances": [IMAGE, [[["a"]] * 28] * 28]},
    ),
    _case(
        "double's max for a float",
        f"{J}:548 SingleUnnamedTensorErrors",
        "POST",
        f"{MODEL}:predict",
        {"instances": [[[[1.7976931348623157e308]] * 28] * 28]},
    ),
    _case(
        "16777217 for a float",
        f"{J}:557 SingleUnnamedTensorErrors",
        "POST",
        f"{MODEL}:predict",
        {"instances": [[[[16777217]] * 28] * 28]},
    ),
    _case(
        "named rows of other shapes",
        f"{J}:585 MultipleNamedTensorErrors",
        "POST",
        f"{MODEL}:predict",
        {"instances": [{"inputs": IMAGE}, {"inputs": [IMAGE]}]},
    ),
    _case(
        "named rows of other sizes",
        f"{J}:604 MultipleNamedTensorErrors",
        "POST",
        f"{MODEL}:predict",
        {"instances": [{"inputs": IMAGE}, {"inputs": ROW_2}]},
    ),
    _case(
        "a named row, then a plain one",
        f"{J}:624 MultipleNamedTensorErrors",
        "POST",
        f"{MODEL}:predict",
        {"instances": [{"inputs": IMAGE}, IMAGE]},
    ),
    _case(
        "a plain row, then a named one",
        f"{J}:649 MultipleNamedTensorErrors",
        "POST",
        f"{MODEL}:predict",
        {"instances": [IMAGE, {"inputs": IMAGE}]},
    ),
    # ---- json_tensor.cc: what FillPredictRequestFromJson refuses (its error texts) ----
    _case(
        "instances an object",
        f"{JSON_TENSOR} FillPredictRequestFromJson: Excepting 'instances' to be an list/array",
        "POST",
        f"{MODEL}:predict",
        {"instances": {"inputs": [IMAGE]}},
    ),
    _case(
        "instances empty",
        f"{JSON_TENSOR} FillPredictRequestFromJson: No values in 'instances' array",
        "POST",
        f"{MODEL}:predict",
        {"instances": []},
    ),
    _case(
        "neither instances nor inputs",
        f"{JSON_TENSOR} FillPredictRequestFromJson: Missing 'inputs' or 'instances' key",
        "POST",
        f"{MODEL}:predict",
        {"signature_name": "serving_default"},
    ),
    _case(
        "a row naming another input",
        f"{JSON_TENSOR} AddInstanceItem: JSON object: does not have named input",
        "POST",
        f"{MODEL}:predict",
        {"instances": [{"x": IMAGE}]},
    ),
    _case(
        "columnar naming another input",
        f"{JSON_TENSOR} FillTensorMapFromInputsMap: Missing named input",
        "POST",
        f"{MODEL}:predict",
        {"inputs": {"x": [IMAGE]}},
    ),
    _case(
        "a row naming the input and another",
        f"{JSON_TENSOR} FillTensorMapFromInstancesList: must only have keys",
        "POST",
        f"{MODEL}:predict",
        {"instances": [{"inputs": IMAGE, "x": IMAGE}]},
    ),
    # ---- tensorflow_model_server_test.py: the REST tests against a running server ----
    _case(
        ":classify over REST",
        f"{SERVER_TEST} testClassifyREST",
        "POST",
        f"{MODEL}:classify",
        {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]},
    ),
    _case(
        ":regress over REST",
        f"{SERVER_TEST} testRegressREST",
        "POST",
        f"{MODEL}:regress",
        {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]},
    ),
    _ok("predict over REST", f"{SERVER_TEST} testPredictREST", f"{MODEL}:predict", {"instances": [IMAGE] * 3}, rows=3),
    _ok(
        "columnar over REST",
        f"{SERVER_TEST} testPredictColumnarREST",
        f"{MODEL}:predict",
        {"inputs": [IMAGE] * 3},
        answer="outputs",
        rows=3,
    ),
    _ok("status over REST", f"{SERVER_TEST} testGetStatusREST", MODEL, None, answer="status", method="GET"),
    _ok(
        "metadata over REST", f"{SERVER_TEST} testGetModelMetadataREST", f"{MODEL}/metadata", None, "metadata", 1, "GET"
    ),
    # ---- api_rest.md ----
    _ok(
        'signature_name ""',
        f"{API_REST} Predict API, Request format: unspecified is the default signature (and so is an empty one)",
        f"{MODEL}:predict",
        {"signature_name": "", "instances": [IMAGE]},
    ),
    _case(
        "api_rest.md's 404 example",
        f"{API_REST} Example: an incorrect request URL",
        "POST",
        "/v1/models/half:predict",
        {"instances": [1.0, 5.0]},
        404,
        message="Servable not found for request: Latest(half)",
    ),
    # ---- where we answer otherwise on purpose (docs/api.md, TF Serving conformance) ----
    _case(
        "NaN",
        f"{API_REST} JSON conformance; {J}:296 MultipleNamedTensor (NaN for a float)",
        "POST",
        f"{MODEL}:predict",
        raw=NAN_IMAGE,
        status=200,
        deviation="NaN is no pixel: the model's answer to it means nothing",
        ours=400,
    ),
    _case(
        "Infinity",
        f"{API_REST} JSON conformance; {J}:296 MultipleNamedTensor (Infinity for a float)",
        "POST",
        f"{MODEL}:predict",
        raw=INFINITY_IMAGE,
        status=200,
        deviation="infinity is no pixel",
        ours=400,
    ),
    _case(
        "-Infinity",
        f"{API_REST} JSON conformance",
        "POST",
        f"{MODEL}:predict",
        raw=MINUS_INFINITY_IMAGE,
        status=200,
        deviation="infinity is no pixel",
        ours=400,
    ),
    _case(
        "a pixel above 1",
        f"{J}:91 MixedInputForFloatTensor (2, 3, 4 and 5.003 for a float)",
        "POST",
        f"{MODEL}:predict",
        {"instances": [[[[2.0]] * 28] * 28]},
        status=200,
        deviation="the model's input is 0-1: a pixel outside it is a client's bug (0-255 sent as is)",
        ours=400,
    ),
    _case(
        "JSON nested 100,000 deep",
        f"{JSON_TENSOR} ParseJson: rapidjson's recursive parser (its TODO b/67042542), no depth limit",
        "POST",
        f"{MODEL}:predict",
        raw=DEEP,
        status=None,
        deviation="past the parser's depth limit a body is refused, not parsed on the stack",
        ours=400,
    ),
    _case(
        "PUT on :predict",
        f"{HANDLER} ProcessRequest: a method other than GET or POST is a Malformed request",
        "PUT",
        f"{MODEL}:predict",
        {"instances": [IMAGE]},
        deviation="RFC 9110: a method the resource lacks is a 405 that names, in Allow, those it has",
        ours=405,
    ),
    _case(
        "DELETE on the status",
        f"{HANDLER} ProcessRequest: a method other than GET or POST is a Malformed request",
        "DELETE",
        MODEL,
        deviation="RFC 9110: a method the resource lacks is a 405 that names, in Allow, those it has",
        ours=405,
    ),
    _case(
        "flat 784 per instance",
        f"{API_REST} Request format: a tensor of the signature's shape, here [-1, 28, 28, 1]",
        "POST",
        f"{MODEL}:predict",
        {"instances": [[0.0] * 784]},
        deviation="784 numbers, or 28x28, are read as one 28x28x1 image: what a client has at hand",
        ours=200,
    ),
]
CONFORMING = [case for case in CASES if not case.deviation]
DEVIATIONS = [case for case in CASES if case.deviation]
STATUS = {
    "model_version_status": [
        {"version": VERSION, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
}
# The form of TF Serving's metadata (servables/tensorflow/testdata/saved_model_half_plus_two_2_versions_metadata.json)
TENSOR = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}, "name": ""}
METADATA = {
    "model_spec": {"name": "", "signature_name": "", "version": VERSION},
    "metadata": {
        "signature_def": {
            "signature_def": {
                "serving_default": {
                    "inputs": {"inputs": TENSOR},
                    "outputs": {"probabilities": TENSOR},
                    "method_name": "tensorflow/serving/predict",
                    "defaults": {},
                }
            }
        }
    },
}


def request_body(case: Case) -> bytes | None:
    if case.raw is not None:
        return case.raw.encode()
    return None if case.body is None else json.dumps(case.body).encode()


def differences(case: Case, status: int, content_type: str, body) -> list:
    """How an answer (status, Content-Type, parsed JSON body or None) differs from TF Serving's to `case`."""
    found = [] if status == case.status else [f"status {status}, TF Serving's {case.status}"]
    if not content_type.startswith("application/json"):
        found.append(f"Content-Type {content_type!r}, not application/json")
    if case.answer == "error":
        if not (
            isinstance(body, dict) and list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
        ):
            found.append(f'not {{"error": "..."}}: {str(body)[:200]}')
        elif case.message and body["error"] != case.message:
            found.append(f"error {body['error']!r}, TF Serving's {case.message!r}")
    elif case.answer in ("predictions", "outputs"):
        found += _rows_differ(case, body)
    elif case.answer == "status" and body != STATUS:
        found.append(f"status document {body}, TF Serving's {STATUS}")
    elif case.answer == "metadata":
        found += _form_differs("", METADATA, body)
    return found


def _rows_differ(case: Case, body) -> list:
    if not (isinstance(body, dict) and list(body) == [case.answer]):
        return [f'not {{"{case.answer}": [...]}}: {str(body)[:200]}']
    rows = body[case.answer]
    ok = isinstance(rows, list) and len(rows) == case.rows
    ok = ok and all(isinstance(row, list) and len(row) == 10 and all(_is_number(p) for p in row) for row in rows)
    return [] if ok else [f"{case.answer} are not {case.rows} rows of 10 probabilities: {str(rows)[:200]}"]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _form_differs(where: str, template, value) -> list:
    """Where `value` lacks a key of `template`, has one more, or holds another type (lists: each item)."""
    if isinstance(template, dict):
        if not isinstance(value, dict):
            return [f"{where or 'the body'}: {type(value).__name__}, not an object"]
        if template.keys() != value.keys():
            return [f"{where or 'the body'}: keys {sorted(value)}, TF Serving's {sorted(template)}"]
        return [d for key in template for d in _form_differs(f"{where}.{key}", template[key], value[key])]
    if isinstance(template, list):
        if not isinstance(value, list) or not value:
            return [f"{where}: not a non-empty list"]
        return [d for item in value for d in _form_differs(f"{where}[]", template[0], item)]
    return [] if type(template) is type(value) else [f"{where}: {value!r} is not a {type(template).__name__}"]


def write_model(directory: str) -> str:
    """A versions directory as TF Serving's test model has it: version 123, label Version_Label → 123.

    The model is Keras' smallest MNIST-shaped one (28x28x1 → 10 softmax), untrained: conformance is
    about what the server answers, not how well; serve it with MIN_ACCURACY 0.
    """
    import keras

    version = os.path.join(directory, VERSION)
    os.makedirs(version, exist_ok=True)
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    )
    model.save(os.path.join(version, "model.keras"))
    os.symlink(VERSION, os.path.join(directory, LABEL))
    return directory
