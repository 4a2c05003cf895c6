"""How long loading the code location takes, in fresh processes, as the UI and every run pay it.

The webserver's code server, each run worker and each step process import
`crm_assets.definitions` from scratch, so its import time is a delay on every one of them.
Each case runs in a new interpreter, the cases interleaved so a burst of load on the machine
spreads over all of them; per case the median (and the fastest) of the repeats is printed:
- `python`: the interpreter alone, the floor under every other figure;
- `import dagster`, `import dagster_dbt` (which imports dbt-core): what the libraries cost
  before any of our code runs;
- `crm_assets.definitions`: the whole code location, its `defs` built.

"loaded" is the wall time from starting the process to the case's last statement done (what a
code server waits before it serves); "exit" the wall time to the end of the process (what a run
or step process adds to a run); CPU is the user and system time of the whole process and of what
it waited for (git). One load runs first, uncounted, so the dbt manifest is fresh and bytecode
is compiled. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "python": "pass",
    "import dagster": "import dagster",
    "import dagster_dbt": "import dagster_dbt",
    "crm_assets.definitions": "import crm_assets.definitions as d; d.defs",
}


class Sample(NamedTuple):
    loaded: float
    exited: float
    user: float
    system: float


def run_once(code: str) -> Sample:
    """Seconds of one fresh interpreter running `code` (see the module's docstring)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.getenv("PYTHONPATH")]))}
    timed = f"{code}\nimport sys, time\nsys.stdout.write(repr(time.time()))"
    started = time.time()
    process = subprocess.Popen([sys.executable, "-c", timed], cwd=ROOT, env=env, stdout=subprocess.PIPE)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    exited = time.time() - started
    process.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{code!r} exited with {os.waitstatus_to_exitcode(status)}")
    loaded = float(output.decode().strip().splitlines()[-1]) - started
    return Sample(loaded, exited, usage.ru_utime, usage.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per case (default 5)")
    args = parser.parse_args()

    run_once(CASES["crm_assets.definitions"])  # parses the dbt manifest if stale; compiles bytecode
    samples: dict[str, list[Sample]] = {name: [] for name in CASES}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for name, code in CASES.items():
            samples[name].append(run_once(code))
    load_after = os.getloadavg()[0]

    print(f"Definitions load, {args.repeats} fresh processes per case, {os.cpu_count()} cores, "
          f"load average {load_before:.1f} -> {load_after:.1f}, Python {sys.version.split()[0]}")
    print("medians (fastest in brackets), seconds")
    print(f"{'case':<24} {'loaded':>13} {'exit':>13} {'user CPU':>13} {'user+sys CPU':>13}")
    for name, runs in samples.items():
        columns = [[s.loaded for s in runs], [s.exited for s in runs], [s.user for s in runs],
                   [s.user + s.system for s in runs]]
        print(f"{name:<24}" + "".join(f" {statistics.median(c):>5.2f} ({min(c):.2f})" for c in columns))


if __name__ == "__main__":
    main()
