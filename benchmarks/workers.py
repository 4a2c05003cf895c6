"""What the push benchmarks share: the plumbing around each measurement, not the measurements.

Each measurement runs in a worker process of its own, the same script started with
``--worker KIND``, so that its peak RSS (:mod:`peak_memory`) belongs to it alone; the
orchestrating process hands it the environment as JSON on stdin and reads its figures back as
the JSON of its last stdout line. Also here: the sandbox, DuckDB file and syncs.yaml a run is
set up with, the Dagster run of the sync under measure, and the report lines both print alike.
Nothing of crm_assets is imported at module level, so that a baseline worker stays free of it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from peak_memory import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
# The sync's metadata a run of ours reports as it is.
OUR_FIGURES = ("api_calls", "batches", "inserted", "updated", "rejected", "unchanged", "retries")


def arguments(default_rows: int, changes_default: int | None, changes_help: str) -> argparse.Namespace:
    """The options every push benchmark takes (``--worker`` is how it starts its own workers)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=default_rows)
    parser.add_argument("--changes", type=int, default=changes_default, help=changes_help)
    parser.add_argument("--profile", help="write a cProfile of our first run to this file")
    parser.add_argument("--worker", choices=["baseline", "crm_assets"])
    return parser.parse_args()


class Stopwatch:
    """Wall and CPU seconds of this process since the stopwatch was made."""

    def __init__(self) -> None:
        self.began, self.cpu_began = time.perf_counter(), time.process_time()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.began

    @property
    def cpu_seconds(self) -> float:
        return time.process_time() - self.cpu_began


def fetch_dicts(path: str, query: str) -> list[dict[str, Any]]:
    """A baseline's read: the query's rows through a plain ``fetchall``, as dicts."""
    import duckdb

    with duckdb.connect(path, read_only=True) as conn:
        cursor = conn.execute(query)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def serve_worker(measure: Callable[[dict[str, str]], dict]) -> None:
    """In a worker: `measure` the environment given on stdin and print its figures with the peak RSS."""
    figures = measure(json.loads(sys.stdin.read()))
    figures["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(figures))


def run_worker(script: str, kind: str, env: dict[str, str], profile: str | None = None) -> dict:
    """Run one measurement of `script` in a fresh interpreter and return its figures."""
    command = [sys.executable, script, "--worker", kind] + (["--profile", profile] if profile else [])
    out = subprocess.run(
        command, check=False, input=json.dumps(env), capture_output=True, text=True, cwd=ROOT
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def sync_run(env: dict[str, str], asset_key: list[str], resource: str, profile: str | None) -> dict:
    """One real Dagster run of the sync asset `asset_key` and its checks, on a SQLite instance,
    with the shipped ``crm_assets.definitions`` resources (`resource` the destination's)."""
    os.environ.update(env)
    import dagster as dg

    from crm_assets import definitions

    sync_asset = definitions.defs.get_assets_def(dg.AssetKey(asset_key))
    checks = [
        c for c in definitions.defs.asset_checks or [] if sync_asset.key in {k.asset_key for k in c.check_keys}
    ]
    resources = definitions.defs.resources
    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.local_temp(home) as instance:
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        watch = Stopwatch()
        result = dg.materialize(
            [sync_asset, *checks],
            resources={"warehouse": resources["warehouse"], resource: resources[resource]},
            instance=instance,
        )
        seconds, cpu_seconds = watch.seconds, watch.cpu_seconds
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        (event,) = result.asset_materializations_for_node("__".join(asset_key))
        meta = {k: v.value for k, v in event.metadata.items()}
    return {
        "rows": meta["sent"],
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "sync_seconds": meta["seconds"],
        **{name: meta[name] for name in OUR_FIGURES},
    }


@contextlib.contextmanager
def bench_setup(
    source_sql: str, rows: int, sync: dict[str, Any]
) -> Iterator[tuple[Any, Path, dict[str, str]]]:
    """A sandbox, a DuckDB file holding `source_sql`'s table of `rows` rows, and a syncs.yaml
    holding `sync`: the sandbox, the file, and the environment a worker runs with."""
    import duckdb
    import yaml

    from crm_assets.sandbox import SandboxProcess

    with tempfile.TemporaryDirectory() as tmp, SandboxProcess(seed=1, scale=0.05, lifetime=3600) as sandbox:
        warehouse, syncs = Path(tmp) / "bench.duckdb", Path(tmp) / "syncs.yaml"
        with duckdb.connect(str(warehouse)) as conn:
            conn.execute(source_sql.format(rows=rows))
        syncs.write_text(yaml.safe_dump({"syncs": [sync]}, sort_keys=False), encoding="utf-8")
        env = {**sandbox.env, "CRM_ASSETS_DUCKDB_PATH": str(warehouse), "CRM_ASSETS_SYNCS": str(syncs)}
        yield sandbox, warehouse, env


def rename_rows(warehouse: Path, table: str, count: int) -> None:
    """Change the name of the first `count` rows, for the run that pushes a few changes."""
    import duckdb

    with duckdb.connect(str(warehouse)) as conn:
        conn.execute(f"update {table} set name = name || ' (renamed)' where id <= {count}")


def uptime() -> str:
    return subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()


def machine(library: str) -> str:
    """The machine, the versions that matter (with the baseline's `library`) and the load."""
    from importlib.metadata import version

    return (
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, dagster {version('dagster')}, "
        f"duckdb {version('duckdb')}, {library} {version(library)}\nload: {uptime()}"
    )


def our_rows(
    row: Callable[[str, dict], str], first: dict, second: dict, changed: dict | None, changes: int
) -> Iterator[str]:
    """The report's line for each of our runs (`row` formats a run), with its sync step's seconds."""
    runs = [("crm_assets, first run", first), ("crm_assets, no change", second)]
    if changed is not None:
        runs.append((f"crm_assets, {changes:,} changed", changed))
    for label, r in runs:
        yield row(label, r) + f"  (sync step {r['sync_seconds']:.2f} s)"


def metadata_lines(runs: list[tuple[str, dict | None]], *extra: str) -> Iterator[str]:
    """Our runs' own metadata, one line a run (`extra`: further figures to show)."""
    for label, r in runs:
        if r is not None:
            yield (
                f"  {label:10} metadata: sent {r['rows']:,} inserted {r['inserted']:,} "
                f"updated {r['updated']:,} unchanged {r['unchanged']:,} rejected {r['rejected']:,} batches {r['batches']} "
                f"api_calls {r['api_calls']}" + "".join(f" {name} {r[name]}" for name in extra)
            )
