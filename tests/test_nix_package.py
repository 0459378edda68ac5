"""package.nix, model.nix and nix/packages.nix against nixpkgs' real lib and fake builders that return
their arguments (tests/nix/package-eval.nix): nothing is built, no nixpkgs is needed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from nixeval import HARNESS, eval_error, eval_json, nixpkgs_lib

TENSORFLOW_ONLY = {
    "tensorflow",
    "tensorflow-bin",
    "tf2onnx",
    "onnxruntime",
    "scikit-learn",
    "orbax-checkpoint",
    "tf-keras",
}


def report(*args: str):
    return eval_json(HARNESS / "package-eval.nix", "--argstr", "nixpkgsLib", nixpkgs_lib(), *args, "-A", "report")


TRAINING = {"keras", "numpy", "h5py", "pillow", "matplotlib"}
SERVING = {"flask", "waitress", "prometheus-client", "orjson", "psycopg", "psycopg-pool"}
BACKEND_LIBRARIES = {"tensorflow": {"tensorflow-bin"}, "jax": {"jax", "jaxlib"}, "torch": {"torch"}}


def test_package_dependencies_follow_backend():
    r = report()
    for backend, extra in BACKEND_LIBRARIES.items():
        for kind, libraries in [("packages", TRAINING | SERVING), ("trainers", TRAINING)]:
            p = r[kind][backend]
            assert set(p["dependencies"]) == libraries | extra, (kind, backend)
            assert p["makeWrapperArgs"] == ["--set-default", "KERAS_BACKEND", backend]
            assert p["backend"] == backend
    d = r["defaultPackage"]
    assert d["backend"] == "tensorflow"
    assert (d["pname"], d["version"]) == ("cnn-mnist", "0.1.0")  # from pyproject.toml
    assert d["pyproject"] is True and d["mainProgram"] == "cnn-mnist"
    assert set(d["platforms"]) == {"x86_64-linux", "aarch64-linux"}
    # the Nix tests need nix-instantiate and ../shared, the browser tests Chromium: none is in the sandbox
    assert d["disabledTestPaths"] == ["tests/test_nix*.py", "tests/test_browser.py", "tests/test_fuzz.py"]
    assert d["disabledTestMarks"] == ["slow"]
    assert d["nativeCheckInputs"] == ["pytestCheckHook", "hypothesis", "jsonschema-rs"]
    # the trainer's source has no tests; the application's check phase runs them
    t = r["trainers"]["tensorflow"]
    assert (t["pname"], t["doCheck"], t["mainProgram"]) == ("cnn-mnist-trainer", False, "cnn-mnist-train")
    assert r["theanoPackageEvaluates"] is False


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_jax_and_torch_packages_carry_no_tensorflow(backend: str):
    p = report()["packages"][backend]
    assert not TENSORFLOW_ONLY & set(p["closure"]), p["closure"]
    # keras' own check imports every backend; its import check runs with ours
    assert p["keras"] == {"doCheck": False, "pythonImportsCheck": ["keras"], "env": {"KERAS_BACKEND": backend}}
    assert {"absl-py", "ml-dtypes", "namex", "optree", "rich", "h5py", "numpy"} <= set(p["closure"])
    # keras itself carries the backend, so its import check can run
    expected = {"jax": {"jax", "jaxlib"}, "torch": {"torch"}}[backend]
    assert expected <= set(p["kerasDependencies"])


def test_tensorflow_package_carries_one_tensorflow():
    p = report()["packages"]["tensorflow"]
    # the wheel (tensorflow-bin), not also nixpkgs' source-built tensorflow that keras lists
    assert TENSORFLOW_ONLY & set(p["closure"]) == {"tensorflow-bin"}
    assert p["keras"] == {"doCheck": False, "pythonImportsCheck": ["keras"], "env": {"KERAS_BACKEND": "tensorflow"}}


def test_model_derivation_runs_the_trainer():
    r = report()
    m = r["defaultModel"]
    assert m["dataset"] == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
    assert m["datasetHash"] == "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    assert m["nativeBuildInputs"] == ["cnn-mnist-trainer-tensorflow"]
    flags = " ".join(m["buildPhase"].replace("\\\n", " ").split())
    assert (
        "cnn-mnist-train --dataset /nix/store/0000-mnist.npz --epochs 10 --batch-size 128 "
        '--learning-rate 0.001 --seed 0 --backend tensorflow --output "$out"'
    ) in flags
    for var in ["HOME", "XDG_CACHE_HOME", "KERAS_HOME", "MPLCONFIGDIR"]:
        assert f"{var}=$TMPDIR" in flags, var
    c = r["customModel"]
    assert (c["pname"], c["version"]) == ("cnn-mnist-model-jax", "e5-s7")
    assert c["nativeBuildInputs"] == ["cnn-mnist-trainer-jax"]
    flags = " ".join(c["buildPhase"].replace("\\\n", " ").split())
    assert "--dataset /data/mnist-small.npz --epochs 5 --batch-size 64" in flags
    assert "--seed 7 --backend jax" in flags
    assert r["theanoModelEvaluates"] is False and r["zeroEpochsEvaluates"] is False


def test_model_floors():
    r = report()
    assert r["defaultModel"]["minAccuracy"] == 0.98
    assert r["quickModelFloor"] == 0.9
    assert r["badFloorEvaluates"] is False


def run_gate(phase: str, accuracy: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """model.nix's installCheckPhase on a fake trainer output, as stdenv would run it."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ["model.keras", "model.h5", "metrics.json", "training-curves.png"]:
        (out / name).write_text("x")
    (out / "accuracy.txt").write_text(accuracy)
    script = "runHook() { :; }\n" + phase
    return subprocess.run(
        ["bash", "-eu", "-c", script],
        env={"out": str(out), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("accuracy, passes", [("0.9912\n", True), ("0.98", True), ("0.9799\n", False), ("0.5", False)])
def test_model_build_fails_below_its_floor(accuracy: str, passes: bool, tmp_path: Path):
    proc = run_gate(report()["defaultModel"]["installCheckPhase"], accuracy, tmp_path)
    assert (proc.returncode == 0) is passes, proc.stderr
    last = (proc.stderr if not passes else proc.stdout).strip().splitlines()[-1]
    if passes:
        assert last == f"test accuracy: {accuracy.strip()} (floor 0.98)"
    else:
        assert last == (
            f"cnn-mnist model: test accuracy {accuracy.strip()} is below the floor 0.98; "
            f"to accept it, build model.override {{ minAccuracy = {accuracy.strip()}; }}"
        )


@pytest.mark.parametrize(
    "accuracy, message",
    [("n/a", "accuracy.txt holds 'n/a', not a number"), ("", "cnn-mnist-train did not write accuracy.txt")],
)
def test_model_build_fails_on_a_missing_or_malformed_accuracy(accuracy: str, message: str, tmp_path: Path):
    proc = run_gate(report()["defaultModel"]["installCheckPhase"], accuracy, tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].endswith(message)


@pytest.mark.parametrize(
    "attr, message",
    [
        ("theanoModel", 'backend "theano" is not supported: Keras 3 removed the Theano backend'),
        ("theanoPackage", 'backend "theano" is not supported: Keras 3 removed the Theano backend'),
        ("unknownBackendModel", 'unknown backend "mxnet"'),
    ],
)
def test_unsupported_backends_fail_at_evaluation(attr: str, message: str):
    stderr = eval_error(HARNESS / "package-eval.nix", "--argstr", "nixpkgsLib", nixpkgs_lib(), "-A", attr)
    assert message in stderr


def test_best_model_reads_accuracy_files(tmp_path: Path):
    for seed, acc in enumerate(["0.971\n", "0.9853\n", "0.9853\n", "0.962\n"]):
        (tmp_path / f"seed-{seed}").mkdir()
        (tmp_path / f"seed-{seed}" / "accuracy.txt").write_text(acc)
    r = report("--argstr", "models", str(tmp_path))
    assert r["bestModelSeed"] == 1  # tie between seeds 1 and 2: the lower seed
    assert r["bestOfTwo"] == 2
    (tmp_path / "seed-3" / "accuracy.txt").write_text("0.99\n")
    r = report("--argstr", "models", str(tmp_path))
    assert r["bestModelSeed"] == 3
