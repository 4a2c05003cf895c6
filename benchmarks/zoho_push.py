"""Zoho CRM write-back speed, calls and memory, against a plain ``requests`` client.

Starts a sandbox, writes a DuckDB file whose ``src.clients`` table holds N generated rows, then
measures, each in a fresh interpreter so that peak RSS belongs to that measurement alone:

- baseline: the rows read with a plain ``fetchall`` into dicts (the query formats dates,
  datetimes and numbers as Zoho takes them), an access token from the sandbox's accounts server
  (refresh-token grant), then ``POST /crm/v8/Accounts/upsert`` with ``duplicate_check_fields``
  ``["Harvest_Client_Id"]``, 100 records per call, the writer's ``PARALLEL_CALLS`` calls in flight
  (what it uses for ``concurrency: parallel``; the worker itself imports nothing of crm_assets); timed from the DuckDB read to the last answer;
- crm_assets: a real Dagster run of the sync asset (and its rejections check) that a syncs.yaml
  written here defines, found through ``CRM_ASSETS_SYNCS`` with the shipped
  ``crm_assets.definitions`` resources, upserting on the same key in batches of 100;
- the same run again with no change (nothing should be sent), and after changing K rows;
- the baseline once more on an emptied module, so that the order of the runs does not favour
  either side (the ratio uses both baseline runs).

The module is emptied before the baseline and before our first run, so both create every
record. Calls are counted from our metadata and from the sandbox's request log; the CPU seconds
of the client (the timed part of the worker) and of the sandbox process (from ``/proc``) say
which side the time went to. Figures are
printed, never asserted. ``--profile FILE`` also writes a cProfile of our first run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

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
    uptime,
)

sys.path.insert(0, str(ROOT))

MODULE = "Accounts"
KEY = "Harvest_Client_Id"
SYNC_NAME = "bench_zoho_accounts"
RECORDS_PER_CALL = 100
SOURCE = """
    create schema src;
    create table src.clients as
    select i as id,
           'Client ' || i as name,
           i || ' Harvest Street' as address,
           ['USD', 'EUR', 'GBP'][1 + i % 3] as currency,
           i % 4 <> 0 as is_active,
           (i % 5000 * 1250.25)::decimal(16, 2) as revenue,
           (i % 900)::integer as employees,
           date '2019-01-01' + (i % 1500)::int as since,
           timestamptz '2024-03-01 10:00:00+00' + (i % 100000) * interval 7 minute as updated_at
    from range(1, {rows} + 1) t(i)
"""
# Our sync's query: the warehouse's own types, converted by the sync.
SYNC_QUERY = f"""
    select id::varchar as {KEY}, name as Account_Name, address as Billing_Street,
           currency as Harvest_Currency, is_active as Harvest_Active, revenue as Annual_Revenue,
           employees as Employees, since as Client_Since, updated_at as Harvest_Updated_At
    from src.clients
"""
# The baseline's query: the same values, cast in SQL to what json.dumps accepts and Zoho takes.
BASELINE_QUERY = f"""
    select id::varchar as {KEY}, name as Account_Name, address as Billing_Street,
           currency as Harvest_Currency, is_active as Harvest_Active,
           revenue::double as Annual_Revenue, employees as Employees,
           strftime(since, '%Y-%m-%d') as Client_Since,
           strftime(timezone('UTC', updated_at), '%Y-%m-%dT%H:%M:%S+00:00') as Harvest_Updated_At
    from src.clients
"""
# The syncs.yaml entry our runs read.
SYNC = {
    "name": SYNC_NAME,
    "destination": "zoho",
    "object": MODULE,
    "query": SYNC_QUERY,
    "mode": "update",
    "upsert": True,
    "key": KEY,
    "concurrency": "parallel",
    "batch_size": RECORDS_PER_CALL,
    "trigger_workflow": False,
    "include_nulls": False,
}


def baseline_upsert(env: dict[str, str]) -> dict:
    """Plain requests: token, then 100-record upsert calls, as many in flight as our writer allows."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    parallel_calls = int(env["BENCH_PARALLEL_CALLS"])
    watch = Stopwatch()
    records = fetch_dicts(env["CRM_ASSETS_DUCKDB_PATH"], BASELINE_QUERY)
    read_seconds = watch.seconds
    http = requests.Session()
    token = http.post(
        env["ZOHO_ACCOUNTS_URL"] + "/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": env["ZOHO_CLIENT_ID"],
            "client_secret": env["ZOHO_CLIENT_SECRET"],
            "refresh_token": env["ZOHO_REFRESH_TOKEN"],
        },
        timeout=60,
    ).json()
    url = f"{token['api_domain']}/crm/v8/{MODULE}/upsert"
    headers = {"Authorization": f"Zoho-oauthtoken {token['access_token']}", "Content-Type": "application/json"}

    def upsert(batch: list[dict]) -> list[dict]:
        body = json.dumps({"data": batch, "trigger": [], "duplicate_check_fields": [KEY]})
        return http.post(url, data=body, headers=headers, timeout=600).json()["data"]

    batches = [records[i : i + RECORDS_PER_CALL] for i in range(0, len(records), RECORDS_PER_CALL)]
    with ThreadPoolExecutor(parallel_calls) as pool:
        results = [item for answer in pool.map(upsert, batches) for item in answer]
    seconds = watch.seconds
    return {
        "rows": len(records),
        "succeeded": sum(1 for r in results if r.get("status") == "success"),
        "seconds": seconds,
        "cpu_seconds": watch.cpu_seconds,
        "read_seconds": read_seconds,
        "parallel_calls": parallel_calls,
    }


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(sandbox, kind: str, env: dict[str, str], profile: str | None = None) -> dict:
    """A worker's figures plus the calls the sandbox logged for it."""
    sandbox.reset_zoho_stats()
    sandbox_cpu = cpu_seconds_of(sandbox.process.pid)
    figures = run_worker(__file__, kind, env, profile)
    figures["sandbox_cpu_seconds"] = cpu_seconds_of(sandbox.process.pid) - sandbox_cpu
    logged = sandbox.zoho_requests()
    figures["logged_calls"] = len(logged)
    figures["logged_writes"] = sum(1 for r in logged if r["api"] == "crm" and r["method"] in ("POST", "PUT"))
    return figures


