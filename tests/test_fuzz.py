"""Property-based fuzzing driven by /openapi.json (schemathesis): the document must describe the server.

Every operation gets requests generated from its schema, valid and deliberately invalid. Each answer
must be no 5xx, carry a documented status, content type and body shape; a 405 must carry Allow; and
data the document forbids must be refused. Bounded: a fixed number of examples per operation, in-process.
"""

import schemathesis
from hypothesis import HealthCheck, settings
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
predictions = []  # (path, status) of every 200 with predictions, to prove valid requests got through


schema = schemathesis.openapi.from_dict(openapi.SPEC)  # what /openapi.json serves (asserted below)


def test_the_fuzzed_document_is_the_served_one(client):
    assert client.get("/openapi.json").json == openapi.SPEC


@schema.parametrize()
# derandomize: the same examples on every run, so CI fails only when the code or the document changes
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
          derandomize=True)
def test_every_answer_conforms_to_the_document(case, app):
    case.operation.schema.app = app  # in-process through WSGI (the `app` fixture: a real model)
    response = case.call(app=app)
    if response.status_code == 200 and case.method == "POST":
        predictions.append(case.path)  # the schema check below proves the answer holds predictions
    case.validate_response(response, checks=CHECKS)


def test_valid_generated_requests_reached_predictions():
    """Runs after the fuzzing above: requests generated from the document did get classified, on both APIs."""
    assert "/predict" in predictions, predictions
    assert any(path.endswith(":predict") for path in predictions), predictions
