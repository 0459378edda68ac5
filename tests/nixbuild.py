"""Nix's build phases for our packages and the model, run here as Nix runs them (issue 14 §1).

There is no nixpkgs here, so nothing can be built by Nix. What can run, runs as it would in the sandbox:

* the recipe (sources, inputs, phases, test selection) comes from the Nix files themselves, evaluated by
  tests/nix/build-eval.nix with fake builders; the sources are realised by Nix into a local store;
* each phase sees only the Python distributions the derivation declares (`build-system`, or
  `dependencies` and `nativeCheckInputs`) and what those require: a fresh venv whose site-packages links
  exactly those distributions' files, so every other installed distribution, and its pytest plugin, is
  invisible (nix/python-names.json maps nixpkgs attributes to PyPI names);
* no network beyond loopback (a network namespace), HOME=/homeless-shelter, an emptied environment, and
  no chromium or nix on the PATH or in /usr/bin (a mount namespace hides them);
* the phases are nixpkgs' own steps: unpack (a writable copy of the store path), postPatch, the pypa
  build hook (`pyproject-build --no-isolation --wheel`), install, pythonRuntimeDepsCheck,
  pythonImportsCheck (from the installed output), pytestCheckPhase with the flags pytestCheckHook derives
  (nixpkgs PR #386513: `--ignore-glob` / `--deselect`, `-k "not (...)"`, `-m "not (...)"`, then
  `pytestFlags`), and the model's buildPhase and installCheckPhase as model.nix evaluates them.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from nixeval import ROOT, eval_json, nixpkgs_lib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYTHON_NAMES = ROOT / "nix" / "python-names.json"
# what pypaBuildHook's own tool brings (pkgs/development/interpreters/python/hooks: pypa-build-hook)
BUILD_TOOL = ["build"]
HIDDEN_PROGRAMS = ("chromium", "chromedriver", "chromium-driver", "nix")
SANDBOX_HOME = "/homeless-shelter"
# pythonImportsCheckPhase's one-liner: import each module named
IMPORTS_CHECK = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]"


class PhaseFailed(AssertionError):
    def __init__(self, phase: str, proc: subprocess.CompletedProcess[str]):
        super().__init__(
            f"{phase} failed with exit status {proc.returncode}:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
        )
        self.phase, self.proc = phase, proc


def python_names() -> dict[str, list[str]]:
    names = json.loads(PYTHON_NAMES.read_text())
    names.pop("_comment")
    return names


def distribution_for(attr: str) -> importlib.metadata.Distribution:
    """The installed distribution that stands in for a python3Packages attribute here."""
    candidates = python_names().get(attr)
    if candidates is None:
        raise KeyError(f"nix/python-names.json has no entry for python3Packages.{attr}")
    for name in candidates:
        try:
            return importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise LookupError(f"none of {candidates} (python3Packages.{attr}) is installed here")


def closure(roots: list[importlib.metadata.Distribution]) -> dict[str, importlib.metadata.Distribution]:
    """`roots` and, transitively, every distribution they require (with markers evaluated here)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = [(dist, frozenset()) for dist in roots]
    seen = set()
    while todo:
        dist, extras = todo.pop()
        key = canonicalize_name(dist.metadata["Name"])
        if (key, extras) in seen:
            continue
        seen.add((key, extras))
        found[key] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            environments = [{"extra": e} for e in extras or {""}]
            if requirement.marker and not any(requirement.marker.evaluate(env) for env in environments):
                continue
            try:
                todo.append((importlib.metadata.distribution(requirement.name), frozenset(requirement.extras)))
            except importlib.metadata.PackageNotFoundError as error:
                raise LookupError(f"{dist.metadata['Name']} requires {line!r}, which is not installed here") from error
    return found


def site_packages(env: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))


