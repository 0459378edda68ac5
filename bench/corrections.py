"""Corrections over HTTP: what SQLite and PostgreSQL sustain at 16 clients, and what they cost /predict.

    flock /tmp/bench.lock .venv/bin/python bench/corrections.py --model out [--seconds 8] [--rounds 2]

For each store, one `cnn-mnist --corrections STORE --corrections-per-minute 0` and, in rounds:
/predict alone at 16 clients (the reference), /predict beside 16 correction clients each sending one a
second (paced), /predict beside 16 correction clients flat out, and corrections alone flat out. Every
client is closed-loop on its own keep-alive connection, in two spawned processes (one for /predict, one
for corrections), and sends a different real digit each request (a correction: a different digit and
label, so every one is a new row). The goal (issue 18): /predict's p99 rises ≤ 10 % beside corrections,
read on the median of the rounds (a shared machine's noise moves one round's p99 by tens of percent).
The server's own CPU time a request (from /proc, over a phase of one kind only) is the figure noise
moves least.
PostgreSQL is Debian's, started in a temporary directory as tests/postgres.py does. Only loopback is used.
"""

import argparse
import atexit
import http.client
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

from loadgen import cpu_seconds, machine_idle
from serve import HEADERS, HOST, ROOT, free_port, percentile, start_server, stop_servers

from train import cpu_description

sys.path.insert(0, os.path.join(ROOT, "tests"))
from postgres import PostgresServer  # noqa: E402  (the tests' real PostgreSQL, started the same way)

CLIENTS = 16
GOAL_P99_RISE = 0.10
DATASET = os.path.join(ROOT, "data", "mnist-small.npz")


def _bodies(kind):
    import numpy as np

    with np.load(DATASET) as data:
        images = np.concatenate([data["x_train"], data["x_test"]])
    if kind == "predict":
        return [json.dumps({"pixels": image.tolist()}).encode() for image in images[:1024]]
    return [image.tolist() for image in images]


