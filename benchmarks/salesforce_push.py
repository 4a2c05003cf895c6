"""Salesforce push speed, calls and memory, against simple-salesforce's own bulk upsert.

Starts a sandbox, writes a DuckDB file whose ``src.projects`` table holds N generated rows,
then measures, each in a fresh interpreter so that peak RSS belongs to that measurement alone:

- baseline: the rows read with a plain ``fetchall`` into dicts, then one
  ``sf.bulk.Harvest_Project__c.upsert(records, 'Harvest_Project_Id__c', batch_size=10000,
  use_serial=False)``; the timing starts before the read and includes the login;
- crm_assets: a real Dagster run of the sync asset (and its rejections check) that a
  syncs.yaml written here defines, found through ``CRM_ASSETS_SYNCS`` with the shipped
  ``crm_assets.definitions`` resources, upserting on the same external id in batches of 10,000;
- the same run again with no change (nothing should be sent), and after changing K rows.

The org is emptied before the baseline and before our first run, so both create every record.
Calls are counted twice: from our metadata and from the sandbox's request log, whose
per-request times also give the seconds the sandbox spent answering (the rest of a
measurement is the client's own work and waiting). Figures are
printed, never asserted. ``--profile FILE`` also writes a cProfile of our first run.
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

from peak_memory import peak_rss_mb  # noqa: E402  (benchmarks/ is the script's folder)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OBJECT = "Harvest_Project__c"
KEY = "Harvest_Project_Id__c"
SYNC_NAME = "bench_projects"
SOURCE = """
    create schema src;
    create table src.projects as
    select i as id,
           'Project ' || i as name,
           'P-' || (i % 9973) as code,
           i % 3 = 0 as active,
           (i % 5000 * 1.25)::decimal(16, 2) as hours,
           (50 + (i % 97) * 1.5)::double as rate,
           date '2024-01-01' + (i % 700)::int as starts_on,
           timestamptz '2024-03-01 10:00:00+00' + (i % 100000) * interval 7 minute as last_entry_at
    from range(1, {rows} + 1) t(i)
"""
# Our sync's query: the warehouse's own types, converted by the sync.
SYNC_QUERY = f"""
    select id::varchar as {KEY}, name as Name, code as Code__c, active as Is_Active__c,
           hours as Hours_Logged__c, rate as Hourly_Rate__c, starts_on as Starts_On__c,
           last_entry_at as Last_Entry_At__c
    from src.projects
"""
# The baseline's query: the same values, cast in SQL to what json.dumps accepts.
BASELINE_QUERY = f"""
    select id::varchar as {KEY}, name as Name, code as Code__c, active as Is_Active__c,
           hours::double as Hours_Logged__c, rate as Hourly_Rate__c,
           strftime(starts_on, '%Y-%m-%d') as Starts_On__c,
           strftime(timezone('UTC', last_entry_at), '%Y-%m-%dT%H:%M:%S.%gZ') as Last_Entry_At__c
    from src.projects
"""




def baseline_upsert(env: dict[str, str]) -> dict:
    """simple-salesforce's own bulk upsert of the rows that a plain fetchall returns."""
    import duckdb

    from crm_assets_tests.sandbox.salesforce_client import password_client

    began = time.perf_counter()
    with duckdb.connect(env["CRM_ASSETS_DUCKDB_PATH"], read_only=True) as conn:
        cursor = conn.execute(BASELINE_QUERY)
        names = [d[0] for d in cursor.description]
        records = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    read_seconds = time.perf_counter() - began
    sf = password_client(env)
    results = getattr(sf.bulk, OBJECT).upsert(records, KEY, batch_size=10_000, use_serial=False)
    seconds = time.perf_counter() - began
    return {
        "rows": len(records),
        "succeeded": sum(1 for r in results if r.get("success")),
        "seconds": seconds,
        "read_seconds": read_seconds,
    }


def crm_assets_sync(env: dict[str, str], profile: str | None) -> dict:
    """One real Dagster run of the benchmark's sync asset and its check, on a SQLite instance."""
    os.environ.update(env)
    import dagster as dg

    from crm_assets import definitions

    sync_asset = definitions.defs.get_assets_def(dg.AssetKey(["salesforce", SYNC_NAME]))
    checks = [
        c
        for c in definitions.defs.asset_checks or []
        if sync_asset.key in {k.asset_key for k in c.check_keys}
    ]
    resources = definitions.defs.resources
    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.local_temp(home) as instance:
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        began = time.perf_counter()
        result = dg.materialize(
            [sync_asset, *checks],
            resources={"warehouse": resources["warehouse"], "salesforce": resources["salesforce"]},
            instance=instance,
        )
        seconds = time.perf_counter() - began
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        (event,) = result.asset_materializations_for_node(f"salesforce__{SYNC_NAME}")
        meta = {k: v.value for k, v in event.metadata.items()}
    return {
        "rows": meta["sent"],
        "seconds": seconds,
        "sync_seconds": meta["seconds"],
        "api_calls": meta["api_calls"],
        "batches": meta["batches"],
        "inserted": meta["inserted"],
        "updated": meta["updated"],
        "rejected": meta["rejected"],
        "unchanged": meta["unchanged"],
    }


