"""Stalls in the tail: p90 and p99 of five consecutive 8 s runs at 16 clients, from a fresh start.

    .venv/bin/python bench/tail.py --model out/ [--runs 5] [--seconds 8] [--clients 16] [--server-args "..."]

The goal (issue 15 §7): in every run, p99 ≤ 2.5 × p90 and p99 ≤ 50 ms. The server is started afresh and
the runs follow each other with no warm-up, as a freshly deployed server meets its first traffic; each
client sends one real test digit a request and waits for the answer (bench/loadgen.py). The reference is
the run's own p90: a stall shows as a p99 far above it. `--compare CHECKOUT` runs another checkout's
server the same way in the same invocation. Only loopback is contacted.
"""

import argparse
import atexit
import json
import os
import sys
import tempfile
from datetime import datetime, timezone

import numpy as np
from loadgen import LoadGenerator
from serve import ROOT, free_port, percentile, start_server, stop_servers

from train import cpu_description

GOAL_RATIO, GOAL_P99_MS = 2.5, 50.0


def runs(name, argv, checkout, args, bodies, generator, log_dir):
    port = free_port()
    start_server(
        name,
        argv + ["--port", str(port)],
        port,
        os.path.join(log_dir, f"{len(os.listdir(log_dir))}.log"),
        180.0,
        checkout,
    )
    rows = []
    for _ in range(args.runs):
        latencies, errors, seconds = generator.run(port, bodies, args.clients, 0.0, args.seconds, 30.0)
        latencies.sort()
        p50, p90, p99 = (1000 * percentile(latencies, q) for q in (50, 90, 99))
        rows.append(
            {
                "requests_per_s": len(latencies) / seconds,
                "p50_ms": p50,
                "p90_ms": p90,
                "p99_ms": p99,
                "max_ms": 1000 * latencies[-1],
                "errors": len(errors),
                "meets_goal": p99 <= GOAL_RATIO * p90 and p99 <= GOAL_P99_MS and not errors,
            }
        )
    stop_servers()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--server-args", default="")
    parser.add_argument("--compare", metavar="CHECKOUT", help="also run another checkout's cnn-mnist")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    generator = LoadGenerator(2)  # first: spawned before any thread
    atexit.register(stop_servers)
    with np.load(os.path.join(ROOT, "data", "mnist-small.npz")) as data:
        bodies = [json.dumps({"pixels": image.tolist()}).encode() for image in data["x_test"][:1024]]
    argv = [
        sys.executable,
        "-m",
        "cnn_mnist.serving.cli",
        "--model",
        os.path.abspath(args.model),
        *args.server_args.split(),
    ]
    servers = [("cnn-mnist", ROOT)] + ([("baseline", os.path.abspath(args.compare))] if args.compare else [])
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu_description()}; {args.runs} runs of "
        f"{args.seconds:g} s at {args.clients} clients from a fresh start",
        flush=True,
    )
    results = {}
    with tempfile.TemporaryDirectory() as logs:
        try:
            for name, checkout in servers:
                results[name] = runs(name, argv, checkout, args, bodies, generator, logs)
        finally:
            generator.close()
    ok = True
    for name, rows in results.items():
        print(f"\n{name}\n| run | requests/s | p50 ms | p90 ms | p99 ms | p99/p90 | max ms | errors | goal |")
        print("|---|---|---|---|---|---|---|---|---|")
        for i, r in enumerate(rows, 1):
            print(
                f"| {i} | {r['requests_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{r['p99_ms'] / r['p90_ms']:.2f} | {r['max_ms']:.0f} | {r['errors']} | "
                f"{'met' if r['meets_goal'] else 'missed'} |"
            )
        ok &= name != "cnn-mnist" or all(r["meets_goal"] for r in rows)
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(results, stream, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
