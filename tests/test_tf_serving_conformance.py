"""TF Serving's own test cases (tests/tf_serving_cases.py), one test each: our answer is TF Serving's.

Every case cites the TF Serving file and line it comes from. The server runs in-process on an
untrained model of the right shapes, so this module needs no trained model and runs in the Nix check
phase. Where we answer otherwise on purpose (docs/api.md), the test asserts our answer instead.
"""

import json
import re
from dataclasses import replace

import pytest
import tf_serving_cases as tfs

from cnn_mnist.serving.app import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    model = tfs.write_model(str(tmp_path_factory.mktemp("tf-serving-model")))
    return create_app({"MODEL": model, "MIN_ACCURACY": 0}).test_client()


def answer(client, case):
    response = client.open(case.path, method=case.method, data=tfs.request_body(case), content_type="application/json")
    return response, response.get_json(silent=True)


@pytest.mark.parametrize("case", tfs.CONFORMING, ids=lambda case: case.name)
def test_answered_as_tf_serving_answers(client, case):
    response, body = answer(client, case)
    assert tfs.differences(case, response.status_code, response.content_type, body) == [], case.source


@pytest.mark.parametrize("case", tfs.DEVIATIONS, ids=lambda case: case.name)
def test_a_documented_deviation(client, case):
    response, body = answer(client, case)
    assert response.status_code == case.ours != case.status, (case.source, body)
    if case.ours == 200:
        ours = replace(case, status=200, answer="predictions")
        assert tfs.differences(ours, 200, response.content_type, body) == []
    else:
        assert list(body) == ["error"] and body["error"], body
    if case.ours == 405:
        assert response.headers["Allow"], response.headers


def test_every_case_cites_a_tf_serving_file_and_names_are_unique():
    assert len({case.name for case in tfs.CASES}) == len(tfs.CASES)
    for case in tfs.CASES:
        assert case.source.startswith("tensorflow_serving/"), case
        if "_test.cc" in case.source:
            assert case.source.split(":")[1].split()[0].isdigit(), case  # file@commit:line TestName


def test_the_status_document_parses_as_get_model_status_response(client):
    """What a strict protobuf JSON parser accepts: exactly GetModelStatusResponse's fields, nothing more."""
    status = client.get(tfs.MODEL).get_json()
    fields = {"model_version_status": {"version", "state", "status"}, "status": {"error_code", "error_message"}}
    assert set(status) == {"model_version_status"}
    for entry in status["model_version_status"]:
        assert set(entry) == fields["model_version_status"] and set(entry["status"]) == fields["status"]


def test_canary_accuracy_moved_to_readyz_and_metrics(client):
    accuracy = client.get("/readyz").get_json()["model"]["canary_accuracy"]
    assert 0 <= accuracy <= 1
    assert f'cnn_mnist_canary_accuracy{{version="{tfs.VERSION}"}}' in client.get("/metrics").get_data(as_text=True)
    assert "canary_accuracy" not in json.dumps(client.get(tfs.MODEL).get_json())


def test_openapi_documents_every_status_the_cases_get(client):
    """A case on our model's routes gets a status its operation in /openapi.json lists, as schemathesis checks."""
    paths = client.get("/openapi.json").get_json()["paths"]
    templates = {path: re.compile(re.sub(r"\\{[^}]+\\}", "[^/:]+", re.escape(path))) for path in paths}
    checked = 0
    for case in tfs.CASES:
        path = next((path for path, pattern in templates.items() if pattern.fullmatch(case.path)), None)
        operation = paths.get(path, {}).get(case.method.lower())
        if operation:
            status = answer(client, case)[0].status_code
            assert str(status) in operation["responses"], (case.name, status, sorted(operation["responses"]))
            checked += 1
    assert checked >= 40
