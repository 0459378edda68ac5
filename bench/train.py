"""Training throughput per backend, and the settings tried to speed up the default path.

Each measurement runs in a fresh interpreter (the backend is fixed at import) on the bundled digits,
times epochs after the first (which pays for tracing/compilation) and reports samples/s and the share
of the CPU's fp32 peak. The network costs 12.0 M multiply-adds forward per image, so one training
sample (forward + backward) is about 72 MFLOP.

    python bench/train.py                       # shipped settings on all three backends
    python bench/train.py --variants            # also the alternatives tried on tensorflow
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOP_PER_SAMPLE = 72e6
# (name, overrides): the alternatives that were measured for the default (tensorflow) path
VARIANTS = [
    ("shipped", {}),
    ("no XLA (jit_compile=False)", {"jit_compile": False}),
    ("batch 256", {"batch_size": 256}),
    ("steps_per_execution=8", {"steps_per_execution": 8}),
    ("oneDNN off", {"env": {"TF_ENABLE_ONEDNN_OPTS": "0"}}),
    ("XLA's classic CPU runtime", {"env": {"XLA_FLAGS": "--xla_cpu_use_thunk_runtime=false"}}),
]


def worker(backend: str, overrides: dict, samples: int, epochs: int) -> dict:
    """Train in this process with the shipped model and compile settings, changed by `overrides`."""
    from cnn_mnist.core.backends import select_backend

    select_backend(backend)
    import numpy as np

    from cnn_mnist.core.data import load_dataset
    from cnn_mnist.core.net import build_model
    from cnn_mnist.core.preprocessing import to_model_input
    from cnn_mnist.training.trainer import make_deterministic

    dataset = load_dataset(os.path.join(ROOT, "data", "mnist-small.npz"))
    x, y = to_model_input(dataset.x_train[:samples]), dataset.y_train[:samples].astype(np.int32)
    make_deterministic(0)
    compile_overrides = {k: v for k, v in overrides.items() if k in ("jit_compile", "steps_per_execution")}
    model = build_model(**compile_overrides)
    batch_size = overrides.get("batch_size", 128)
    rates = []
    for _ in range(epochs):
        started = time.perf_counter()
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        rates.append(len(x) / (time.perf_counter() - started))
    return {"samples_per_s": statistics.median(rates[1:]), "epochs": rates}


def measure(name, backend, overrides, args) -> dict:
    """The median over `args.repeats` fresh processes: on this VM a whole run is sometimes 2x slower."""
    env = {**os.environ, **overrides.get("env", {})}
    spec = json.dumps({k: v for k, v in overrides.items() if k != "env"})
    command = [sys.executable, __file__, "--worker", backend, spec, str(args.samples), str(args.epochs)]
    rates = []
    for _ in range(args.repeats):
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
        if result.returncode != 0:
            raise SystemExit(f"{name} on {backend} failed:\n{result.stderr[-2000:]}")
        rates.append(json.loads(result.stdout.strip().splitlines()[-1])["samples_per_s"])
    rate = statistics.median(rates)
    gflops = rate * FLOP_PER_SAMPLE / 1e9
    return {
        "name": name,
        "backend": backend,
        "samples_per_s": rate,
        "runs": rates,
        "gflops": gflops,
        "peak_share": gflops / args.peak_gflops,
    }


def cpu_description() -> str:
    with open("/proc/cpuinfo") as stream:
        info = stream.read()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    vector = "AVX-512" if "avx512f" in flags else "AVX2+FMA" if "avx2" in flags else "SSE"
    return f"{os.cpu_count()} cores, {model}, {vector}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--variants", action="store_true", help="also time the alternatives on tensorflow")
    parser.add_argument("--samples", type=int, default=10000, help="training digits per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is not counted")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting, each in a fresh process")
    parser.add_argument(
        "--peak-gflops",
        type=float,
        default=320.0,
        help="the machine's fp32 peak (default: 2 cores x 160 GFLOP/s, as the issue states)",
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    runs = [("shipped", backend, {}) for backend in args.backends.split(",")]
    if args.variants:
        runs += [(name, "tensorflow", overrides) for name, overrides in VARIANTS[1:]]
    print(
        f"# training throughput: {args.samples} samples/epoch, median of epochs 2..{args.epochs}, "
        f"median of {args.repeats} runs; {cpu_description()}"
    )
    print(f"| backend | settings | samples/s (median) | runs | GFLOP/s | % of {args.peak_gflops:.0f} GFLOP/s |")
    print("|---|---|---:|---|---:|---:|")
    results = []
    for name, backend, overrides in runs:
        row = measure(name, backend, overrides, args)
        results.append(row)
        runs_text = ", ".join(f"{rate:,.0f}" for rate in row["runs"])
        print(
            f"| {backend} | {name} | {row['samples_per_s']:,.0f} | {runs_text} | {row['gflops']:.0f} "
            f"| {100 * row['peak_share']:.0f} % |",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(results, stream, indent=2)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        backend, spec, samples, epochs = sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(worker(backend, spec, samples, epochs)))
    else:
        main()
