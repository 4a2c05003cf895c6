"""The standard Dagster CLI drives the assets, and a killed backfill recovers on rerun."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from crm_assets_tests.conftest import today
from crm_assets_tests.harvest_truth import ALL_TABLES, assert_table_matches, expected_rows

ROOT = Path(__file__).resolve().parents[3]
DAGSTER = str(Path(sys.executable).parent / "dagster")
# A range of recent days: the CLI's SQLite event log makes every (asset, day) pair cost a few
# milliseconds, so the whole 400-day history is left to the in-process tests.
DAYS = 10


def first_day() -> str:
    return (datetime.now(UTC).date() - timedelta(days=DAYS - 1)).isoformat()


def cli_env(sandbox, tmp_path: Path) -> dict[str, str]:
    """A Dagster home holding a copy of the shipped dagster.yaml, and the sandbox's variables."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        **sandbox.env,
        "DAGSTER_HOME": str(home),
        "CRM_ASSETS_DUCKDB_PATH": str(tmp_path / "crm.duckdb"),
    }


def materialize_command(select: str, first: str, last: str) -> list[str]:
    return [
        DAGSTER, "asset", "materialize", "-m", "crm_assets.definitions",
        "--select", select, "--partition-range", f"{first}...{last}",
    ]


def release_killed_runs(home: Path) -> None:
    """What an operator (or the daemon's run monitoring) does after a crash: mark the dead run
    failed and give back its `duckdb` pool slot, which a killed process cannot do itself."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            instance.report_run_failed(run)
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


@pytest.mark.parametrize("select", ['key:"harvest/*"', "group:harvest"])
def test_cli_materializes_a_partition_range(sandbox, tmp_path, select):
    first = first_day()
    env = cli_env(sandbox, tmp_path)
    done = subprocess.run(
        materialize_command(select, first, today()),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with duckdb.connect(env["CRM_ASSETS_DUCKDB_PATH"], read_only=True) as conn:
        for table in ("time_entries", "invoice_line_items", "user_project_tasks"):
            assert_table_matches(conn, table, expected_rows(sandbox, table, since=first))
    home = Path(env["DAGSTER_HOME"])
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.get_runs()) == 1, "the run is recorded in DAGSTER_HOME's instance"
    assert (home / "history" / "runs.db").is_file(), "run history goes under DAGSTER_HOME"
    assert not (tmp_path / "data").exists(), "nothing lands in the working directory"


def test_a_killed_backfill_reruns_to_the_same_tables(sandbox, tmp_path):
    first, last = first_day(), today()
    env = cli_env(sandbox, tmp_path)
    for kill_after_requests in (5, 15):
        sandbox.reset_harvest_stats()
        proc = subprocess.Popen(
            materialize_command('key:"harvest/*"', first, last),
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while sandbox.harvest_stats()["requests"] < kill_after_requests and proc.poll() is None:
            assert time.monotonic() < deadline, "the backfill never reached the kill point"
            time.sleep(0.02)
        assert proc.poll() is None, "the backfill finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        release_killed_runs(Path(env["DAGSTER_HOME"]))
    done = subprocess.run(
        materialize_command('key:"harvest/*"', first, last),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with duckdb.connect(env["CRM_ASSETS_DUCKDB_PATH"], read_only=True) as conn:
        for table in ALL_TABLES:
            assert_table_matches(conn, table, expected_rows(sandbox, table, since=first))
