"""How long loading the code location takes, in fresh processes, as the UI and every run pay it.

The webserver's code server, each run worker and each step process import
`crm_assets.definitions` from scratch, so its import time is a delay on every one of them.
Each case runs in a new interpreter, the cases interleaved so a burst of load on the machine
spreads over all of them; per case the median (and the fastest) of the repeats is printed:
- `python`: the interpreter alone, the floor under every other figure;
- `import dagster`, `import dagster_dbt` (which imports dbt-core): what the libraries cost
  before any of our code runs;
- `crm_assets.definitions`: the whole code location, its `defs` built.

Wall time is from start to exit of the process; CPU is user and system time of the process
and of what it waited for (git, `dbt parse`). One load runs first, uncounted, so the dbt
manifest is fresh and bytecode is compiled. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "python": "pass",
    "import dagster": "import dagster",
    "import dagster_dbt": "import dagster_dbt",
    "crm_assets.definitions": "import crm_assets.definitions as d; d.defs",
}


def run_once(code: str) -> tuple[float, float, float]:
    """(wall, user CPU, system CPU) seconds of one fresh interpreter running `code`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.getenv("PYTHONPATH")]))}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{code!r} exited with {process.returncode}")
    return wall, usage.ru_utime, usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per case (default 5)")
    args = parser.parse_args()

    run_once(CASES["crm_assets.definitions"])  # parses the dbt manifest if stale; compiles bytecode
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in CASES}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for name, code in CASES.items():
            samples[name].append(run_once(code))
    load_after = os.getloadavg()[0]

    print(f"Definitions load, {args.repeats} fresh processes per case, {os.cpu_count()} cores, "
          f"load average {load_before:.1f} -> {load_after:.1f}, Python {sys.version.split()[0]}")
    print(f"{'case':<24} {'wall median':>12} {'wall min':>9} {'user median':>12} {'user+sys median':>16}")
    for name, runs in samples.items():
        walls = [wall for wall, _, _ in runs]
        users = [user for _, user, _ in runs]
        cpus = [user + system for _, user, system in runs]
        print(f"{name:<24} {statistics.median(walls):>11.2f}s {min(walls):>8.2f}s "
              f"{statistics.median(users):>11.2f}s {statistics.median(cpus):>15.2f}s")


if __name__ == "__main__":
    main()