def _load(port, kind, clients, first, interval, t_start, t_measure, t_end):
    """`clients` closed-loop threads on `kind` ("predict" or "correct"); → (latencies in the window, errors)."""
    bodies = _bodies(kind)
    out = []

    def client(k):
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        latencies, errors, i = [], [], first + k
        # paced clients spread over the interval: started together, 16 would arrive at once every second
        time.sleep(max(0.0, t_start + k * interval / clients - time.monotonic()))
        while time.monotonic() < t_end:
            if kind == "predict":
                path, body = "/predict", bodies[i % len(bodies)]
            else:  # image i mod N with label i div N: a new (image, label) for every i below 10 N
                image, label = bodies[i % len(bodies)], (i // len(bodies)) % 10
                path, body = "/v1/corrections", json.dumps({"pixels": image, "label": label}).encode()
            i += clients
            sent = time.monotonic()
            try:
                conn.request("POST", path, body, HEADERS)
                response = conn.getresponse()
                data = response.read()
                problem = None if response.status in (200, 201) else f"HTTP {response.status}: {data[:120]!r}"
            except (OSError, http.client.HTTPException) as error:
                conn.close()
                problem = repr(error)
            done = time.monotonic()
            if t_measure <= done <= t_end:
                (errors.append(problem) if problem else latencies.append(done - sent))
            if interval:
                time.sleep(max(0.0, sent + interval - time.monotonic()))
        conn.close()
        out.append((latencies, errors))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [x for lat, _ in out for x in lat], [e for _, err in out for e in err]


class Phases:
    """Runs phases of /predict and/or correction clients at once in two spawned processes."""

    def __init__(self, seconds, warmup=1.0):
        self.pool = multiprocessing.get_context("spawn").Pool(2)
        self.seconds, self.warmup, self.offset = seconds, warmup, 0

    def run(self, server, port, predict, correct, interval=0.0):
        """One phase; → {kind: figures}, and "machine": the server's CPU seconds and the machine's busy share."""
        start = time.monotonic() + 3.0  # the workers build their bodies meanwhile
        times = (start, start + self.warmup, start + self.warmup + self.seconds)
        jobs = {}
        if predict:
            jobs["predict"] = self.pool.apply_async(_load, (port, "predict", CLIENTS, 0, 0.0, *times))
        if correct:
            jobs["correct"] = self.pool.apply_async(_load, (port, "correct", CLIENTS, self.offset, interval, *times))
            self.offset += 20_000  # the next phase's corrections are new rows too (6 phases: i < 200,000)
        time.sleep(max(0.0, times[1] - time.monotonic()))
        cpu, (idle, total) = cpu_seconds(server.pid), machine_idle()
        time.sleep(max(0.0, times[2] - time.monotonic()))
        (idle_end, total_end), cpu_end = machine_idle(), cpu_seconds(server.pid)
        results = {"machine": {"server_cpu_s": cpu_end - cpu, "busy": 1 - (idle_end - idle) / (total_end - total)}}
        for kind, job in jobs.items():
            latencies, errors = job.get(timeout=self.seconds + 120)
            latencies.sort()
            results[kind] = {
                "per_s": len(latencies) / self.seconds,
                "p50_ms": 1000 * percentile(latencies, 50),
                "p99_ms": 1000 * percentile(latencies, 99),
                "errors": len(errors),
                "first_error": errors[0] if errors else None,
            }
        return results

    def close(self):
        self.pool.terminate()


def bench_store(name, url, args, phases, log_dir):
    port = free_port()
    argv = [sys.executable, "-m", "cnn_mnist.serving.cli", "--model", os.path.abspath(args.model)]
    argv += ["--port", str(port), "--corrections", url, "--corrections-per-minute", "0"]
    server, _ = start_server(name, argv, port, os.path.join(log_dir, f"{name}.log"), 180.0)
    rounds = []
    try:
        phases.run(server, port, predict=True, correct=False)  # warm-up, not counted
        for _ in range(args.rounds):
            rounds.append(
                {
                    "alone": phases.run(server, port, predict=True, correct=False),
                    "paced": phases.run(server, port, predict=True, correct=True, interval=1.0),
                    "flat_out": phases.run(server, port, predict=True, correct=True),
                    "corrections_alone": phases.run(server, port, predict=False, correct=True),
                }
            )
    finally:
        stop_servers()
    return rounds


def report(results, seconds):
    """A row per round and the median of the rounds per store; the goal is read on the medians."""
    print(
        "\n| store | round | corrections/s alone | beside /predict | server CPU ms a correction / a prediction | "
        "/predict p50 / p99 ms alone | beside 16/s corrections | p99 rise | beside corrections flat out | p99 rise "
        "| machine busy | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    met = True
    for store, rounds in results.items():
        rows = [_row(r, seconds) for r in rounds]
        for i, row in enumerate(rows, 1):
            _print(store, i, row)
        median = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        _print(store, "median", median)
        met &= median["rise_paced"] <= GOAL_P99_RISE
    return met


def _row(r, seconds):
    alone, paced, flat = r["alone"]["predict"], r["paced"]["predict"], r["flat_out"]["predict"]
    corrections = r["corrections_alone"]
    return {
        "corrections": corrections["correct"]["per_s"],
        "beside": r["flat_out"]["correct"]["per_s"],
        "cpu_correction_ms": 1000
        * corrections["machine"]["server_cpu_s"]
        / (corrections["correct"]["per_s"] * seconds),
        "cpu_prediction_ms": 1000 * r["alone"]["machine"]["server_cpu_s"] / (alone["per_s"] * seconds),
        "p50": alone["p50_ms"],
        "p99": alone["p99_ms"],
        "paced_p50": paced["p50_ms"],
        "paced_p99": paced["p99_ms"],
        "rise_paced": paced["p99_ms"] / alone["p99_ms"] - 1,
        "flat_p50": flat["p50_ms"],
        "flat_p99": flat["p99_ms"],
        "rise_flat": flat["p99_ms"] / alone["p99_ms"] - 1,
        "busy": statistics.mean(p["machine"]["busy"] for p in r.values()),
        "errors": sum(p[k]["errors"] for p in r.values() for k in p if k != "machine"),
    }


def _print(store, label, row):
    print(
        f"| {store} | {label} | {row['corrections']:.0f} | {row['beside']:.0f} | "
        f"{row['cpu_correction_ms']:.2f} / {row['cpu_prediction_ms']:.2f} | {row['p50']:.1f} / {row['p99']:.1f} | "
        f"{row['paced_p50']:.1f} / {row['paced_p99']:.1f} | {100 * row['rise_paced']:+.0f} % | "
        f"{row['flat_p50']:.1f} / {row['flat_p99']:.1f} | {100 * row['rise_flat']:+.0f} % | "
        f"{100 * row['busy']:.0f} % | {row['errors']:.0f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    phases = Phases(args.seconds)  # first: spawned before any thread
    atexit.register(stop_servers)
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu_description()}; {args.rounds} rounds of "
        f"{args.seconds:g} s phases at {CLIENTS} clients each",
        flush=True,
    )
    results = {}
    with tempfile.TemporaryDirectory() as work:
        try:
            for store in args.stores.split(","):
                if store == "sqlite":
                    results[store] = bench_store(store, os.path.join(work, "c.sqlite"), args, phases, work)
                else:
                    with PostgresServer() as postgres:
                        results[store] = bench_store(store, postgres.new_database(), args, phases, work)
        finally:
            phases.close()
    met = report(results, args.seconds)
    print(f"\ngoal (median p99 beside 16 corrections/s ≤ +{100 * GOAL_P99_RISE:.0f} %): {'met' if met else 'missed'}")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(results, stream, indent=1)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
