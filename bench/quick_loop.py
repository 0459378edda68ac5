"""How long the quick loop (`make check`: `pytest -m "not slow"`) takes, against its goal of 60 s on 2 cores.

    python bench/quick_loop.py [--repeats 3]

Each run is a fresh pytest process, as a developer's `make check` is. The reference is the goal itself
(60 s); the figure is the median wall time, with the CPU named beside it.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from train import cpu_description

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ, NIXPKGS_LIB=os.environ.get("NIXPKGS_LIB", str(ROOT.parent / "shared/nixpkgs-lib/lib")))
    times, summary = [], ""
    for _ in range(args.repeats):
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        times.append(time.monotonic() - start)
        summary = proc.stdout.strip().splitlines()[-1]
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
            return 1
    passed = re.search(r"(\d+) passed", summary)
    median = statistics.median(times)
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu_description()}")
    print(
        f"make check: {passed.group(1) if passed else '?'} tests; wall {', '.join(f'{t:.1f}' for t in times)} s; "
        f"median {median:.1f} s = {median / GOAL_S:.0%} of the {GOAL_S:.0f} s goal"
    )
    return 0 if median <= GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