def run_worker(kind: str, env: dict[str, str], profile: str | None = None) -> dict:
    """Run one measurement in a fresh interpreter and return its figures."""
    command = [sys.executable, __file__, "--worker", kind] + (["--profile", profile] if profile else [])
    out = subprocess.run(
        command, check=False, input=json.dumps(env), capture_output=True, text=True, cwd=ROOT
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measured(sandbox, kind: str, env: dict[str, str], profile: str | None = None) -> dict:
    """A worker's figures plus the calls the sandbox logged for it."""
    sandbox.salesforce_clear_requests()
    figures = run_worker(kind, env, profile)
    logged = sandbox.salesforce_requests()
    figures["logged_calls"] = len(logged)
    figures["logged_batches"] = sum(
        1 for r in logged if r["method"] == "POST" and r["path"].endswith("/batch")
    )
    figures["sandbox_seconds"] = sum(r.get("ms", 0) for r in logged) / 1000
    return figures


def write_source(path: str, rows: int) -> None:
    import duckdb

    with duckdb.connect(path) as conn:
        conn.execute(SOURCE.format(rows=rows))


def write_syncs(path: Path) -> None:
    import yaml

    spec = {
        "name": SYNC_NAME,
        "destination": "salesforce",
        "object": OBJECT,
        "query": SYNC_QUERY,
        "mode": "update",
        "upsert": True,
        "key": KEY,
        "concurrency": "parallel",
        "batch_size": 10_000,
    }
    path.write_text(yaml.safe_dump({"syncs": [spec]}, sort_keys=False), encoding="utf-8")


def machine() -> str:
    from importlib.metadata import version

    load = subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()
    return (
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, dagster {version('dagster')}, "
        f"duckdb {version('duckdb')}, simple-salesforce {version('simple-salesforce')}\nload: {load}"
    )


def row(label: str, r: dict) -> str:
    rate = f"{r['rows'] / r['seconds']:>9,.0f}" if r["rows"] else f"{'-':>9}"
    return (
        f"  {label:28} {r['rows']:>8,} rows {r['seconds']:7.2f} s {rate} rec/s "
        f"{r['logged_batches']:>3} batch calls {r['logged_calls']:>4} calls  sandbox busy {r['sandbox_seconds']:5.2f} s  "
        f"peak RSS {r['peak_rss_mb']:5.0f} MB"
    )


def report(base: dict, first: dict, second: dict, changed: dict | None, changes: int) -> None:
    print(
        row("baseline (simple-salesforce)", base)
        + f"  (DuckDB read {base['read_seconds']:.2f} s, {base['succeeded']:,} succeeded)"
    )
    print(row("crm_assets, first run", first) + f"  (sync step {first['sync_seconds']:.2f} s)")
    print(row("crm_assets, no change", second) + f"  (sync step {second['sync_seconds']:.2f} s)")
    if changed is not None:
        print(
            row(f"crm_assets, {changes:,} changed", changed)
            + f"  (sync step {changed['sync_seconds']:.2f} s)"
        )
    base_rate = base["rows"] / base["seconds"]
    print(
        f"  ours / baseline records/s: whole Dagster run {first['rows'] / first['seconds'] / base_rate:.2f}, "
        f"sync step {first['rows'] / first['sync_seconds'] / base_rate:.2f}; "
        f"peak RSS {first['peak_rss_mb'] / base['peak_rss_mb']:.2f}; "
        f"batch calls {first['logged_batches']} vs {base['logged_batches']}, "
        f"calls {first['logged_calls']} vs {base['logged_calls']}"
    )
    print(
        "  client-side seconds (measured minus sandbox busy): "
        f"our sync step {first['sync_seconds'] - first['sandbox_seconds']:.2f}, "
        f"baseline {base['seconds'] - base['sandbox_seconds']:.2f}"
    )
    for label, r in (("first", first), ("no change", second), ("changed", changed)):
        if r is not None:
            print(
                f"  {label:10} metadata: sent {r['rows']:,} inserted {r['inserted']:,} updated {r['updated']:,} "
                f"unchanged {r['unchanged']:,} rejected {r['rejected']:,} batches {r['batches']} "
                f"api_calls {r['api_calls']}"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--changes", type=int, default=1_000, help="rows changed before the third run (0: skip)"
    )
    parser.add_argument("--profile", help="write a cProfile of our first run to this file")
    parser.add_argument("--worker", choices=["baseline", "crm_assets"])
    args = parser.parse_args()
    if args.worker:
        env = json.loads(sys.stdin.read())
        figures = baseline_upsert(env) if args.worker == "baseline" else crm_assets_sync(env, args.profile)
        figures["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(figures))
        return

    import duckdb

    from crm_assets.sandbox import SandboxProcess

    print(machine())
    with tempfile.TemporaryDirectory() as tmp, SandboxProcess(seed=1, scale=0.05, lifetime=3600) as sandbox:
        warehouse, syncs = Path(tmp) / "bench.duckdb", Path(tmp) / "syncs.yaml"
        write_source(str(warehouse), args.rows)
        write_syncs(syncs)
        env = {**sandbox.env, "CRM_ASSETS_DUCKDB_PATH": str(warehouse), "CRM_ASSETS_SYNCS": str(syncs)}
        print(f"\n{args.rows:,} rows upserted into {OBJECT} on {KEY}, batches of 10,000")
        sandbox.salesforce_reset()
        base = measured(sandbox, "baseline", env)
        sandbox.salesforce_reset()
        first = measured(sandbox, "crm_assets", env, args.profile)
        second = measured(sandbox, "crm_assets", env)
        changed = None
        if args.changes:
            with duckdb.connect(str(warehouse)) as conn:
                conn.execute(
                    f"update src.projects set name = name || ' (renamed)' where id <= {args.changes}"
                )
            changed = measured(sandbox, "crm_assets", env)
        in_org = len(sandbox.salesforce_records(OBJECT))
    report(base, first, second, changed, args.changes)
    print(f"  records in the org after the runs: {in_org:,}")


if __name__ == "__main__":
    main()
