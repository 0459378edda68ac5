"""nix/python-names.json: the one map from python3Packages attributes to PyPI distributions, which
nix/project.nix uses to pick pyproject.toml's requirements and tests/nixbuild.py to build environments."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import nixbuild
import pytest
import tomllib
from nixeval import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


@pytest.fixture(scope="module")
def recipes(tmp_path_factory):
    return nixbuild.evaluate(ROOT, tmp_path_factory.mktemp("store"), "recipes")


def declared(recipe: dict) -> set[str]:
    return set(recipe["dependencies"] + recipe["nativeCheckInputs"] + recipe["build-system"])


def test_every_attribute_the_packages_declare_is_mapped_and_installed_here(recipes):
    names = nixbuild.python_names()
    for recipe in (recipes["package"], recipes["trainer"]):
        for attr in declared(recipe):
            assert attr in names, f"python3Packages.{attr} is missing from nix/python-names.json"
            nixbuild.distribution_for(attr)  # raises, naming the candidates, when none is installed


def test_the_map_names_real_distributions_only():
    names = nixbuild.python_names()
    assert all(isinstance(v, list) and v and all(canonicalize_name(d) == d for d in v) for v in names.values())
    with pytest.raises(KeyError, match="no entry for python3Packages.left-pad"):
        nixbuild.distribution_for("left-pad")


def test_the_package_declares_what_pyproject_requires(recipes):
    """Each of pyproject.toml's requirements (and the default backend's extra) is one of the package's
    dependencies, and every dependency is one of them: the two lists cannot drift apart."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    required |= {canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["tensorflow"]}
    names = nixbuild.python_names()
    provided = {attr: {canonicalize_name(d) for d in names[attr]} for attr in recipes["package"]["dependencies"]}
    assert all(any(name in dists for dists in provided.values()) for name in required), (required, provided)
    assert all(dists & required for dists in provided.values()), (required, provided)


def test_the_trainer_requires_what_training_imports_and_nothing_of_the_server(recipes):
    trainer = {attr for attr in recipes["trainer"]["dependencies"]}
    assert trainer == {"keras", "numpy", "h5py", "pillow", "matplotlib", "tensorflow-bin"}
    assert not {"flask", "waitress", "prometheus-client", "orjson", "psycopg", "psycopg-pool"} & trainer


def test_closure_follows_requirements_with_their_markers():
    closure = nixbuild.closure([importlib.metadata.distribution("pytest")])
    assert {"pytest", "pluggy", "iniconfig", "packaging"} <= set(closure)
    assert "colorama" not in closure  # sys_platform == "win32" only
    assert "argcomplete" not in closure  # extra == "dev" only


def test_an_environment_imports_what_it_was_made_with_and_nothing_else(tmp_path: Path):
    env = nixbuild.make_env(tmp_path / "env", ["pytestCheckHook"])
    site = nixbuild.site_packages(env)
    present = {canonicalize_name(d.metadata["Name"]) for d in importlib.metadata.distributions(path=[str(site)])}
    assert "pytest" in present and "flask" not in present and "numpy" not in present
    assert (site / "_pytest" / "__init__.py").is_symlink()  # the installed file itself, linked
