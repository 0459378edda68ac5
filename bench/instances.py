"""Throughput of two cnn-mnist processes behind nginx against one (services.cnn-mnist.instances).

    .venv/bin/python bench/instances.py [--model out/model.keras] [--instances 2] [--connections 16]

Starts `--instances` servers (default settings) and one nginx (Debian's `nginx`, as a non-daemon, with
a generated configuration in a temporary directory) with two loopback listeners: one proxying to the
first server only, one to all of them. The upstream and location directives are nix/upstream.nix's,
the ones module.nix and nix/scale-out.nix give nginx (evaluated with nix-instantiate). wrk
(/usr/bin/wrk) posts one digit per request to /predict; the runs alternate one / all / one / all …
(`--rounds` each), so that drift in a shared machine's load hits both sides alike. The ratio is the
median throughput of all processes over the median of one. Unpinned, the load generator runs on the
same cores as the servers: on a small machine it takes cores the servers would use. On a bigger one,
`--server-cpus` and `--client-cpus` (taskset's lists) keep the servers and wrk + nginx apart.
"""

import argparse
import atexit
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

import numpy as np
from loadgen import HOST, cpu_seconds, machine_idle
from serve import ROOT, free_port, start_server, stop_servers

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def nginx_directives(servers):
    """nix/upstream.nix's upstream and location for these servers: (upstream block, location block)."""
    nix = shutil.which("nix-instantiate")
    if nix is None:
        raise SystemExit("bench: nix-instantiate not found (apt-get install nix-bin): it renders nix/upstream.nix")
    with open(os.path.join(ROOT, "cnn_mnist", "serving", "server-defaults.json")) as file:
        defaults = json.load(file)
    nix_servers = "[ " + " ".join(json.dumps(server) for server in servers) + " ]"
    expr = (
        f"import {os.path.join(ROOT, 'nix', 'upstream.nix')} {{ servers = {nix_servers}; "
        f"channelTimeout = {defaults['channel_timeout']}; maxBodyBytes = {defaults['max_body_bytes']}; }}"
    )
    proc = subprocess.run(
        [nix, "--eval", "--strict", "--json", "--store", "dummy://", "-E", expr],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench: nix/upstream.nix did not evaluate: {proc.stderr.strip()}")
    nginx = json.loads(proc.stdout)
    upstream = "".join(
        f"server {name} " + " ".join(f"{k}={v}" for k, v in sorted(params.items())) + ";\n"
        for name, params in nginx["upstream"]["servers"].items()
    )
    # NixOS' recommendedProxySettings, as far as a loopback bench needs them
    headers = (
        "proxy_set_header Host $host;\nproxy_set_header X-Real-IP $remote_addr;\n"
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\nproxy_set_header X-Forwarded-Proto $scheme;\n"
    )
    return upstream + nginx["upstream"]["extraConfig"], headers + nginx["location"]["extraConfig"]


def pinned(cpus, argv):
    """argv run on the CPUs `cpus` (taskset's list, e.g. 4-15), or anywhere when None."""
    return argv if cpus is None else ["taskset", "-c", cpus, *argv]


def nginx_config(tmp, listeners, workers):
    """nginx.conf with one loopback listener per (port, upstream name, servers)."""
    blocks = []
    for port, name, servers in listeners:
        upstream, location = nginx_directives(servers)
        blocks.append(
            f"upstream {name} {{\n{upstream}}}\n"
            f"server {{\nlisten {HOST}:{port};\nlocation / {{\nproxy_pass http://{name};\n{location}}}\n}}\n"
        )
    temp = "".join(f"{kind}_temp_path {tmp}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the temporary directory
    return (
        f"{user}daemon off;\nworker_processes {workers};\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log warn;\n"
        f"events {{ worker_connections 1024; }}\n"
        f"http {{\naccess_log off;\n{temp}{''.join(blocks)}}}\n"
    )


def start_nginx(tmp, listeners, workers, cpus):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise SystemExit("bench: nginx not found (apt-get install -y nginx)")
    path = os.path.join(tmp, "nginx.conf")
    with open(path, "w") as conf:
        conf.write(nginx_config(tmp, listeners, workers))
    process = subprocess.Popen(pinned(cpus, [nginx, "-p", tmp, "-c", path]), start_new_session=True)
    atexit.register(lambda: (process.terminate(), process.wait(5)))
    deadline = time.monotonic() + 10
    while not os.path.exists(os.path.join(tmp, "nginx.pid")):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bench: nginx did not start (exit {process.poll()}); see {tmp}/error.log")
        time.sleep(0.05)
    return process


def seconds(text):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * UNITS[unit]


def wrk(port, script, connections, duration, threads=2, cpus=None):
    """wrk's throughput, p50/p99 and errors for POST /predict on `port`."""
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        "-s",
        script,
        f"http://{HOST}:{port}/predict",
    ]
    out = subprocess.run(pinned(cpus, argv), capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        raise SystemExit(f"bench: wrk saw socket errors on port {port}:\n{out}")
    return {
        "non_2xx": int(refused.group(1)) if refused else 0,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": seconds(latency["50"]),
        "p99": seconds(latency["99"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "out", "model.keras"))
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    # as `make bench` runs bench/serve.py: the in-flight bound above the connections, so that it measures
    # the processes, not refusals
    parser.add_argument("--server-args", default="--max-in-flight 64", help="extra flags for every server")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--nginx-workers", type=int, default=1)
    parser.add_argument("--server-cpus", help="taskset's CPU list for the servers (a bigger machine: 4-15)")
    parser.add_argument("--client-cpus", help="taskset's CPU list for wrk and nginx (a bigger machine: 0-3)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk not found (apt-get install -y wrk)")
    atexit.register(stop_servers)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    with np.load(os.path.join(ROOT, "data", "mnist-small.npz")) as data:
        digit = data["x_test"][0]
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "post.lua")
        with open(script, "w") as lua:
            body = json.dumps({"pixels": digit.tolist()})
            lua.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n')
            lua.write('wrk.headers["Content-Type"] = "application/json"\n')
        servers = []
        for n in range(args.instances):
            port = free_port()
            argv = [sys.executable, "-m", "cnn_mnist.serving.cli", "--model", args.model, "--port", str(port)]
            argv = pinned(args.server_cpus, argv + args.server_args.split())
            process, _ = start_server(f"cnn-mnist {n + 1}", argv, port, os.path.join(tmp, f"server-{n}.log"), 600)
            servers.append((f"{HOST}:{port}", process))
        one, every = free_port(), free_port()
        listeners = [(one, "one", [servers[0][0]]), (every, "every", [s for s, _ in servers])]
        start_nginx(tmp, listeners, args.nginx_workers, args.client_cpus)
        load = {"threads": args.wrk_threads, "cpus": args.client_cpus}
        for port in (one, every):  # warm-up: every process compiles its batch shapes
            wrk(port, script, args.connections, 3, **load)
        results = {one: [], every: []}
        for _ in range(args.rounds):
            for port in (one, every):
                cpu_before = [cpu_seconds(p.pid) for _, p in servers]
                idle_before, total_before = machine_idle()
                time.sleep(2)  # requests wrk abandoned at the end of the last run finish first
                result = wrk(port, script, args.connections, args.seconds, **load)
                idle_after, total_after = machine_idle()
                result["server_cpu"] = [
                    (cpu_seconds(p.pid) - b) / args.seconds for (_, p), b in zip(servers, cpu_before, strict=True)
                ]
                result["busy"] = 1 - (idle_after - idle_before) / (total_after - total_before)
                results[port].append(result)
        with open(os.path.join(tmp, "error.log")) as log:
            problems = [line.split("] ", 1)[-1].split(", client")[0] for line in log if "[warn]" not in line]
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if "Model name" in line), "?")
    print(
        f"bench: {os.cpu_count()} CPUs ({model_name}); wrk -t{args.wrk_threads} -c{args.connections}, "
        f"{args.seconds:g} s a run; nginx {args.nginx_workers} worker(s)"
    )
    header = f"{'behind nginx':>14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
    print(f"{header} {'non-2xx':>8} {'server CPU (cores)':>22} {'machine busy':>13}")
    for port, label in ((one, "1 process"), (every, f"{args.instances} processes")):
        for r in results[port]:
            cores = " + ".join(f"{c:.2f}" for c in r["server_cpu"])
            print(
                f"{label:>14} {r['rps']:8.1f} {r['p50'] * 1e3:8.1f} {r['p99'] * 1e3:8.1f} {r['non_2xx']:8d} "
                f"{cores:>22} {r['busy']:12.0%}"
            )
    ratio = statistics.median(r["rps"] for r in results[every]) / statistics.median(r["rps"] for r in results[one])
    # what nginx saw fail (a process it then took out of rotation for fail_timeout), counted by message
    for problem, count in sorted(Counter(problems).items(), key=lambda item: -item[1]):
        print(f"nginx error.log: {count} x {problem}")
    print(f"throughput, {args.instances} processes / 1 (medians of {args.rounds} runs each): {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
