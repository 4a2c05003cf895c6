"""Other writers interleave with a long backfill: the warehouse is held per write, not per run.

A Harvest backfill throttled by the sandbox's rate limit (``rate=100/15``, Harvest's own) runs
in its own process with small pages and small write batches, so it spends most of its life
waiting on the API. Meanwhile a Salesforce sync (a real Dagster run in this process), a plain
process that opens the DuckDB file after taking the warehouse's lock, as every process must, and
the dbt model over the very table the backfill is writing (loaded once, quickly, beforehand) all
complete in well under a minute, while the backfill is still running. The model holds what the
sandbox's time entries add up to, and the backfill then ends with exactly the sandbox's rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from crm_assets.sandbox import SandboxProcess
from crm_assets.warehouse import Warehouse
from crm_assets_tests.conftest import harvest_assets_from, harvest_resources, materialize_harvest, today
from crm_assets_tests.destinations.conftest import materialization, run_syncs, salesforce_resource, sync
from crm_assets_tests.harvest_truth import assert_table_matches, expected_rows
from crm_assets_tests.models.conftest import materialize_marts

ROOT = Path(__file__).resolve().parents[2]
RATE_LIMIT = 100  # requests per 15 s
TABLES = ["time_entries", "time_entry_external_reference"]
# ~350 time entries (scale 0.07), one a page: the backfill waits out the rate limit three times, so
# it outlasts the sync, the plain writer and the model (12-25 s together on a busy 2-core machine).
PER_PAGE = 1
PROJECTS = 40
MODEL = "project_daily_hours"  # reads harvest.time_entries, the table the backfill writes
MODEL_READS = ["time_entries", "projects"]  # projects: its relationships test


def yesterday() -> str:
    return (datetime.now(UTC).date() - timedelta(days=1)).isoformat()


def backfill(path: str, env: dict[str, str]) -> None:
    """The backfill process: yesterday and today of the Harvest assets (the first partition has
    no lower bound, so every record is read), as one real Dagster run."""
    import dagster as dg

    from crm_assets.sources.harvest.client import HarvestClient

    first = yesterday()
    client = HarvestClient(access_token=env["HARVEST_ACCESS_TOKEN"], account_id=env["HARVEST_ACCOUNT_ID"],
                           api_url=env["HARVEST_API_URL"], per_page=PER_PAGE)
    result = dg.materialize(
        [harvest_assets_from(first)],
        resources={"harvest": client,
                   "warehouse": Warehouse(duckdb=DuckDBResource(database=path), batch_records=20)},
        selection=[dg.AssetKey(["harvest", t]) for t in TABLES],
        tags={"dagster/asset_partition_range_start": first,
              "dagster/asset_partition_range_end": datetime.now(UTC).date().isoformat()},
        raise_on_error=False,
    )
    retries = [
        e.step_materialization_data.materialization.metadata["run_api_retries"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[-1] == "time_entries"
    ]
    print(json.dumps({"success": result.success, "retries": retries}))


PLAIN_PROCESS = """
import sys, duckdb
from dagster_duckdb import DuckDBResource
from crm_assets.warehouse import Warehouse
path = sys.argv[1]
with Warehouse(duckdb=DuckDBResource(database=path)).lock(), duckdb.connect(path) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS main.notes (note VARCHAR)")
    conn.execute("INSERT INTO main.notes VALUES ('written beside a backfill')")
    print(conn.execute("SELECT count(*) FROM harvest.time_entries").fetchone()[0])
"""


def daily_hours_from_api(sandbox: SandboxProcess) -> dict[tuple[int, str], tuple[int, float]]:
    """(project id, day) -> (entries, hours), added up by the test from the sandbox's raw time entries."""
    totals: dict[tuple[int, str], tuple[int, float]] = {}
    for entry in sandbox.harvest_records("time_entries"):
        key = (entry["project"]["id"], entry["spent_date"])
        entries, hours = totals.get(key, (0, 0.0))
        totals[key] = (entries + 1, hours + entry["hours"])
    return totals


