"""Property-based fuzzing driven by /openapi.json (schemathesis): the document must describe the server.

Every operation gets requests generated from its schema, valid and deliberately invalid. Each answer
must be no 5xx, carry a documented status, content type and body shape; a 405 must carry Allow; and
data the document forbids must be refused. Bounded: a fixed number of examples per operation, in-process.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi import checks as openapi_checks

from cnn_mnist.serving import openapi

EXAMPLES = 40  # per operation; about a minute for the whole document on 2 cores
CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
    openapi_checks.unsupported_method,
]
# derandomize: the same examples on every run, so CI fails only when the code or the document changes
BOUNDED = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
)
schema = schemathesis.openapi.from_dict(openapi.SPEC)  # what /openapi.json serves (asserted below)


@pytest.fixture(scope="module")
def app(trained_model, tmp_path_factory):
    """conftest's app, with corrections on (a fresh SQLite store, no rate limit): every documented route answers."""
    from cnn_mnist.serving.app import create_app

    store = tmp_path_factory.mktemp("corrections") / "corrections.sqlite"
    return create_app({"MODEL": str(trained_model), "CORRECTIONS": str(store), "CORRECTIONS_PER_MINUTE": 0})


def test_the_fuzzed_document_is_the_served_one(client):
    assert client.get("/openapi.json").json == openapi.SPEC


@schema.parametrize()
@BOUNDED
def test_every_answer_conforms_to_the_document(case, app):
    case.operation.schema.app = app  # in-process through WSGI (the `app` fixture: a real model)
    case.validate_response(case.call(app=app), checks=CHECKS)


@pytest.mark.parametrize("path", ["/predict", "/v1/models/cnn-mnist:predict", "/v1/corrections"])
def test_valid_generated_requests_reach_predictions(path, app):
    """Requests generated from the document do get classified on both APIs, and corrections stored: not all refused.

    It generates its own: counting the fuzzing's 200s, it failed when run alone or under -m "not slow".
    """
    classified = []

    @BOUNDED
    @given(case=schema[path]["POST"].as_strategy())
    def generated(case):
        case.operation.schema.app = app
        response = case.call(app=app)
        if response.status_code in (200, 201):  # 201: a correction stored
            case.validate_response(response, checks=CHECKS)  # the document's answer shape: predictions, an id
            classified.append(case)

    generated()
    assert classified, f"none of {EXAMPLES} valid requests generated for {path} was classified"


def test_the_documented_v2_inference_example_is_classified(app):
    """The v2 request's example, with the rest of the case generated, is answered as the document says.

    Generation alone cannot reach a v2 prediction: a schema cannot tie the data's length to the shape.
    Cases given a generated Inference-Header-Content-Length cut the JSON short (their 400 is checked too).
    """
    answers = []

    @BOUNDED
    @given(case=st.one_of(schema["/v2/models/{model_name}/infer"]["POST"].get_strategies_from_examples()))
    def documented(case):
        case.operation.schema.app = app
        response = case.call(app=app)
        case.validate_response(response, checks=CHECKS)
        if "Inference-Header-Content-Length" not in (case.headers or {}):
            answers.append((response.status_code, response.json()))

    documented()
    assert answers and all(status == 200 for status, _ in answers), answers[:3]
    assert {answer["outputs"][0]["name"] for _, answer in answers} == {"digit"}
