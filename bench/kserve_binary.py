"""What the binary tensor data extension saves per KServe v2 request against JSON tensors, in one run.

    .venv/bin/python bench/kserve_binary.py [--model out/] [--batches 1,8,64] [--rounds 5] [--requests 40]

One `cnn-mnist` serves on a free loopback port. Requests of real test digits are built and parsed by
tritonclient (`generate_request_body`, `parse_response_body`: what Triton's own client sends and reads),
as FP32 and as UINT8 tensors, each once as JSON tensors (`binary_data=False` for the input and the
outputs) and once binary (the defaults), and sent one at a time on one keep-alive connection. Per
request: the bytes of the request and response bodies; the server's time, from its /metrics histogram
for the infer route (sum over count, read before and after each block, so blocks of each form
alternate); and the client's latency, building the body to holding the NumPy outputs. The headline is
binary over JSON for each, measured in the same run. Only loopback is contacted.
"""

import argparse
import atexit
import http.client
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone

import numpy as np
from serve import ROOT, free_port, start_server, stop_servers
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput

from train import cpu_description

HOST = "127.0.0.1"
ROUTE = "/v2/models/<model_name>/infer"
FORMS = ("json", "binary")


def request_body(images, datatype, binary):
    """tritonclient's body for `images` → (bytes, headers)."""
    tensor = InferInput("input", list(images.shape), datatype)
    tensor.set_data_from_numpy(images, binary_data=binary)
    outputs = [InferRequestedOutput(name, binary_data=binary) for name in ("probabilities", "digit")]
    body, json_size = InferenceServerClient.generate_request_body([tensor], outputs)
    headers = {"Content-Type": "application/octet-stream" if binary else "application/json"}
    if json_size is not None:
        headers["Inference-Header-Content-Length"] = str(json_size)
    return body, headers


def server_seconds(connection):
    """(sum, count) of the server's request-time histogram for the infer route."""
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    found = {}
    for kind in ("sum", "count"):
        match = re.search(rf'^cnn_mnist_request_seconds_{kind}\{{route="{re.escape(ROUTE)}"\}} (\S+)$', text, re.M)
        found[kind] = float(match.group(1)) if match else 0.0
    return found["sum"], found["count"]


def block(connection, images, datatype, binary, requests):
    """`requests` requests of one form → (request bytes, response bytes, client seconds each, server seconds each)."""
    latencies = []
    before = server_seconds(connection)
    for _ in range(requests):
        started = time.perf_counter()
        body, headers = request_body(images, datatype, binary)
        connection.request("POST", "/v2/models/cnn-mnist/infer", body, headers)
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise SystemExit(f"bench: HTTP {response.status}: {answer[:300]!r}")
        length = response.getheader("Inference-Header-Content-Length")
        result = InferenceServerClient.parse_response_body(answer, header_length=length and int(length))
        digits = result.as_numpy("digit")
        latencies.append(time.perf_counter() - started)
    after = server_seconds(connection)
    assert len(digits) == len(images)
    server = (after[0] - before[0]) / (after[1] - before[1])
    return len(body), len(answer), latencies, server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "out"))
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--rounds", type=int, default=5, help="blocks of each form, alternating")
    parser.add_argument("--requests", type=int, default=40, help="requests a block")
    args = parser.parse_args()
    batches = [int(size) for size in args.batches.split(",")]
    atexit.register(stop_servers)
    with np.load(os.path.join(ROOT, "data", "mnist-small.npz")) as data:
        digits = data["x_test"][: max(batches)]
    port = free_port()
    argv = [sys.executable, "-m", "cnn_mnist.serving.cli", "--model", os.path.abspath(args.model)]
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu_description()}", flush=True)
    with tempfile.TemporaryDirectory() as logs:
        start_server("cnn-mnist", [*argv, "--port", str(port)], port, os.path.join(logs, "server.log"), 180.0)
        connection = http.client.HTTPConnection(HOST, port, timeout=60)
        rows = []
        for datatype in ("FP32", "UINT8"):
            for batch in batches:
                images = digits[:batch] if datatype == "UINT8" else (digits[:batch] / 255).astype(np.float32)
                measured = {form: {"client": [], "server": []} for form in FORMS}
                for form in FORMS:  # warm-up: the first requests of a size compile nothing, but fill caches
                    block(connection, images, datatype, form == "binary", 5)
                for _ in range(args.rounds):
                    for form in FORMS:
                        sent, received, latencies, server = block(
                            connection, images, datatype, form == "binary", args.requests
                        )
                        measured[form].update(sent=sent, received=received)
                        measured[form]["client"] += latencies
                        measured[form]["server"].append(server)
                rows.append((datatype, batch, measured))
        stop_servers()
    print(
        f"\n{args.rounds} alternating blocks of {args.requests} requests per form; "
        "client: median latency; server: median of the blocks' mean time"
    )
    print("| datatype | batch | form | request bytes | response bytes | client ms | server ms |")
    print("|---|---|---|---|---|---|---|")
    ratios = []
    for datatype, batch, measured in rows:
        summary = {}
        for form in FORMS:
            m = measured[form]
            summary[form] = (
                m["sent"] + m["received"],
                statistics.median(m["client"]) * 1000,
                statistics.median(m["server"]) * 1000,
            )
            print(
                f"| {datatype} | {batch} | {form} | {m['sent']:,} | {m['received']:,} | "
                f"{summary[form][1]:.2f} | {summary[form][2]:.2f} |"
            )
        ratios.append((datatype, batch, *(summary["binary"][i] / summary["json"][i] for i in range(3))))
    print("\nbinary / JSON, per request")
    print("| datatype | batch | bytes on the wire | client latency | server time |")
    print("|---|---|---|---|---|")
    for datatype, batch, wire, client, server in ratios:
        print(f"| {datatype} | {batch} | {wire:.3f} | {client:.2f} | {server:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
