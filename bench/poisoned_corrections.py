"""What mislabelled corrections do to the accuracy the gates read (issue 18 §8), against a clean run.

One run trains the same configuration (`cnn-mnist-train`, seed 0) on the bundled data's first 7,000
training digits plus 0, 300 and 3,000 of the other 3,000, exported as corrections are (the contract's
mnist.npz layout) with every label wrong: a digit d is labelled (d + 1) mod 10. Real digits, never test
digits. Each model is then scored on what each gate reads, as the difference from the clean reference:

* the build gate: the test accuracy on the official 10,000 test digits (accuracy.txt; models.quick's
  floor is 0.9);
* the server: the canary accuracy on the shipped canary set (floor `min_accuracy` 0.9; on a reload,
  `max_regression` 0.01 below the model serving);
* what the gates do not read: the worst digit's test accuracy, and how many of the poisoned digits the
  model answers with the poisoned label.

    flock /tmp/bench.lock python bench/poisoned_corrections.py [--epochs 2] [--counts 0 300 3000]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASET = os.path.join(ROOT, "data", "mnist-small.npz")
BASE = 7000  # training digits of the bundled 10,000; the rest are the pool the poison is drawn from
SERVER = json.loads(Path(ROOT, "cnn_mnist", "serving", "server-defaults.json").read_text())
QUICK_FLOOR = 0.9  # nix/quick-model.nix's minAccuracy


def poison(path: str, count: int) -> None:
    """`count` real training digits outside the base set, each with a wrong label, in the export layout."""
    with np.load(DATASET) as data:
        images, labels = data["x_train"][BASE : BASE + count], data["y_train"][BASE : BASE + count]
    np.savez(path, x_train=images, y_train=((labels.astype(np.int64) + 1) % 10).astype(np.uint8))


def train(output: str, epochs: int, extra: str | None) -> dict:
    command = [sys.executable, "-m", "cnn_mnist.training.cli", "--dataset", DATASET, "--train-samples", str(BASE)]
    command += ["--epochs", str(epochs), "--output", output] + (["--extra-data", extra] if extra else [])
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    with open(os.path.join(output, "metrics.json")) as stream:
        return json.load(stream)


def score(output: str, count: int) -> dict:
    """The gates' figures for one model, computed here from its model.keras."""
    import keras

    from cnn_mnist.core.preprocessing import to_model_input
    from cnn_mnist.serving.canary import load_canary

    model = keras.saving.load_model(os.path.join(output, "model.keras"))
    with np.load(DATASET) as data:
        x_test, y_test = data["x_test"], data["y_test"]
        x_poison, y_poison = data["x_train"][BASE : BASE + count], data["y_train"][BASE : BASE + count]
    predicted = model.predict(to_model_input(x_test), batch_size=512, verbose=0).argmax(axis=1)
    canary = load_canary()
    canary_predicted = model.predict(canary.images, batch_size=512, verbose=0).argmax(axis=1)
    per_digit = [float(np.mean(predicted[y_test == d] == d)) for d in range(10)]
    poisoned_answers = None
    if count:
        answers = model.predict(to_model_input(x_poison), batch_size=512, verbose=0).argmax(axis=1)
        poisoned_answers = float(np.mean(answers == (y_poison.astype(np.int64) + 1) % 10))
    return {
        "test_accuracy": float(np.mean(predicted == y_test)),
        "canary_accuracy": float(np.mean(canary_predicted == canary.labels)),
        "worst_digit": int(np.argmin(per_digit)),
        "worst_digit_accuracy": min(per_digit),
        "poisoned_label_answers": poisoned_answers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--counts", type=int, nargs="+", default=[0, 300, 3000])
    args = parser.parse_args()
    if max(args.counts) > 10000 - BASE:
        parser.error(f"at most {10000 - BASE} poisoned digits: the bundled set holds no more outside the base set")
    rows = []
    with tempfile.TemporaryDirectory() as top:
        for count in args.counts:
            extra = None
            if count:
                extra = os.path.join(top, f"poisoned-{count}.npz")
                poison(extra, count)
            output = os.path.join(top, f"model-{count}")
            metrics = train(output, args.epochs, extra)
            row = {"poisoned": count, **score(output, count)}
            assert abs(row["test_accuracy"] - metrics["test"]["accuracy"]) < 1e-6, (row, metrics["test"])
            rows.append(row)
    clean = next(row for row in rows if row["poisoned"] == 0)
    for row in rows:
        row["test_difference"] = row["test_accuracy"] - clean["test_accuracy"]
        row["canary_difference"] = row["canary_accuracy"] - clean["canary_accuracy"]
        row["build_gate"] = "passes" if round(row["test_accuracy"], 4) >= QUICK_FLOOR else "refuses"
        # the server's own comparison (ModelStore._load), floating point included
        regressed = row["canary_accuracy"] < clean["canary_accuracy"] - SERVER["max_regression"]
        refused = row["canary_accuracy"] < SERVER["min_accuracy"] or regressed
        row["server_reload"] = "refuses" if refused else "serves"
        print(json.dumps(row), flush=True)
    print(
        "\n| poisoned | test accuracy | vs clean | canary | vs clean | worst digit | poisoned label answered "
        "| build gate (0.9) | server reload (0.9, max regression 0.01) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        answered = "—" if row["poisoned_label_answers"] is None else f"{row['poisoned_label_answers']:.1%}"
        print(
            f"| {row['poisoned']:,} | {row['test_accuracy']:.4f} | {row['test_difference']:+.4f} "
            f"| {row['canary_accuracy']:.3f} | {row['canary_difference']:+.3f} "
            f"| {row['worst_digit']}: {row['worst_digit_accuracy']:.4f} | {answered} "
            f"| {row['build_gate']} | {row['server_reload']} |"
        )


if __name__ == "__main__":
    main()