def make_env(path: Path, attrs: list[str], tools: list[str] = ()) -> Path:
    """A venv that can import exactly the closure of `attrs` and of the distributions `tools`."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(path)], check=True)
    site = site_packages(path)
    roots = [distribution_for(attr) for attr in attrs] + [importlib.metadata.distribution(t) for t in tools]
    for dist in closure(roots).values():
        for file in dist.files or []:
            if str(file).startswith(".."):  # scripts and data outside site-packages
                continue
            source = Path(dist.locate_file(file))
            target = site / file
            if source.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(source)
    return path


def store_path(store: Path, path: str) -> Path:
    """Where a /nix/store path of the local store under `store` lies on disk."""
    return store / path.lstrip("/")


def in_local_store(text: str, store: Path) -> str:
    return text.replace("/nix/store/", f"{store}/nix/store/")


def evaluate(root: Path, store: Path, attr: str, *args: str):
    """`attr` of root's tests/nix/build-eval.nix, its sources and .drv files written into the store under `store`."""
    return eval_json(
        root / "tests" / "nix" / "build-eval.nix",
        "--read-write-mode",
        "--store",
        f"local?root={store}",
        "--argstr",
        "nixpkgsLib",
        nixpkgs_lib(),
        *args,
        "-A",
        attr,
    )


def pytest_flags(recipe: dict) -> list[str]:
    """The arguments pytestCheckHook gives `python -m pytest` for this recipe."""
    flags = ["-m", "pytest"]
    for path in recipe["disabledTestPaths"]:
        flags.append(f"--deselect={path}" if "::" in path else f"--ignore-glob={path}")
    if recipe["disabledTests"]:
        flags += ["-k", f"not ({' or '.join(recipe['disabledTests'])})"]
    if recipe["disabledTestMarks"]:
        flags += ["-m", f"not ({' or '.join(recipe['disabledTestMarks'])})"]
    return flags + recipe["pytestFlags"]


def wrapper(target: Path, program: Path, make_wrapper_args: list[str]) -> None:
    """makeWrapper's script for the flags we use (`--set-default VAR VALUE` only)."""
    lines = ["#!/bin/sh"]
    args = list(make_wrapper_args)
    while args:
        flag = args.pop(0)
        if flag != "--set-default":
            raise ValueError(f"makeWrapperArgs: {flag} is not simulated here")
        var, value = args.pop(0), args.pop(0)
        lines.append(f'export {var}="${{{var}-{value}}}"')
    lines.append(f'exec {shlex.quote(str(program))} "$@"')
    target.write_text("\n".join(lines) + "\n")
    target.chmod(0o755)


