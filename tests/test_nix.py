"""Checks of the Nix layer that run with Nix 2.8 and without nixpkgs.

* every .nix file parses (nix-instantiate --parse);
* the pure helpers (best-model selection, flake.lock reader) evaluate with
  nix-instantiate --eval --strict.

nix-instantiate is required (the Makefile installs Debian's nix-bin). Evaluation uses the
`dummy://` store, so no Nix daemon or writable /nix is needed. test_nix_module.py has the
tests that need nixpkgs' lib.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from nixeval import HARNESS, NIX_FILES, ROOT, eval_json, run_nix

# --- parsing -----------------------------------------------------------------


def test_expected_nix_files_exist():
    names = {p.relative_to(ROOT).as_posix() for p in NIX_FILES}
    for required in [
        "default.nix",
        "flake.nix",
        "model.nix",
        "package.nix",
        "module.nix",
        "nixops-deployment.nix",
        "nix/best-model.nix",
        "nix/lock.nix",
        "nix/nixos-test.nix",
        "nix/nixos-test-scale-out.nix",
        "nix/scale-out.nix",
        "nix/versions.nix",
        "nix/source.nix",
        "nix/nixops/nixops.nix",
    ]:
        assert required in names


@pytest.mark.parametrize("path", NIX_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_nix_file_parses(path: Path):
    proc = run_nix("--parse", str(path))
    assert proc.returncode == 0, proc.stderr


def test_parse_rejects_broken_nix(tmp_path: Path):
    broken = tmp_path / "broken.nix"
    broken.write_text("{ a = 1; ")
    assert run_nix("--parse", str(broken)).returncode != 0


# --- pure helpers ------------------------------------------------------------


def test_best_model_with_a_floor():
    r = eval_json(HARNESS / "best-model.nix")
    assert r["floorKeepsBest"] == 1
    assert r["floorIsInclusive"] == 1  # 0.98 reaches a floor of 0.98
    assert r["noneAboveFloorFails"] is True
    assert r["garbageBelowFloorFails"] is True


def test_best_model_names_the_floor_when_none_reaches_it():
    proc = run_nix(
        "--eval",
        "--strict",
        "-E",
        f"import {ROOT}/nix/best-model.nix {{ minAccuracy = 0.99; }} "
        '[ { accuracy = "0.97"; } { accuracy = "0.985\\n"; } ]',
    )
    assert proc.returncode != 0
    assert "bestModel: none of the 2 candidates reaches the floor 0.99 (the best scored 0.985)" in proc.stderr


def test_best_model_selection():
    r = eval_json(HARNESS / "best-model.nix")
    assert r["highest"] == 1
    assert r["single"] == 0
    assert r["tieFirstWins"] == 1  # seeds 1 and 2 tie: the lowest seed wins
    assert r["whitespace"] == 1
    assert r["numbers"] == 1
    assert r["scientific"] == 0  # 9.8e-1 > 0.979
    assert r["leadingDot"] == 0  # ".95" parses as 0.95
    assert r["integerVsFloat"] == 1
    assert r["keepsCandidate"] == {
        "seed": 1,
        "accuracy": "0.3",
        "model": "/nix/store/model-seed-1",
    }
    for case in ["emptyFails", "garbageFails", "emptyStringFails", "missingAccuracyFails"]:
        assert r[case] is True, case


@pytest.mark.parametrize(
    "expr, message",
    [
        ("[ ]", "no candidates"),
        ('[ { accuracy = "0.9"; } { accuracy = "n/a"; } ]', "cannot parse accuracy 'n/a'"),
    ],
)
def test_best_model_error_messages(expr: str, message: str):
    proc = run_nix("--eval", "--strict", "-E", f"import {ROOT}/nix/best-model.nix {{ }} {expr}")
    assert proc.returncode != 0
    assert message in proc.stderr


def test_lock_reader_matches_flake_lock():
    r = eval_json(HARNESS / "lock.nix")
    locked = r["projectLock"]["nodes"]["nixpkgs"]["locked"]
    assert r["projectLock"]["nodes"]["nixpkgs"]["original"]["ref"] == "nixos-26.05"
    assert re.fullmatch(r"[0-9a-f]{40}", locked["rev"])
    assert re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", locked["narHash"])
    project = r["project"]
    assert project["url"] == (f"https://github.com/{locked['owner']}/{locked['repo']}/archive/{locked['rev']}.tar.gz")
    assert project["sha256"] == locked["narHash"]
    # the root's input name is followed to the node it points at
    assert r["synthetic"]["rev"] == "0123456789abcdef0123456789abcdef01234567"
    assert r["synthetic"]["url"].endswith("/0123456789abcdef0123456789abcdef01234567.tar.gz")
    assert r["missingInputFails"] is True


def test_flake_and_default_nix_share_the_lock():
    flake = (ROOT / "flake.nix").read_text()
    default = (ROOT / "default.nix").read_text()
    assert 'inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05"' in flake
    assert "./nix/lock.nix" in default and "./flake.lock" in default
    assert "fetchTarball" in default


# --- where nixpkgs' lib comes from ---------------------------------------------


def test_missing_nixpkgs_lib_is_a_failure_naming_it(monkeypatch, tmp_path: Path):
    import nixeval

    monkeypatch.setenv("NIXPKGS_LIB", str(tmp_path / "no-such-lib"))
    with pytest.raises(pytest.fail.Exception) as failure:
        nixeval.nixpkgs_lib()
    assert "no-such-lib" in str(failure.value) and "../shared/nixpkgs-lib/lib" in str(failure.value)
    monkeypatch.delenv("NIXPKGS_LIB")
    monkeypatch.setattr(nixeval, "DEFAULT_NIXPKGS_LIB", tmp_path / "shared" / "nixpkgs-lib" / "lib")
    with pytest.raises(pytest.fail.Exception) as failure:
        nixeval.nixpkgs_lib()
    assert "the default ../shared/nixpkgs-lib/lib" in str(failure.value)


def test_nixpkgs_lib_default_is_beside_the_project():
    import nixeval

    assert nixeval.DEFAULT_NIXPKGS_LIB == ROOT.parent / "shared" / "nixpkgs-lib" / "lib"
    makefile = (ROOT / "Makefile").read_text()
    assert "NIXPKGS_LIB ?= ../shared/nixpkgs-lib/lib" in makefile
    assert "/work/" not in makefile  # no path of a particular machine