def module_values(sandbox) -> dict[str, dict]:
    """What the module holds, by key, without the fields the sandbox sets itself (ids, times, owner)."""
    records = sandbox.call("GET", f"/_sandbox/zoho/modules/{MODULE}")["records"]
    own = {"id", "Owner", "Created_By", "Created_Time", "Modified_By", "Modified_Time"}
    return {r[KEY]: {k: v for k, v in r.items() if k not in own} for r in records}


def row(label: str, r: dict) -> str:
    rate = f"{r['rows'] / r['seconds']:>7,.0f}" if r["rows"] else f"{'-':>7}"
    return (
        f"  {label:30} {r['rows']:>7,} rows {r['seconds']:7.2f} s {rate} rec/s "
        f"{r['logged_writes']:>4} write calls {r['logged_calls']:>4} calls  CPU client {r['cpu_seconds']:5.2f} s"
        f" sandbox {r['sandbox_cpu_seconds']:5.2f} s  peak RSS {r['peak_rss_mb']:5.0f} MB"
    )


def report(base: dict, base_again: dict, first: dict, second: dict, changed: dict | None, changes: int) -> None:
    for label, b in (("baseline (requests)", base), ("baseline again, after ours", base_again)):
        print(
            row(label, b)
            + f"  (DuckDB read {b['read_seconds']:.2f} s, {b['succeeded']:,} succeeded,"
            f" {b['parallel_calls']} in flight)"
        )
    for line in our_rows(row, first, second, changed, changes):
        print(line)
    base_rate = (base["rows"] + base_again["rows"]) / (base["seconds"] + base_again["seconds"])
    print(
        f"  ours / baseline (both baseline runs) records/s: whole Dagster run {first['rows'] / first['seconds'] / base_rate:.2f}, "
        f"sync step {first['rows'] / first['sync_seconds'] / base_rate:.2f}; "
        f"peak RSS {first['peak_rss_mb'] / base['peak_rss_mb']:.2f}; "
        f"write calls {first['logged_writes']} vs {base['logged_writes']}, "
        f"calls {first['logged_calls']} vs {base['logged_calls']}"
    )
    for line in metadata_lines([("first", first), ("no change", second), ("changed", changed)], "retries"):
        print(line)


def main() -> None:
    args = arguments(10_000, None, "rows changed before the third run (default: rows / 10; 0: skip)")
    if args.worker:
        serve_worker(
            baseline_upsert
            if args.worker == "baseline"
            else lambda env: sync_run(env, ["zoho_crm", SYNC_NAME], "zoho", args.profile)
        )
        return

    from crm_assets.destinations.zoho.writer import PARALLEL_CALLS

    changes = args.rows // 10 if args.changes is None else args.changes
    print(machine("requests"))
    with bench_setup(SOURCE, args.rows, SYNC) as (sandbox, warehouse, env):
        env["BENCH_PARALLEL_CALLS"] = str(PARALLEL_CALLS)
        print(f"\n{args.rows:,} rows upserted into {MODULE} on {KEY}, {RECORDS_PER_CALL} per call")
        sandbox.call("POST", "/_sandbox/zoho/modules/reset")
        base = measured(sandbox, "baseline", env)
        stored_by_baseline = module_values(sandbox)
        sandbox.call("POST", "/_sandbox/zoho/modules/reset")
        first = measured(sandbox, "crm_assets", env, args.profile)
        same_values = module_values(sandbox) == stored_by_baseline
        second = measured(sandbox, "crm_assets", env)
        changed = None
        if changes:
            rename_rows(warehouse, "src.clients", changes)
            changed = measured(sandbox, "crm_assets", env)
        in_module = len(sandbox.call("GET", f"/_sandbox/zoho/modules/{MODULE}")["records"])
        sandbox.call("POST", "/_sandbox/zoho/modules/reset")
        base_again = measured(sandbox, "baseline", env)
    report(base, base_again, first, second, changed, changes)
    print(f"  both first pushes stored the same field values: {'yes' if same_values else 'NO'}")
    print(f"  records in {MODULE} after the runs: {in_module:,}")
    print(f"  load at the end: {uptime()}")


if __name__ == "__main__":
    main()