class Sandbox:
    """A scratch build directory and a way to run commands in it as the Nix sandbox would."""

    def __init__(self, top: Path):
        self.top = top
        self.tmp = top / "tmp"
        self.tmp.mkdir(parents=True)

    def run(
        self,
        phase: str,
        script: str,
        *,
        path: list[Path],
        cwd: Path,
        env: dict[str, str] | None = None,
        timeout: float = 900,
    ) -> subprocess.CompletedProcess[str]:
        """`script` in bash, with no network but loopback, programs hidden and the environment emptied."""
        hidden = "|".join(f"{name}|{name}-*" for name in HIDDEN_PROGRAMS)
        setup = f"""set -eu
ip link set lo up
# /usr/bin as the sandbox has it: every program but {hidden}, the real directory kept out of the PATH
real={shlex.quote(str(self.top / "real-usr-bin"))}
mkdir -p "$real"
mount --bind /usr/bin "$real"
mount -t tmpfs tmpfs /usr/bin
keep=()
for program in "$real"/*; do
  case "${{program##*/}}" in {hidden}) ;; *) keep+=("$program") ;; esac
done
"$real"/ln -s -t /usr/bin "${{keep[@]}}"
cd {shlex.quote(str(cwd))}
exec env -i {" ".join(shlex.quote(f"{k}={v}") for k, v in self.environment(path, env).items())} \
  bash -euo pipefail -c {shlex.quote(script)}
"""
        unshare = (
            ["unshare", "--mount", "--net"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--mount", "--net"]
        )
        proc = subprocess.run([*unshare, "bash", "-c", setup], capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise PhaseFailed(phase, proc)
        return proc

    def environment(self, path: list[Path], extra: dict[str, str] | None) -> dict[str, str]:
        return {
            "PATH": ":".join([*map(str, path), "/usr/bin", "/bin"]),
            "HOME": SANDBOX_HOME,
            "TMPDIR": str(self.tmp),
            "TMP": str(self.tmp),
            "NIX_BUILD_TOP": str(self.top),
            "NIX_BUILD_CORES": str(os.cpu_count() or 1),
            "LANG": "C.UTF-8",
            "SOURCE_DATE_EPOCH": "315532800",
            # what nixpkgs' python setup hook exports (pkgs/development/interpreters/python/setup-hook.sh)
            "PYTHONHASHSEED": "0",
            "PYTHONNOUSERSITE": "1",
            "DETERMINISTIC_BUILD": "1",
            **(extra or {}),
        }


def unpack(store: Path, src: str, top: Path) -> Path:
    """unpackPhase for a store directory: a writable copy named as the store path's name."""
    source = top / "source"
    shutil.copytree(store_path(store, src), source, symlinks=True)
    for directory, dirs, files in os.walk(source):
        for name in [*dirs, *files]:
            os.chmod(os.path.join(directory, name), 0o755 if name in dirs else 0o644)
    return source


def build_python_package(recipe: dict, store: Path, top: Path, *, check: bool = True) -> dict:
    """buildPythonApplication's phases for `recipe`; returns the wheel, the env it is installed in, and logs."""
    sandbox = Sandbox(top)
    source = unpack(store, recipe["src"], top)
    logs = {}
    if recipe["postPatch"]:
        logs["patch"] = sandbox.run("patchPhase", in_local_store(recipe["postPatch"], store), path=[], cwd=source)

    build_env = make_env(top / "build-env", recipe["build-system"], tools=BUILD_TOOL)
    logs["build"] = sandbox.run(
        "pypaBuildPhase",
        "python -m build --no-isolation --outdir dist/ --wheel .",
        path=[build_env / "bin"],
        cwd=source,
    )
    wheels = sorted((source / "dist").glob("*.whl"))
    assert len(wheels) == 1, wheels

    inputs = recipe["dependencies"] + (recipe["nativeCheckInputs"] if check and recipe["doCheck"] else [])
    env = make_env(top / "out", inputs)
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(env / "bin" / "python"),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-compile",
            "--disable-pip-version-check",
            str(wheels[0]),
        ],
        capture_output=True,
        text=True,
    )
    if installed.returncode != 0:
        raise PhaseFailed("pypaInstallPhase", installed)
    bin_dir = top / "wrapped-bin"
    bin_dir.mkdir()
    for script in console_scripts(wheels[0]):
        wrapper(bin_dir / script, env / "bin" / script, recipe["makeWrapperArgs"])

    check_runtime_dependencies(wheels[0], env)
    if recipe["pythonImportsCheck"]:
        modules = " ".join(recipe["pythonImportsCheck"])
        logs["imports"] = sandbox.run(
            "pythonImportsCheck",
            f"cd {shlex.quote(str(env))} && python -c {shlex.quote(IMPORTS_CHECK)} {modules}",
            path=[env / "bin"],
            cwd=source,
            env=recipe["env"],
        )
    if check and recipe["doCheck"]:
        flags = " ".join(map(shlex.quote, pytest_flags(recipe)))
        logs["check"] = sandbox.run(
            "pytestCheckPhase",
            f"{recipe['preCheck']}\npython {flags}",
            path=[bin_dir, env / "bin"],
            cwd=source,
            env=recipe["env"],
        )
    return {"wheel": wheels[0], "env": env, "bin": bin_dir, "source": source, "logs": logs, "sandbox": sandbox}


def console_scripts(wheel: Path) -> list[str]:
    """The console scripts the wheel declares (its entry_points.txt)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next((n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")), None)
        if name is None:
            return []
        text = archive.read(name).decode()
    scripts, section = [], None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "console_scripts" and "=" in line:
            scripts.append(line.split("=", 1)[0].strip())
    return scripts


def check_runtime_dependencies(wheel: Path, env: Path) -> None:
    """pythonRuntimeDepsCheckHook: each Requires-Dist of the wheel (its marker holding) is installed in `env`
    at a version its specifier allows."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    installed = {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions(path=[str(site_packages(env))])
    }
    problems = []
    for line in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        version = installed.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name} not installed")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}{requirement.specifier} not satisfied by version {version}")
    if problems:
        raise AssertionError(f"pythonRuntimeDepsCheck for {metadata['Name']}: " + "; ".join(problems))


def run_model_build(recipe: dict, trainer: dict, top: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """model.nix's buildPhase then installCheckPhase, with the built trainer on the PATH."""
    out = top / "model-out"
    script = "runHook() { :; }\n" + recipe["buildPhase"] + "\n" + recipe["installCheckPhase"]
    proc = trainer["sandbox"].run("model build", script, path=[trainer["bin"]], cwd=top, env={"out": str(out)})
    return out, proc
