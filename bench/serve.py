"""Serving benchmark: cnn-mnist against its HTTP stack's ceiling and a naive server, on loopback, in one run.

    .venv/bin/python bench/serve.py [--model out/] [--seconds 10] [--concurrency 1,4,16,64] [--batch 1]

The reference rows: a bare Flask + waitress endpoint (`bench/bare_server.py`: the same body parsed, a
constant answer of the same shape, the same waitress settings), whose throughput is the ceiling, and a
naive seed-style server (`bench/naive_server.py`). The headline is cnn-mnist's share of the bare
endpoint's throughput at 16 clients. With `--free-forward`, cnn-mnist also runs with a forward pass
that costs nothing (`bench/free_forward_server.py`): the share the app itself allows, before the model;
with `--litert`, with its forward pass run by LiteRT's interpreter (`bench/litert_server.py`).

Each server runs as a subprocess on a free 127.0.0.1 port. "Ready" is the time from starting the
process to the first 200 from /readyz. Then, for every concurrency level, a closed-loop load generator
(each client sends a real test digit, waits for the answer, sends the next) runs for a warm-up and
`--seconds` of measurement. The clients live in separate processes (spawned before anything else, one
thread and one keep-alive `http.client` connection per client), so they never share a GIL with the
bench's bookkeeping; their CPU use is reported so one can see they were not the bottleneck, and so is
the server's CPU time a request and the whole machine's idle share (a server near 100 % of one core
with the machine partly idle is bound by its GIL, not by the cores). A thread
samples the server's /proc/PID/status every 20 ms for peak RSS, split into anonymous memory (what the
server allocated) and file-backed pages (mostly shared libraries: TensorFlow's alone are ~530 MB).

Bounded: every level ends after warm-up + seconds (+ the client timeout for a request in flight), and
servers are killed on exit, Ctrl-C, SIGTERM or any exception. Only loopback is ever contacted.
"""

import argparse
import atexit
import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

from loadgen import (
    HEADERS,
    HOST,
    LoadGenerator,
    RssSampler,
    cpu_seconds,
    machine_idle,
    memory,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_servers = []  # Popen objects to kill on the way out


# ---- servers ----------------------------------------------------------------------------------------


def free_port():
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_server(name, argv, port, log_path, ready_timeout, checkout=ROOT):
    """Start the server (its code from `checkout`), poll /readyz every 20 ms; → (Popen, seconds to the first 200)."""
    started = time.monotonic()
    with open(log_path, "wb") as log:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", PYTHONPATH=checkout)
        process = subprocess.Popen(
            argv, cwd=checkout, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )  # its own group: killed whole, spared our Ctrl-C
    _servers.append(process)
    while time.monotonic() - started < ready_timeout and process.poll() is None:
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                conn.close()
                return process, time.monotonic() - started
            conn.close()
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.02)
    with open(log_path, "rb") as stream:
        tail = stream.read()[-2000:].decode(errors="replace")
    raise SystemExit(f"bench: {name} did not get ready (exit {process.poll()}); {log_path} ends:\n{tail}")


def stop_servers():
    for process in _servers:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
    _servers.clear()


def check_answers(port, bodies, batch):
    """A few requests, checked for the answer's shape; → the digits answered (to compare the servers)."""
    conn, digits = http.client.HTTPConnection(HOST, port, timeout=60), []
    for body in bodies[: max(1, 32 // batch)]:
        conn.request("POST", "/predict", body, HEADERS)
        response = conn.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            raise SystemExit(f"bench: /predict answered {response.status}: {answer}")
        for item in answer if batch > 1 else [answer]:
            assert isinstance(item["digit"], int) and len(item["probabilities"]) == 10, item
            digits.append(item["digit"])
    conn.close()
    return digits


# ---- the run ----------------------------------------------------------------------------------------


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q / 100 * len(sorted_values)))] if sorted_values else None


