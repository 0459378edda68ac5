"""Source hygiene: the packages' `src` (nix/source.nix) hold the project's files only, so stray files in
a checkout (__pycache__, editor back-ups) leave their store paths, and every model, unchanged; the
trainer's holds the training code alone. Store paths are computed by Nix 2.8 itself, against a local
store under a temporary directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from nixeval import HARNESS, ROOT, eval_json, nixpkgs_lib, run_nix

COPIED = [
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "cnn_mnist",
    "tests",
    "train/train.py",
    "data/mnist-small.npz",
    "nix/source.nix",
]
PARTS = ["package", "trainer"]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the project's source files, to litter."""
    root = tmp_path / "checkout"
    for name in COPIED:
        source, target = ROOT / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".*"))
        else:
            shutil.copy2(source, target)
    return root


def source_path(root: Path, store: Path, part: str = "package") -> str:
    proc = run_nix(
        "--read-write-mode",
        "--store",
        f"local?root={store}",
        "--eval",
        "-E",
        f'import {root}/nix/source.nix {{ root = {root}; part = "{part}"; }}',
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().strip('"')


def files_in(store: Path, path: str) -> set[str]:
    top = store / path.lstrip("/")
    return {str(p.relative_to(top)) for p in top.rglob("*") if p.is_file()}


@pytest.mark.parametrize("part", PARTS)
def test_stray_files_do_not_change_the_source_path(checkout: Path, tmp_path: Path, part: str):
    store = tmp_path / "store"
    clean = source_path(checkout, store, part)
    assert clean.startswith("/nix/store/") and clean.endswith("-source")

    (checkout / "cnn_mnist" / "__pycache__").mkdir()
    (checkout / "cnn_mnist" / "__pycache__" / "x.pyc").write_bytes(b"\x00compiled")
    (checkout / "cnn_mnist" / "serving" / "static" / "__pycache__").mkdir()
    (checkout / "cnn_mnist" / "app.py~").write_text("backup")
    (checkout / "cnn_mnist" / "training" / "cli.py~").write_text("backup")
    (checkout / "cnn_mnist" / "core" / "#net.py#").write_text("an editor's autosave")
    (checkout / "cnn_mnist" / ".app.py.swp").write_text("swap")
    (checkout / "cnn_mnist" / "notes.txt").write_text("scratch")
    (checkout / "tests" / "__pycache__").mkdir()
    (checkout / "tests" / "__pycache__" / "conftest.cpython-311.pyc").write_bytes(b"\x00")
    (checkout / "out").mkdir()
    (checkout / "out" / "model.keras").write_text("a trained model lying around")
    assert source_path(checkout, store, part) == clean


def test_the_trainer_source_is_the_training_code_alone(checkout: Path, tmp_path: Path):
    store = tmp_path / "store"
    files = files_in(store, source_path(checkout, store, "trainer"))
    expected = {"LICENSE", "cnn_mnist/__init__.py"} | {
        str(p.relative_to(checkout))
        for sub in ("core", "training")
        for p in (checkout / "cnn_mnist" / sub).iterdir()
        if p.suffix in (".py", ".json")
    }
    assert files == expected
    assert "cnn_mnist/core/net.py" in files and "cnn_mnist/training/trainer.py" in files


def test_the_package_source_holds_the_corrections_and_the_trainers_does_not(checkout: Path, tmp_path: Path):
    store = tmp_path / "store"
    corrections = {
        str(p.relative_to(checkout)) for p in (checkout / "cnn_mnist" / "corrections").iterdir() if p.suffix == ".py"
    }
    assert "cnn_mnist/corrections/store.py" in corrections
    assert corrections <= files_in(store, source_path(checkout, store, "package"))
    assert not corrections & files_in(store, source_path(checkout, store, "trainer"))


def test_a_change_to_a_source_file_changes_the_source_path(checkout: Path, tmp_path: Path):
    store = tmp_path / "store"
    clean = source_path(checkout, store)
    (checkout / "cnn_mnist" / "serving" / "app.py").write_text(
        (checkout / "cnn_mnist" / "serving" / "app.py").read_text() + "\n# changed\n"
    )
    assert source_path(checkout, store) != clean
    (checkout / "cnn_mnist" / "serving" / "canary.npz").write_bytes(b"PK")  # data the package ships is a source
    assert source_path(checkout, store) != clean


def test_the_package_builds_from_that_source():
    r = eval_json(HARNESS / "package-eval.nix", "--argstr", "nixpkgsLib", nixpkgs_lib(), "-A", "report")
    expected = run_nix("--eval", "-E", f'import {ROOT}/nix/source.nix {{ root = {ROOT}; part = "package"; }}')
    assert expected.returncode == 0, expected.stderr
    assert r["defaultPackage"]["src"] == expected.stdout.strip().strip('"')
