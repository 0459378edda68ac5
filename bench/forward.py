"""The forward pass alone: what one pass of the served model costs, idle and beside a busy Python thread.

    .venv/bin/python bench/forward.py --model out/model.keras [--litert] [--passes 300]

For batches of 1, 8 and 16 digits: the median wall time of a pass and the process CPU time per digit
(all of TensorFlow's threads), first on an otherwise idle process, then with one Python thread
spinning beside it, as a request thread holding the GIL would. The pass is the server's own
(`cnn_mnist.serving.inference.Predictor`: the compiled function, no `model.predict`); `--litert` adds the
same model run by LiteRT's interpreter (`bench/litert_server.py`). Serving throughput is bounded by
these figures: at 16 clients a pass holds about 8 digits. With `--litert`, it also compares the two
runtimes' answers on 1,000 test digits.
"""

import argparse
import os
import statistics
import sys
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def measure(forward, batch, passes):
    """(median ms a pass, process CPU ms a digit) over `passes` calls."""
    walls, cpu = [], time.process_time()
    for _ in range(passes):
        started = time.perf_counter()
        forward(batch)
        walls.append(time.perf_counter() - started)
    return 1000 * statistics.median(walls), 1000 * (time.process_time() - cpu) / (passes * len(batch))


def spin(stop):
    while not stop.is_set():
        sum(range(200))  # pure Python: holds the GIL but for the interpreter's switch interval


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a .keras file")
    parser.add_argument("--passes", type=int, default=300, help="passes per figure (default 300)")
    parser.add_argument("--litert", action="store_true", help="also LiteRT's interpreter (pip install ai-edge-litert)")
    args = parser.parse_args()
    if args.litert:
        from litert_server import require_litert

        require_litert("forward")
    from cnn_mnist.core.cli import import_keras

    import_keras("tensorflow", "forward")
    from cnn_mnist.core.preprocessing import to_model_input
    from cnn_mnist.serving.inference import Predictor

    predictor = Predictor(args.model, "1")
    runtimes = {"tensorflow (cnn-mnist's compiled function)": predictor.predict}
    if args.litert:
        from litert_server import litert_forward

        runtimes["LiteRT interpreter (XNNPACK, 2 threads)"] = litert_forward(predictor.model)
    with np.load(os.path.join(ROOT, "data", "mnist-small.npz")) as data:
        test_digits = to_model_input(data["x_test"][:1000])
    digits = test_digits[:16]
    print(f"bench: {os.cpu_count()} CPUs, {args.passes} passes a figure, model {args.model}\n")
    print(
        "| runtime | digits a pass | ms a pass, idle | CPU ms a digit, idle "
        "| ms a pass, one busy Python thread beside |"
    )
    print("|---|--:|--:|--:|--:|")
    for name, forward in runtimes.items():
        for size in (1, 8, 16):
            batch = digits[:size]
            measure(forward, batch, 20)  # warm
            idle_ms, cpu_per_digit = measure(forward, batch, args.passes)
            stop = threading.Event()
            spinner = threading.Thread(target=spin, args=(stop,))
            spinner.start()
            try:
                busy_ms, _ = measure(forward, batch, args.passes)
            finally:
                stop.set()
                spinner.join()
            print(f"| {name} | {size} | {idle_ms:.2f} | {cpu_per_digit:.3f} | {busy_ms:.2f} |", flush=True)
    (_, tensorflow), *others = runtimes.items()
    reference = agree_on(tensorflow, test_digits) if others else None
    for name, forward in others:
        probabilities = agree_on(forward, test_digits)
        same = int((probabilities.argmax(1) == reference.argmax(1)).sum())
        print(
            f"\n{name} against tensorflow on {len(test_digits)} test digits: the same digit for {same}, "
            f"largest difference in a probability {np.abs(probabilities - reference).max():.1e}"
        )


def agree_on(forward, images, batch=64):
    """The probabilities `forward` gives for `images`, in passes of at most `batch` as the server runs them."""
    return np.concatenate([forward(images[start : start + batch]) for start in range(0, len(images), batch)])


if __name__ == "__main__":
    main()
