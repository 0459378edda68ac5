"""A model's identity is its trainer, its data and its parameters (issue 14 §2).

A copy of the checkout is evaluated by tests/nix/build-eval.nix: the project's overlay on fake builders
that make real derivations, so Nix 2.8 computes every .drv path into a local store. Whatever attribute
model.nix takes its trainer from, the edit either reaches the model's .drv or it does not.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import nixbuild
import nixeval
import numpy as np
import pytest
from nixeval import ROOT


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The tracked files (as they are in the working tree), to edit."""
    root = tmp_path / "checkout"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in filter(None, files.stdout.split("\0")):
        if (ROOT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, root / name)
    return root


def drv_paths(root: Path, store: Path) -> dict:
    return nixbuild.evaluate(root, store, "drvPaths")


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


OUTSIDE_TRAINING = {
    "README.md": "\nA typo fixed.\n",
    "tests/test_api.py": "\n\ndef test_new():\n    pass\n",
    "cnn_mnist/serving/static/app.js": "\n// a page change\n",
    "cnn_mnist/serving/app.py": "\n# a server change\n",
    "cnn_mnist/serving/server-defaults.json": " ",
    "cnn_mnist/corrections/store.py": "\n# a corrections store change\n",
    "module.nix": "\n# an option's description\n",
}


@pytest.mark.parametrize("name", sorted(OUTSIDE_TRAINING))
def test_an_edit_outside_training_leaves_every_model_as_it_was(checkout: Path, tmp_path: Path, name: str):
    store = tmp_path / "store"
    before = drv_paths(checkout, store)
    append(checkout / name, OUTSIDE_TRAINING[name])
    after = drv_paths(checkout, store)
    assert (after["model"], after["models"], after["trainer"]) == (before["model"], before["models"], before["trainer"])
    if name != "module.nix":  # the application itself is rebuilt
        assert after["package"] != before["package"]


def test_a_new_test_dependency_leaves_every_model_as_it_was(checkout: Path, tmp_path: Path):
    store = tmp_path / "store"
    before = drv_paths(checkout, store)
    pyproject = checkout / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('test = ["pytest",', 'test = ["pytest", "pytest-timeout",'))
    after = drv_paths(checkout, store)
    assert after["model"] == before["model"] and after["trainer"] == before["trainer"]
    assert after["package"] != before["package"]


@pytest.mark.parametrize(
    "name",
    [
        "cnn_mnist/core/net.py",
        "cnn_mnist/core/preprocessing.py",
        "cnn_mnist/core/data.py",
        "cnn_mnist/training/trainer.py",
    ],
)
def test_an_edit_to_the_training_code_changes_every_model(checkout: Path, tmp_path: Path, name: str):
    store = tmp_path / "store"
    before = drv_paths(checkout, store)
    append(checkout / name, "\n# a change that could change the weights\n")
    after = drv_paths(checkout, store)
    assert after["model"] != before["model"] and after["trainer"] != before["trainer"]
    assert all(after["models"][m] != before["models"][m] for m in before["models"])


def test_a_training_requirement_changes_every_model(checkout: Path, tmp_path: Path):
    store = tmp_path / "store"
    before = drv_paths(checkout, store)
    pyproject = checkout / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"keras>=3.6"', '"keras>=3.7"'))
    assert drv_paths(checkout, store)["model"] != before["model"]


def test_full_dataset_models_ask_for_a_big_parallel_builder_and_the_quick_one_for_none(tmp_path: Path):
    features = nixbuild.evaluate(ROOT, tmp_path / "store", "systemFeatures")
    assert features == {
        "default": ["big-parallel"],
        "tensorflow": ["big-parallel"],
        "jax": ["big-parallel"],
        "torch": ["big-parallel"],
        "quick": [],
    }


# ---- extraData (issue 18 §7) --------------------------------------------------------------------------------

FIXED_OUTPUT = (
    '[ (derivation {{ name = "corrections.npz"; system = "x86_64-linux"; builder = "/bin/sh"; '
    'outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "{sha256}"; }}) ]'
)


def model_with(store: Path, *args: str) -> dict:
    return nixbuild.evaluate(ROOT, store, "recipes.model", *args)


def query(store: Path, what: str, drv: str) -> list[str]:
    """`nix-store --query` of a .drv in the local store: `--references` are its input sources and derivations."""
    nix_store = Path(nixeval.nix_instantiate()).with_name("nix-store")
    proc = subprocess.run(
        [str(nix_store), "--store", f"local?root={store}", "--query", what, drv],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.split()


def export_file(path: Path) -> Path:
    np.savez(path, x_train=np.full((3, 28, 28), 7, np.uint8), y_train=np.array([1, 2, 3], np.uint8))
    return path


def test_no_extra_data_is_the_model_as_it_was(tmp_path: Path):
    store = tmp_path / "store"
    default = model_with(store)
    assert default["drvPath"] == drv_paths(ROOT, store)["model"]
    assert model_with(store, "--arg", "extraData", "[ ]") == default
    assert "--extra-data" not in default["buildPhase"]


def test_an_extra_file_is_an_input_of_the_model_and_its_build_trains_on_it(tmp_path: Path):
    store = tmp_path / "store"
    export = export_file(tmp_path / "corrections-2026-12-01.npz")
    model = model_with(store, "--arg", "extraData", f"[ {export} ]")  # model.override { extraData = [ ./… ]; }
    assert model["drvPath"] != model_with(store)["drvPath"]
    [source] = [p for p in query(store, "--references", model["drvPath"]) if p.endswith("-corrections-2026-12-01.npz")]
    assert nixbuild.store_path(store, source).read_bytes() == export.read_bytes()  # in the store by its content
    assert f"--extra-data {source} " in " ".join(model["buildPhase"].split())
    export.write_bytes(export.read_bytes() + b"\0")  # another export: another model
    assert model_with(store, "--arg", "extraData", f"[ {export} ]")["drvPath"] != model["drvPath"]


def test_a_fixed_output_derivation_is_an_input_of_the_model(tmp_path: Path):
    store = tmp_path / "store"
    sha256 = hashlib.sha256(export_file(tmp_path / "corrections.npz").read_bytes()).hexdigest()
    model = model_with(store, "--arg", "extraData", FIXED_OUTPUT.format(sha256=sha256))
    [fetch] = [p for p in query(store, "--references", model["drvPath"]) if p.endswith("-corrections.npz.drv")]
    assert f"--extra-data {query(store, '--outputs', fetch)[0]} " in " ".join(model["buildPhase"].split())


def test_extra_data_that_no_hash_pins_is_refused(tmp_path: Path):
    export = export_file(tmp_path / "corrections.npz")
    for value in (f'[ "{export}" ]', f"{export}"):
        error = nixeval.eval_error(
            ROOT / "tests" / "nix" / "build-eval.nix",
            "--read-write-mode",
            "--store",
            f"local?root={tmp_path / 'store'}",
            "--argstr",
            "nixpkgsLib",
            nixeval.nixpkgs_lib(),
            "--arg",
            "extraData",
            value,
            "-A",
            "recipes.model",
        )
        assert "extraData must be a list of paths or fixed-output derivations (pinned by hash)" in error
