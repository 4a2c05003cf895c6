"""What Dagster's own bookkeeping costs a single-run backfill, per instance storage.

`make demo` backfills every table over the sandbox's whole range as one run. The sync moves
its rows in seconds; Dagster records, per table and day, one planned and one materialization
event. This benchmark isolates that cost: a run of a no-op multi-asset shaped like ours (A
daily-partitioned tables in one step, single-run backfill policy, a check per table) over D
days, each storage in a fresh process and a fresh DAGSTER_HOME, timed from launch to the end
of the run, with the events it recorded counted from the instance itself.

Storages (the yaml of each is printed with the figures):
- sqlite: Dagster's default (an SQLite file per run plus an index file, WAL, fsync per commit);
- consolidated: one SQLite file for every run's events;
- pooled-full: crm_assets.instance_storage (the consolidated file over connections kept open)
  with `synchronous: FULL`, a sync on every commit;
- shipped: the repository's dagster.yaml as `make demo` and `make dev` use it;
- postgres: deploy/dagster.yaml's storage on a throwaway local PostgreSQL (durable settings);
  skipped when no PostgreSQL binaries exist.
Each also with DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1 where that differs.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUBSET_PLANNED = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
CONSOLIDATED = {
    "event_log_storage": {
        "module": "dagster._core.storage.event_log",
        "class": "ConsolidatedSqliteEventLogStorage",
        "config": {"base_dir": "{home}/history"},
    }
}


POOLED = {
    "event_log_storage": {
        "module": "crm_assets.instance",
        "class": "PooledSqliteEventLogStorage",
        "config": {"base_dir": "{home}/history", "synchronous": "FULL"},
    }
}


def storages() -> dict[str, dict]:
    shipped = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    deploy = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    return {
        "sqlite": {},
        "consolidated": CONSOLIDATED,
        "pooled-full": POOLED,
        "shipped": shipped,
        "postgres": {"storage": deploy["storage"]},
    }


def worker(tables: int, days: int) -> dict:
    """One run in this process against DAGSTER_HOME; returns its figures."""
    partitions = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date=None)
    keys = partitions.get_partition_keys()[:days]
    specs = [dg.AssetSpec(["bench", f"table_{i:02d}"]) for i in range(tables)]

    @dg.multi_asset(
        specs=specs,
        check_specs=[dg.AssetCheckSpec("rows", asset=s.key) for s in specs],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=True,
    )
    def no_op_tables(context):
        for key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=key, metadata={"rows": 0})
            yield dg.AssetCheckResult(asset_key=key, check_name="rows", passed=True)

    with dg.DagsterInstance.get() as instance:
        began = time.perf_counter()
        result = dg.materialize(
            [no_op_tables],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
        )
        seconds = time.perf_counter() - began
        assert result.success
        counts = {}
        for name, kind in (
            ("planned", dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED),
            ("materializations", dg.DagsterEventType.ASSET_MATERIALIZATION),
        ):
            counts[name] = len(instance.get_records_for_run(result.run_id, of_type=kind, limit=100_000).records)
        counts["all events"] = len(instance.all_logs(result.run_id))
    return {"seconds": round(seconds, 1), **counts}


def measure(name: str, config: dict, env: dict[str, str], tables: int, days: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_instance_", dir=ROOT / "data") as home:
        text = yaml.safe_dump(config).replace("{home}", home)
        (Path(home) / "dagster.yaml").write_text(text)
        done = subprocess.run(
            [sys.executable, __file__, "--worker", "--tables", str(tables), "--days", str(days)],
            env={**os.environ, **env, "DAGSTER_HOME": home},
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{name}: {done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    # The demo's shape is 30 tables x 401 days; Dagster's default storage needs ~10 minutes
    # for it here, so `make bench` measures a smaller run whose per-event cost is the same.
    parser.add_argument("--tables", type=int, default=10, help="tables per run (the demo has 30)")
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--storages", nargs="+", default=["sqlite", "consolidated", "pooled-full", "shipped", "postgres"])
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.tables, args.days)))
        return

    from crm_assets_tests.deploy.postgres_server import PostgresServer, postgres_bin_dir

    (ROOT / "data").mkdir(exist_ok=True)
    print(f"single-run backfill of {args.tables} no-op tables x {args.days} days, one check per table")
    print(f"{'storage':34} {'seconds':>8} {'planned':>8} {'materializations':>17} {'all events':>11}")
    for name in args.storages:
        config = storages()[name]
        for subset in ("", "1"):
            if subset and SUBSET_PLANNED in os.environ:
                continue
            label = f"{name}{' + subset planned' if subset else ''}"
            env = {SUBSET_PLANNED: subset} if subset else {}
            if name == "postgres":
                if postgres_bin_dir() is None:
                    print(f"{label:34} skipped: no PostgreSQL binaries under /usr/lib/postgresql")
                    break
                with PostgresServer() as server:
                    figures = measure(label, config, {**env, **server.env}, args.tables, args.days)
            else:
                figures = measure(label, config, env, args.tables, args.days)
            print(
                f"{label:34} {figures['seconds']:>8} {figures['planned']:>8} "
                f"{figures['materializations']:>17} {figures['all events']:>11}",
                flush=True,
            )


if __name__ == "__main__":
    main()