@pytest.fixture(scope="module")
def throttled() -> SandboxProcess:
    with SandboxProcess(seed=7, scale=0.07, faults=f"harvest:rate={RATE_LIMIT}/15", lifetime=600) as sb:
        yield sb


def test_a_sync_a_plain_writer_and_a_model_finish_while_a_throttled_backfill_runs(throttled, tmp_path):
    path = str(tmp_path / "crm.duckdb")
    warehouse = Warehouse(duckdb=DuckDBResource(database=path))
    with warehouse.lock(), duckdb.connect(path) as conn:
        conn.execute("CREATE SCHEMA src")
        conn.execute(f"CREATE TABLE src.projects AS SELECT i AS id, 'Project ' || i AS name FROM range({PROJECTS}) t(i)")
    # The tables the model and its dbt tests read, loaded first with full pages: a few requests.
    materialize_harvest(harvest_resources(throttled, path), yesterday(), today(), selection=MODEL_READS,
                        assets=harvest_assets_from(yesterday()))
    throttled.salesforce_reset()
    throttled.reset_harvest_stats()

    worker = subprocess.Popen(
        [sys.executable, "-c", f"from {__name__} import backfill; import json, sys; backfill(sys.argv[1], json.loads(sys.argv[2]))",
         path, json.dumps(throttled.env)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # Wait until the backfill has been throttled: it is now waiting on Retry-After.
        deadline = time.monotonic() + 60
        while throttled.harvest_stats()["requests"] <= RATE_LIMIT:
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, "the backfill never reached the rate limit"
            time.sleep(0.2)

        began = time.monotonic()
        spec = sync(name="projects", object="Harvest_Project__c", mode="update", upsert=True,
                    key="Harvest_Project_Id__c",
                    query="select id::varchar as Harvest_Project_Id__c, name as Name from src.projects")
        result = run_syncs([spec], path, salesforce_resource(throttled.env))
        sync_seconds = time.monotonic() - began
        plain = subprocess.run([sys.executable, "-c", PLAIN_PROCESS, path], cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
        both_seconds = time.monotonic() - began
        model_began = time.monotonic()
        model = materialize_marts(path, [MODEL], raise_on_error=False)
        model_seconds = time.monotonic() - model_began
        all_seconds = time.monotonic() - began
        backfill_still_running = worker.poll() is None

        out, err = worker.communicate(timeout=120)
        backfill_seconds = time.monotonic() - began
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    assert result.success and materialization(result, spec)["sent"] == PROJECTS
    assert {r["Harvest_Project_Id__c"] for r in throttled.salesforce_records("Harvest_Project__c")} == {
        str(i) for i in range(PROJECTS)
    }
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert model.success, [e.message for e in model.all_events if e.is_failure]
    assert max(sync_seconds, both_seconds, all_seconds) < 60, (sync_seconds, both_seconds, all_seconds)
    print(f"sync {sync_seconds:.1f}s, sync and plain {both_seconds:.1f}s, model {model_seconds:.1f}s, "
          f"backfill done {backfill_seconds:.1f}s after the sync began")
    assert backfill_still_running, "the sync and the plain process should not have waited for the backfill"

    figures = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    assert figures.get("success"), err[-3000:]
    assert figures["retries"][0] > 0, "the backfill was throttled"
    with duckdb.connect(path, read_only=True) as conn:
        for table in TABLES:
            assert_table_matches(conn, table, expected_rows(throttled, table))
        assert conn.execute("SELECT note FROM main.notes").fetchall() == [("written beside a backfill",)]
        built = conn.execute(
            f"SELECT project_id, spent_date::varchar, entries, hours FROM marts.{MODEL}"
        ).fetchall()
    wanted = daily_hours_from_api(throttled)
    assert {(p, d): (n, pytest.approx(h)) for p, d, n, h in built} == wanted