def bench_server(name, argv, args, bodies, generator, log_dir, checkout=ROOT):
    port = free_port()
    log_path = os.path.join(log_dir, name.split()[0] + ".log")
    process, ready = start_server(name, argv + ["--port", str(port)], port, log_path, args.ready_timeout, checkout)
    sampler = RssSampler(process.pid)
    sampler.start()
    result = {
        "server": name,
        "ready_s": ready,
        "idle_rss_mb": memory(process.pid),
        "digits": check_answers(port, bodies, args.batch),
        "levels": [],
    }
    print(f"{name}: ready in {ready:.2f} s, idle RSS {result['idle_rss_mb']['VmRSS']:.0f} MB", flush=True)
    for clients in args.concurrency:
        sampler.take()
        cpu, load_cpu, idle, wall = cpu_seconds(process.pid), generator.cpu_seconds(), machine_idle(), time.monotonic()
        latencies, errors, seconds = generator.run(port, bodies, clients, args.warmup, args.seconds, args.timeout)
        anon_first, anon_last = sampler.anon_between(wall + args.warmup + 0.3, time.monotonic())
        wall = time.monotonic() - wall  # the CPU shares include the warm-up
        cpu, load_cpu = cpu_seconds(process.pid) - cpu, generator.cpu_seconds() - load_cpu
        idle = [after - before for after, before in zip(machine_idle(), idle, strict=True)]
        latencies.sort()
        level = {
            "clients": clients,
            "requests_per_s": len(latencies) / seconds,
            "predictions_per_s": len(latencies) * args.batch / seconds,
            "p50_ms": 1000 * (percentile(latencies, 50) or float("nan")),
            "p99_ms": 1000 * (percentile(latencies, 99) or float("nan")),
            "requests": len(latencies),
            "errors": len(errors),
            "error_samples": sorted(set(errors))[:3],
            "peak_rss_mb": sampler.take(),
            "server_cpu_percent": 100 * cpu / wall,
            "server_cpu_ms_per_request": 1000 * cpu / max(len(latencies) * wall / seconds, 1),
            "machine_idle_percent": 100 * idle[0] / max(idle[1], 1e-9),
            "anon_mb_first_last": (anon_first, anon_last),
            "load_generator_cpu_percent": 100 * load_cpu / wall,
        }
        result["levels"].append(level)
        print(
            f"  {clients:>3} clients: {level['predictions_per_s']:8.1f} predictions/s, p50 {level['p50_ms']:.1f} ms, "
            f"p99 {level['p99_ms']:.1f} ms, errors {len(errors)}; CPU: server {level['server_cpu_percent']:.0f}% "
            f"({level['server_cpu_ms_per_request']:.2f} ms a request), load generator "
            f"{level['load_generator_cpu_percent']:.0f}%, machine idle {level['machine_idle_percent']:.0f}% "
            f"{level['error_samples'][:1]}",
            flush=True,
        )
    sampler.stopped = True
    result["peak_rss_mb"] = sampler.overall or result["idle_rss_mb"]
    stop_servers()
    return result


def _growth(first, last):
    return "–" if first is None else f"{first:.0f} → {last:.0f} ({(last - first) / first:+.1%})"


