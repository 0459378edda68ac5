"""What `make run` and `make test` install from the locks: the time and the size of a fresh venv.

    python bench/install.py [--lock run] [--lock test]

Each lock goes into a new venv in a temporary directory with pip's cache off (`--no-cache-dir`), as on a
fresh machine, then the project itself (`pip install --no-deps -e .`). Download speed dominates the time:
the figure says how long here, with the machine named; the size is the venv's on disk.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from train import cpu_description

ROOT = Path(__file__).resolve().parent.parent


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def install(lock: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--no-cache-dir", "--disable-pip-version-check"]
        start = time.monotonic()
        subprocess.run([*pip, "--require-hashes", "-r", str(ROOT / "requirements" / f"{lock}.txt")], check=True)
        subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
        return time.monotonic() - start, size_mb(venv)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", action="append", choices=["run", "test"], help="default: both")
    args = parser.parse_args()
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu_description()}, Python {sys.version.split()[0]}")
    for lock in args.lock or ["run", "test"]:
        seconds, megabytes = install(lock)
        print(f"requirements/{lock}.txt: {seconds:.0f} s, venv {megabytes:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
