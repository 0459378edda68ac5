"""The packages' and the model's Nix build phases, run here as Nix runs them (tests/nixbuild.py).

Nothing here builds nixpkgs; every phase that can run without it runs, in a sandbox like Nix's, from the
sources Nix itself realises and the attributes the Nix files give nixpkgs' builders.
"""

from __future__ import annotations

import email.parser
import json
import zipfile
from pathlib import Path

import nixbuild
import numpy as np
import pytest
from conftest import DATASET
from nixeval import ROOT

from cnn_mnist.core.data import sha256_file

pytestmark = pytest.mark.slow  # a wheel build and a check phase or a training run each


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nix-store")


@pytest.fixture(scope="module")
def recipes(store):
    return nixbuild.evaluate(ROOT, store, "recipes")


@pytest.fixture(scope="module")
def trainer(recipes, store, tmp_path_factory):
    return nixbuild.build_python_package(recipes["trainer"], store, tmp_path_factory.mktemp("trainer"))


@pytest.fixture(scope="module")
def package(recipes, store, tmp_path_factory):
    return nixbuild.build_python_package(recipes["package"], store, tmp_path_factory.mktemp("package"))


def wheel_metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        return (
            email.parser.Parser().parsestr(archive.read(metadata).decode()),
            archive.read(entry_points).decode(),
            {n for n in names if ".dist-info/" not in n},
        )


def test_the_check_phase_passes_as_pytest_check_hook_runs_it(package, recipes):
    log = package["logs"]["check"].stdout
    summary = log.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    assert int(summary.split(" passed")[0].split()[-1]) >= 100, summary  # the quick tests, not a handful
    assert nixbuild.pytest_flags(recipes["package"]) == [
        "-m",
        "pytest",
        "--ignore-glob=tests/test_nix*.py",
        "--ignore-glob=tests/test_browser.py",
        "--ignore-glob=tests/test_fuzz.py",
        "-m",
        "not (slow)",
    ]


def test_a_test_import_the_package_does_not_declare_fails_its_check_phase(recipes, store, tmp_path):
    """The simulation can fail, as Nix's did before the tests' imports were declared."""
    recipe = dict(recipes["package"], nativeCheckInputs=["pytestCheckHook", "jsonschema-rs"])
    with pytest.raises(nixbuild.PhaseFailed) as failed:
        nixbuild.build_python_package(recipe, store, tmp_path)
    assert failed.value.phase == "pytestCheckPhase"
    assert failed.value.proc.returncode == 2  # pytest's "interrupted": errors during collection
    assert "No module named 'hypothesis'" in failed.value.proc.stdout


def test_the_check_phase_sees_only_declared_distributions(package, recipes):
    probe = """python - <<'EOF'
import importlib.metadata, importlib.util, json
plugins = sorted({ep.dist.metadata["Name"] for ep in importlib.metadata.entry_points(group="pytest11")})
print(json.dumps({name: importlib.util.find_spec(name) is not None for name in
                  ["hypothesis", "jsonschema_rs", "flask", "tensorflow", "schemathesis", "playwright", "torch"]}))
print(json.dumps(sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions())))
print(json.dumps(plugins))
EOF"""
    proc = package["sandbox"].run("probe", probe, path=[package["env"] / "bin"], cwd=package["source"])
    importable, distributions, plugins = map(json.loads, proc.stdout.strip().splitlines())
    assert importable == {
        "hypothesis": True,
        "jsonschema_rs": True,
        "flask": True,
        "tensorflow": True,
        "schemathesis": False,
        "playwright": False,
        "torch": False,
    }
    assert {"cnn-mnist", "keras", "pytest", "hypothesis", "jsonschema_rs", "waitress"} <= set(distributions)
    assert not {"schemathesis", "playwright", "build", "torch", "jax", "tensorboard"} & set(distributions)
    assert plugins == ["hypothesis"]  # schemathesis', anyio's and playwright's plugins stay out


def test_the_sandbox_has_loopback_only_and_no_chromium_or_nix(package):
    probe = r"""
echo "home=$HOME"
for program in chromium chromedriver nix nix-instantiate nix-build; do
  command -v "$program" >/dev/null && echo "found $program"
  [ -e "/usr/bin/$program" ] && echo "found /usr/bin/$program"
done
python - <<'EOF'
import socket
with socket.socket() as server:
    server.bind(("127.0.0.1", 0)); server.listen()
    with socket.create_connection(server.getsockname(), timeout=5):
        print("loopback ok")
try:
    socket.create_connection(("192.0.2.1", 80), timeout=5)  # TEST-NET-1: never answered anyway
    print("network reachable")
except OSError as error:
    print("network:", error.strerror)
EOF"""
    out = package["sandbox"].run("probe", probe, path=[package["env"] / "bin"], cwd=package["source"]).stdout
    assert "home=/homeless-shelter" in out and "found" not in out and "loopback ok" in out
    assert "network: Network is unreachable" in out


