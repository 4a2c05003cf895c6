"""Harvest backfill speed and memory, against plain fetch-and-parse of the same pages.

Starts a sandbox with N time entries, then measures, each in a fresh process so that peak
RSS belongs to that measurement alone:

- baseline: GET every page of /time_entries with requests, following links.next, and parse
  it with the standard library (`response.json()`), keeping nothing;
- baseline (orjson): the same with orjson, the parser our client uses;
- crm_assets: a real Dagster run that backfills harvest/time_entries (and its pair table)
  into a new DuckDB file over the sandbox's whole range;
- incremental: after 1,000 time entries change in the sandbox, a real Dagster run of today's
  partition into the same file, with the requests the sandbox received per route.

Prints rows/s, seconds and peak RSS for each (for our run also the peak while the sync step
ran, sampled every 20 ms: the rest of the run is Dagster recording its events), and our share
of each baseline's rate, for the whole Dagster run (which includes Dagster recording one
materialization per day and table) and for the sync step alone (fetch, convert, write).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from peak_memory import RssSampler, peak_rss_mb  # noqa: E402  (benchmarks/ is the script's folder)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))




def cpu_seconds() -> float:
    """CPU time of this process: on a machine shared with other work, a second view of the cost."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fetch_and_parse(env: dict[str, str], parser: str) -> dict:
    import orjson
    import requests

    session = requests.Session()
    session.headers.update(
        {
            "Authorization": f"Bearer {env['HARVEST_ACCESS_TOKEN']}",
            "Harvest-Account-Id": env["HARVEST_ACCOUNT_ID"],
            "User-Agent": "crm_assets benchmark",
        }
    )
    url = f"{env['HARVEST_API_URL']}/time_entries?per_page=2000"
    rows = pages = 0
    began = time.perf_counter()
    while url:
        resp = session.get(url, timeout=60)
        resp.raise_for_status()
        body = resp.json() if parser == "json" else orjson.loads(resp.content)
        rows += len(body["time_entries"])
        pages += 1
        url = body["links"]["next"]
    return {"rows": rows, "pages": pages, "seconds": time.perf_counter() - began}


def crm_assets_backfill(env: dict[str, str], database: str, first: str) -> dict:
    os.environ.update(env)
    import dagster as dg
    from dagster_duckdb import DuckDBResource

    from crm_assets.sources.harvest.assets import harvest_assets
    from crm_assets.sources.harvest.client import HarvestClient
    from crm_assets.warehouse import Warehouse

    resources = {
        "harvest": HarvestClient(
            access_token=env["HARVEST_ACCESS_TOKEN"],
            account_id=env["HARVEST_ACCOUNT_ID"],
            api_url=env["HARVEST_API_URL"],
        ),
        "warehouse": Warehouse(duckdb=DuckDBResource(database=database)),
    }
    instance = dg.DagsterInstance.ephemeral()
    began = time.perf_counter()
    with RssSampler() as rss:
        result = dg.materialize(
            [harvest_assets],
            resources=resources,
            instance=instance,
            selection=[dg.AssetKey(["harvest", "time_entries"]), dg.AssetKey(["harvest", "time_entry_external_reference"])],
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": datetime.now(UTC).date().isoformat(),
            },
        )
    seconds = time.perf_counter() - began
    meta = {
        e.asset_key.path[-1]: e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }["time_entries"]
    step = {
        entry.dagster_event.event_type_value: entry.timestamp
        for entry in instance.all_logs(result.run_id)
        if entry.dagster_event and entry.dagster_event.event_type_value in ("STEP_START", "STEP_SUCCESS")
    }
    return {
        "rows": meta["run_rows_written"].value,
        "pages": meta["run_pages"].value,
        "seconds": seconds,
        "sync_seconds": meta["run_seconds"].value,
        "step_peak_rss_mb": rss.peak_between(step["STEP_START"], step["STEP_SUCCESS"]),
    }


def run_worker(kind: str, env: dict[str, str], database: str = "", first: str = "") -> dict:
    """Run one measurement in a fresh interpreter and return its figures."""
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--database", database, "--first", first],
        input=json.dumps(env), capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-entries", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--changes", type=int, default=1000, help="time entries changed before the incremental run")
    parser.add_argument("--worker", choices=["json", "orjson", "crm_assets"])
    parser.add_argument("--database", default="")
    parser.add_argument("--first", default="")
    args = parser.parse_args()
    if args.worker:
        env = json.loads(sys.stdin.read())
        if args.worker == "crm_assets":
            figures = crm_assets_backfill(env, args.database, args.first)
        else:
            figures = fetch_and_parse(env, args.worker)
        figures["peak_rss_mb"] = peak_rss_mb()
        figures["cpu_seconds"] = cpu_seconds()
        print(json.dumps(figures))
        return

    from crm_assets.sandbox import SandboxProcess

    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}")
    for entries in args.time_entries:
        scale = entries / 5000
        with SandboxProcess(seed=1, scale=scale, lifetime=7200) as sandbox, tempfile.TemporaryDirectory() as tmp:
            print(f"\n{entries:,} time entries (sandbox scale {scale:g})")
            database, start = f"{tmp}/crm.duckdb", sandbox.env["HARVEST_START_DATE"]
            results = {kind: run_worker(kind, sandbox.env) for kind in ("json", "orjson")}
            results["crm_assets"] = run_worker("crm_assets", sandbox.env, database, start)
            sandbox.harvest_modify("time_entries", count=args.changes)
            sandbox.reset_harvest_stats()
            incremental = run_worker("crm_assets", sandbox.env, database, datetime.now(UTC).date().isoformat())
            requests = sandbox.harvest_stats()
        for kind, r in results.items():
            rate = r["rows"] / r["seconds"]
            line = (
                f"  {kind:10} {r['rows']:>9,} rows {r['pages']:>4} pages {r['seconds']:7.2f} s {rate:>10,.0f} rows/s"
                f"  CPU {r['cpu_seconds']:6.2f} s  peak RSS {r['peak_rss_mb']:6.0f} MB"
            )
            if kind == "crm_assets":
                line += f"  (sync step {r['sync_seconds']:.2f} s, peak RSS while it ran {r['step_peak_rss_mb']:.0f} MB)"
            print(line)
        ours = results["crm_assets"]
        for kind in ("json", "orjson"):
            base = results[kind]["rows"] / results[kind]["seconds"]
            run_share = ours["rows"] / ours["seconds"] / base
            step_share = ours["rows"] / ours["sync_seconds"] / base
            print(f"  share of fetch-and-parse ({kind}): whole Dagster run {run_share:.2f}, sync step {step_share:.2f}")
        print(
            f"  incremental after {args.changes:,} changes: {incremental['rows']:,} rows written, "
            f"{incremental['seconds']:.2f} s ({incremental['seconds'] / ours['seconds']:.1%} of the full run), "
            f"sync step {incremental['sync_seconds']:.2f} s ({incremental['sync_seconds'] / ours['sync_seconds']:.1%}), "
            f"requests {requests['by_route']}, peak RSS {incremental['peak_rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
