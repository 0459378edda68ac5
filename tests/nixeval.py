"""Running nix-instantiate (Nix 2.8, no nixpkgs, `dummy://` store) for the Nix tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "tests" / "nix"
NIX_FILES = sorted(p for p in [*ROOT.glob("*.nix"), *ROOT.glob("nix/**/*.nix"), *HARNESS.glob("*.nix")] if p.is_file())
# nixpkgs' lib/, provided beside the project as it is for CI (../shared/nixpkgs-lib/PROVENANCE.md);
# NIXPKGS_LIB (a nixpkgs checkout or its lib/) overrides it.
DEFAULT_NIXPKGS_LIB = ROOT.parent / "shared" / "nixpkgs-lib" / "lib"


def nixpkgs_lib() -> str:
    """The nixpkgs lib/ the module tests evaluate with; missing, a test failure that says what to provide."""
    chosen = os.environ.get("NIXPKGS_LIB") or str(DEFAULT_NIXPKGS_LIB)
    path = Path(chosen).resolve()
    if not ((path / "default.nix").is_file() or (path / "lib" / "default.nix").is_file()):
        source = "NIXPKGS_LIB" if os.environ.get("NIXPKGS_LIB") else "the default ../shared/nixpkgs-lib/lib"
        pytest.fail(
            f"nixpkgs' lib/ not found at {path} ({source}): the Nix module tests need it. Put nixpkgs' "
            "lib/ at ../shared/nixpkgs-lib/lib beside the project, or set NIXPKGS_LIB to a nixpkgs "
            "checkout or its lib/.",
            pytrace=False,
        )
    return str(path)


def nix_instantiate() -> str:
    exe = shutil.which("nix-instantiate")
    if exe is None:
        pytest.fail(
            "nix-instantiate not found: install Nix (`apt-get install nix-bin`, which `make` does when it is missing)",
            pytrace=False,
        )
    return exe


def run_nix(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NIX_PATH="", HOME=os.environ.get("HOME", "/tmp"))
    return subprocess.run(
        [nix_instantiate(), "--store", "dummy://", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def eval_json(path: Path, *args: str):
    proc = run_nix("--eval", "--strict", "--json", str(path), *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def eval_error(path: Path, *args: str) -> str:
    proc = run_nix("--eval", "--strict", "--json", str(path), *args)
    assert proc.returncode != 0, f"expected an evaluation error, got {proc.stdout}"
    return proc.stderr


def nix_literal(value) -> str:
    """A Python value as a Nix expression (for --arg)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value).replace("${", "\\${")
    if isinstance(value, list):
        return "[ " + " ".join(nix_literal(v) for v in value) + " ]"
    if isinstance(value, dict):
        return "{ " + " ".join(f'"{k}" = {nix_literal(v)};' for k, v in value.items()) + " }"
    raise TypeError(value)