def test_the_trainer_wheel_holds_the_training_code_alone(trainer):
    metadata, entry_points, files = wheel_metadata(trainer["wheel"])
    assert (metadata["Name"], metadata["Version"]) == ("cnn-mnist-trainer", "0.1.0")
    assert metadata["License-Expression"] == "MIT" and metadata.get_all("License-File") == ["LICENSE"]
    assert sorted(metadata.get_all("Requires-Dist")) == ["h5py", "keras>=3.6", "matplotlib", "numpy", "pillow"]
    assert entry_points.split() == ["[console_scripts]", "cnn-mnist-train", "=", "cnn_mnist.training.cli:main"]
    expected = {"cnn_mnist/__init__.py"} | {
        str(p.relative_to(ROOT))
        for sub in ("core", "training")
        for p in (ROOT / "cnn_mnist" / sub).iterdir()
        if p.suffix in (".py", ".json")
    }
    assert files == expected
    # the phases after the build ran: imports from the installed output, the wrapped script
    assert (trainer["bin"] / "cnn-mnist-train").is_file()
    assert "build" in trainer["logs"] and "imports" in trainer["logs"]


def test_the_package_wheel_holds_the_server_the_trainer_and_their_data(package):
    metadata, entry_points, files = wheel_metadata(package["wheel"])
    assert (metadata["Name"], metadata["Version"]) == ("cnn-mnist", "0.1.0")
    assert metadata["Description-Content-Type"] == "text/markdown" and "make run" in metadata.get_payload()
    requirements = {line.split(";")[0].split(">")[0].strip() for line in metadata.get_all("Requires-Dist")}
    assert {"keras", "flask", "waitress", "prometheus-client", "orjson"} <= requirements
    assert "cnn-mnist = cnn_mnist.serving.cli:main" in entry_points
    assert "cnn-mnist-train = cnn_mnist.training.cli:main" in entry_points
    assert "cnn-mnist-corrections = cnn_mnist.corrections.cli:main" in entry_points
    for name in [
        "cnn_mnist/serving/static/index.html",
        "cnn_mnist/serving/static/app.js",
        "cnn_mnist/serving/server-defaults.json",
        "cnn_mnist/serving/canary-data/mnist-t10k-first1000.npz",
        "cnn_mnist/training/trainer.py",
        "cnn_mnist/core/net.py",
    ]:
        assert name in files, name
    assert not any(name.startswith("tests/") for name in files)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """1,000 training and 500 test digits of the bundled set: a training run of seconds."""
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    with np.load(DATASET) as data:
        np.savez(
            path,
            x_train=data["x_train"][:1000],
            y_train=data["y_train"][:1000],
            x_test=data["x_test"][:500],
            y_test=data["y_test"][:500],
        )
    return path


@pytest.mark.parametrize("floor, passes", [(0.5, True), (0.999, False)])
def test_the_model_build_trains_and_gates_as_model_nix_says(trainer, store, tiny_dataset, tmp_path, floor, passes):
    recipe = nixbuild.evaluate(
        ROOT, store, "recipes.model", "--argstr", "dataset", str(tiny_dataset), "--arg", "minAccuracy", str(floor)
    )
    assert f"--dataset {tiny_dataset}" in " ".join(recipe["buildPhase"].split())
    if passes:
        out, proc = nixbuild.run_model_build(recipe, trainer, tmp_path)
        accuracy = (out / "accuracy.txt").read_text().strip()
        assert proc.stdout.strip().splitlines()[-1] == f"test accuracy: {accuracy} (floor {floor})"
        assert {"model.keras", "model.h5", "metrics.json", "accuracy.txt", "training-curves.png"} <= {
            p.name for p in out.iterdir()
        }
    else:
        with pytest.raises(nixbuild.PhaseFailed) as failed:
            nixbuild.run_model_build(recipe, trainer, tmp_path)
        last = failed.value.proc.stderr.strip().splitlines()[-1]
        assert f"is below the floor {floor}; to accept it, build model.override {{ minAccuracy = " in last


def test_the_model_build_trains_on_extra_data_as_model_nix_passes_it(trainer, store, tiny_dataset, tmp_path):
    """model.override { extraData = [ ./corrections.npz ]; }: the file from the store, behind the same gate."""
    export = tmp_path / "corrections-2026-12-01.npz"
    with np.load(DATASET) as data:  # training digits the tiny dataset leaves out, 100 of them held out
        np.savez(
            export,
            x_train=data["x_train"][1000:1300],
            y_train=data["y_train"][1000:1300],
            x_test=data["x_train"][1300:1400],
            y_test=data["y_train"][1300:1400],
        )
    recipe = nixbuild.evaluate(
        ROOT,
        store,
        "recipes.model",
        *("--argstr", "dataset", str(tiny_dataset), "--arg", "minAccuracy", "0.5"),
        *("--arg", "extraData", f"[ {export} ]"),
    )
    assert "--extra-data /nix/store/" in recipe["buildPhase"]
    recipe["buildPhase"] = nixbuild.in_local_store(recipe["buildPhase"], store)  # where this store keeps /nix/store
    out, proc = nixbuild.run_model_build(recipe, trainer, tmp_path)
    metrics = json.loads((out / "metrics.json").read_text())
    [extra] = metrics["extra_data"]
    assert (extra["sha256"], extra["train_samples"], extra["holdout_samples"]) == (sha256_file(export), 300, 100)
    assert 0 <= extra["holdout_accuracy"] <= 1
    assert metrics["dataset"]["train_samples"] == 1000 and metrics["dataset"]["test_samples"] == 500
    accuracy = (out / "accuracy.txt").read_text().strip()
    assert proc.stdout.strip().splitlines()[-1] == f"test accuracy: {accuracy} (floor 0.5)"