def report(results, labels):
    lines = [
        (
            "| server | clients | requests/s | predictions/s | p50 ms | p99 ms | errors | peak RSS MB (anon) "
            "| anon MB first → last | server CPU % | server CPU ms a request | machine idle % |"
        ),
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        for lv in r["levels"]:
            rss = lv["peak_rss_mb"]
            lines.append(
                f"| {r['server']} | {lv['clients']} | {lv['requests_per_s']:.1f} | {lv['predictions_per_s']:.1f} "
                f"| {lv['p50_ms']:.1f} | {lv['p99_ms']:.1f} | {lv['errors']} | {rss['VmRSS']:.0f} "
                f"({rss['RssAnon']:.0f}) | {_growth(*lv['anon_mb_first_last'])} | {lv['server_cpu_percent']:.0f} "
                f"| {lv['server_cpu_ms_per_request']:.2f} | {lv['machine_idle_percent']:.0f} |"
            )
    lines.append("")
    by_name = {r["server"].split()[0]: r for r in results}
    ours = by_name.get("cnn-mnist")
    comparisons = (
        ("cnn-mnist", "bare", "share of the bare endpoint"),
        ("cnn-mnist", "naive", "speed-up over the naive server"),
        ("cnn-mnist", "baseline", "throughput against the --compare checkout"),
        ("free-forward", "bare", "free-forward cnn-mnist's share of the bare endpoint"),
        ("litert", "bare", "LiteRT cnn-mnist's share of the bare endpoint"),
    )
    for subject, reference, label in comparisons:
        if subject in by_name and reference in by_name:
            for lv, ref in zip(by_name[subject]["levels"], by_name[reference]["levels"], strict=True):
                ratio = lv["requests_per_s"] / max(ref["requests_per_s"], 1e-9)
                lines.append(
                    f"{label} at {lv['clients']} clients: "
                    + (f"{ratio:.0f}x" if reference == "naive" else f"{ratio:.0%}")
                )
    lines.append(
        "ready (process start to first 200 from /readyz): "
        + ", ".join(f"{r['server']} {r['ready_s']:.2f} s" for r in results)
    )
    for r in results:
        peak, digits = r["peak_rss_mb"], r["digits"]
        accuracy = sum(d == int(y) for d, y in zip(digits, labels, strict=False)) / len(digits)  # fewer digits
        unchecked = r is by_name.get("bare") or r is by_name.get("free-forward")  # constant answers
        checked = "" if unchecked else f"; {accuracy:.0%} of the {len(digits)} checked digits right"
        lines.append(
            f"peak RSS {r['server']}: {peak['VmRSS']:.0f} MB = {peak['RssAnon']:.0f} MB anon + "
            f"{peak['RssFile']:.0f} MB file-backed + {peak['RssShmem']:.0f} MB shmem{checked}"
        )
    if ours and "naive" in by_name:
        same = sum(a == b for a, b in zip(ours["digits"], by_name["naive"]["digits"], strict=True))
        lines.append(
            f"cnn-mnist and the naive server answered the same digit for {same}/{len(ours['digits'])} checked images"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--model", help="a model file or trainer output directory; default: train a quick one in a temp dir")
    add("--backend", help="cnn-mnist's Keras backend (default: the server's default)")
    add("--seconds", type=float, default=10.0, help="measured seconds per level (default 10)")
    add("--warmup", type=float, default=2.0, help="unmeasured warm-up seconds per level (default 2)")
    add("--concurrency", default="1,4,16,64", help="client counts (default 1,4,16,64)")
    add("--batch", type=int, default=1, help="images per request (default 1); predictions = requests x batch")
    add("--skip-naive", action="store_true", help="leave out the naive server")
    add("--skip-bare", action="store_true", help="leave out the bare Flask + waitress endpoint")
    add(
        "--free-forward",
        action="store_true",
        help="also measure cnn-mnist with a forward pass that costs nothing "
        "(bench/free_forward_server.py): what the app allows before the model's arithmetic",
    )
    add(
        "--litert",
        action="store_true",
        help="also measure cnn-mnist with its forward pass run by LiteRT's "
        "interpreter (bench/litert_server.py; needs pip install ai-edge-litert)",
    )
    add(
        "--compare",
        metavar="CHECKOUT",
        help="also measure the cnn-mnist of another checkout (e.g. a git worktree "
        "of an older commit) in the same run, with the same flags",
    )
    add("--threads", type=int, help="waitress threads for cnn-mnist and the bare endpoint (default: cnn-mnist's)")
    add("--json", metavar="OUT", help="write the results here")
    add("--processes", type=int, default=2, help="load-generator processes (default 2)")
    add("--timeout", type=float, default=30.0, help="client socket timeout in seconds (default 30)")
    add("--ready-timeout", type=float, default=180.0, help="give up on a server not ready after this many seconds")
    add("--server-args", default="", help='extra cnn-mnist flags, e.g. "--threads 16 --max-batch-delay-ms 1"')
    add("--dataset", default=os.path.join(ROOT, "data", "mnist-small.npz"), help="test digits to send")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if not all(0 < c <= 256 for c in args.concurrency) or not 0 < args.seconds <= 600 or not 0 <= args.warmup <= 60:
        parser.error("--concurrency takes 1-256 clients a level, --seconds 0-600 and --warmup 0-60")
    if not 1 <= args.batch <= 256 or not 1 <= args.processes <= 8:
        parser.error("--batch takes 1-256 and --processes 1-8")
    return args


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)  # so that `finally` kills the servers


def main(argv=None) -> int:
    args = parse_args(argv)
    generator = LoadGenerator(min(args.processes, max(args.concurrency)))  # first: spawn before any thread
    atexit.register(stop_servers)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="cnn-mnist-bench-") as tmp:
        try:
            model = os.path.abspath(args.model) if args.model else None  # the --compare server runs elsewhere
            if not model:
                model = os.path.join(tmp, "model")
                print("bench: no --model; training a quick one (1 epoch, 2000 digits)", flush=True)
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "cnn_mnist.training.cli",
                        "--dataset",
                        args.dataset,
                        "--epochs",
                        "1",
                        "--train-samples",
                        "2000",
                        "--output",
                        model,
                    ],
                    cwd=ROOT,
                    check=True,
                    stdout=subprocess.DEVNULL,
                    timeout=900,
                )
            with np.load(args.dataset) as data:
                images, labels = data["x_test"][:1024], data["y_test"][:1024]
            groups = [images[i : i + args.batch] for i in range(0, len(images) - args.batch + 1, args.batch)]
            bodies = [json.dumps({"pixels": (g[0] if args.batch == 1 else g).tolist()}).encode() for g in groups]
            print(
                f"bench: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {args.seconds:g} s a level "
                f"after {args.warmup:g} s warm-up; {args.batch} image(s) a request",
                flush=True,
            )
            threads = ["--threads", str(args.threads)] if args.threads else []
            flags = (
                ["--model", model, *threads]
                + (["--backend", args.backend] if args.backend else [])
                + shlex.split(args.server_args)
            )  # cnn-mnist's, for it and the variants of it below
            ours = [sys.executable, "-m", "cnn_mnist.serving.cli", *flags]
            servers = [(f"cnn-mnist ({args.backend or 'default backend'})", ours, ROOT)]
            if args.compare:
                servers.append(
                    (f"baseline cnn-mnist ({os.path.abspath(args.compare)})", ours, os.path.abspath(args.compare))
                )
            if args.free_forward:
                servers.append(
                    (
                        "free-forward cnn-mnist (its forward pass replaced by a constant)",
                        [
                            sys.executable,
                            os.path.join(ROOT, "bench", "free_forward_server.py"),
                            *flags,
                            "--min-accuracy",
                            "0",
                        ],
                        ROOT,
                    )
                )
            if args.litert:
                servers.append(
                    (
                        "litert cnn-mnist (its forward pass run by LiteRT's interpreter)",
                        [
                            sys.executable,
                            os.path.join(ROOT, "bench", "litert_server.py"),
                            *flags,
                            "--backend",
                            "tensorflow",
                        ],
                        ROOT,
                    )
                )
            if not args.skip_bare:
                servers.insert(
                    0,
                    (
                        "bare Flask + waitress (parses the body, answers a constant)",
                        [sys.executable, os.path.join(ROOT, "bench", "bare_server.py"), *threads],
                        ROOT,
                    ),
                )
            if not args.skip_naive:
                servers.append(
                    (
                        "naive (Flask + model.predict)",
                        [
                            sys.executable,
                            os.path.join(ROOT, "bench", "naive_server.py"),
                            "--model",
                            model,
                            "--backend",
                            "tensorflow",
                        ],
                        ROOT,
                    )
                )
            results = [
                bench_server(name, argv, args, bodies, generator, tmp, checkout) for name, argv, checkout in servers
            ]
        finally:
            generator.close()  # first, so that a server told to drain is not kept busy by our clients
            stop_servers()
    print("\n" + report(results, labels))
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(
                {"args": vars(args), "cpus": os.cpu_count(), "load_average": os.getloadavg(), "results": results},
                stream,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
