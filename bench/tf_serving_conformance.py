"""How many of TF Serving's own test cases a server answers as TF Serving answers them.

    .venv/bin/python bench/tf_serving_conformance.py [--url http://127.0.0.1:8501] [--verbose]

Replays tests/tf_serving_cases.py (status and body form; the documented deviations count as misses)
and prints "N of M answered as TF Serving answers them". Without --url it builds the app in-process
from whichever `cnn_mnist` Python imports, on an untrained model of TF Serving's test layout (version
123, label Version_Label), so PYTHONPATH=<a checkout> measures that checkout:

    git worktree add /tmp/tfs-before b1fab66
    PYTHONPATH=/tmp/tfs-before .venv/bin/python bench/tf_serving_conformance.py

With --url it sends the same requests over HTTP to a running server serving that layout under the
model name cnn-mnist (ours, or TF Serving itself).
"""

import argparse
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import tf_serving_cases as tfs  # noqa: E402  (tests/ is on the path from here on)


def in_process():
    """(send, which code): the app that `import cnn_mnist` finds, on a fresh untrained model."""
    import cnn_mnist
    from cnn_mnist.serving.app import create_app

    model = tfs.write_model(tempfile.mkdtemp(prefix="tf-serving-model-"))
    client = create_app({"MODEL": model, "MIN_ACCURACY": 0}).test_client()

    def send(case):
        response = client.open(
            case.path, method=case.method, data=tfs.request_body(case), content_type="application/json"
        )
        return response.status_code, response.content_type, response.get_json(silent=True)

    return send, os.path.dirname(os.path.dirname(cnn_mnist.__file__))


def over_http(url):
    def send(case):
        request = urllib.request.Request(
            url.rstrip("/") + case.path,
            tfs.request_body(case),
            {"Content-Type": "application/json"},
            method=case.method,
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.headers.get("Content-Type", ""), _json(response.read())
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Content-Type", ""), _json(error.read())

    return send, url


def _json(data: bytes):
    try:
        return json.loads(data)
    except ValueError:
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: the app in-process)")
    parser.add_argument("--verbose", action="store_true", help="print every miss and why")
    args = parser.parse_args()
    send, target = over_http(args.url) if args.url else in_process()
    misses = []
    for case in tfs.CASES:
        found = tfs.differences(case, *send(case))
        if found:
            misses.append((case, found))
    deviations = sum(1 for case, _ in misses if case.deviation)
    print(f"target: {target}")
    print(
        f"{len(tfs.CASES) - len(misses)} of {len(tfs.CASES)} answered as TF Serving answers them "
        f"({deviations} of the {len(misses)} misses are documented deviations)"
    )
    if args.verbose:
        for case, found in misses:
            print(f"- {case.name} [{case.source}]: {'; '.join(found)}")


if __name__ == "__main__":
    main()
