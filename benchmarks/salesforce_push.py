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

import sys

from workers import (  # benchmarks/ is the script's folder
    ROOT,
    Stopwatch,
    arguments,
    bench_setup,
    fetch_dicts,
    machine,
    metadata_lines,
    our_rows,
    rename_rows,
    run_worker,
    serve_worker,
    sync_run,
)

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
# The syncs.yaml entry our runs read.
SYNC = {
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


def baseline_upsert(env: dict[str, str]) -> dict:
    """simple-salesforce's own bulk upsert of the rows that a plain fetchall returns."""
    from crm_assets_tests.sandbox.salesforce_client import password_client

    watch = Stopwatch()
    records = fetch_dicts(env["CRM_ASSETS_DUCKDB_PATH"], BASELINE_QUERY)
    read_seconds = watch.seconds
    sf = password_client(env)
    results = getattr(sf.bulk, OBJECT).upsert(records, KEY, batch_size=10_000, use_serial=False)
    seconds = watch.seconds
    return {
        "rows": len(records),
        "succeeded": sum(1 for r in results if r.get("success")),
        "seconds": seconds,
        "read_seconds": read_seconds,
    }


def measured(sandbox, kind: str, env: dict[str, str], profile: str | None = None) -> dict:
    """A worker's figures plus the calls the sandbox logged for it."""
    sandbox.salesforce_clear_requests()
    figures = run_worker(__file__, kind, env, profile)
    logged = sandbox.salesforce_requests()
    figures["logged_calls"] = len(logged)
    figures["logged_batches"] = sum(
        1 for r in logged if r["method"] == "POST" and r["path"].endswith("/batch")
    )
    figures["sandbox_seconds"] = sum(r.get("ms", 0) for r in logged) / 1000
    return figures


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
    for line in our_rows(row, first, second, changed, changes):
        print(line)
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
    for line in metadata_lines([("first", first), ("no change", second), ("changed", changed)]):
        print(line)


def main() -> None:
    args = arguments(100_000, 1_000, "rows changed before the third run (0: skip)")
    if args.worker:
        serve_worker(
            baseline_upsert
            if args.worker == "baseline"
            else lambda env: sync_run(env, ["salesforce", SYNC_NAME], "salesforce", args.profile)
        )
        return

    print(machine("simple-salesforce"))
    with bench_setup(SOURCE, args.rows, SYNC) as (sandbox, warehouse, env):
        print(f"\n{args.rows:,} rows upserted into {OBJECT} on {KEY}, batches of 10,000")
        sandbox.salesforce_reset()
        base = measured(sandbox, "baseline", env)
        sandbox.salesforce_reset()
        first = measured(sandbox, "crm_assets", env, args.profile)
        second = measured(sandbox, "crm_assets", env)
        changed = None
        if args.changes:
            rename_rows(warehouse, "src.projects", args.changes)
            changed = measured(sandbox, "crm_assets", env)
        in_org = len(sandbox.salesforce_records(OBJECT))
    report(base, first, second, changed, args.changes)
    print(f"  records in the org after the runs: {in_org:,}")


if __name__ == "__main__":
    main()
