"""deploy/dagster.yaml on a real PostgreSQL: a Harvest backfill and a Zoho CRM sync run by the
Dagster CLI, with run history, events and pool slots in Postgres.

The server is started here (crm_assets_tests/deploy/postgres_server.py); without PostgreSQL
binaries the test is skipped, unless CRM_ASSETS_REQUIRE_POSTGRES=1 (set by .ci/run, which
installs Debian's postgresql) makes that a failure. Only the run launcher differs from the
shipped file: runs start as local processes, since no Docker daemon is at hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from crm_assets_tests.deploy.postgres_server import PostgresServer, postgres_bin_dir
from crm_assets_tests.harvest_truth import assert_table_matches, expected_rows
from crm_assets_tests.zoho_modules import module_records

ROOT = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")
LOCAL_LAUNCHER = {"module": "dagster", "class": "DefaultRunLauncher"}


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    if postgres_bin_dir() is None:
        reason = "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
        if os.getenv("CRM_ASSETS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"CRM_ASSETS_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    with PostgresServer(durable=False) as server:
        yield server


@pytest.fixture
def deploy_instance(postgres, sandbox, tmp_path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    """A DAGSTER_HOME holding deploy/dagster.yaml (local launcher), the sandbox's variables and
    the Postgres credentials in the environment, as the daemon's container would have them."""
    config = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    config["run_launcher"] = LOCAL_LAUNCHER
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    for key, value in {**sandbox.env, **postgres.env}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("CRM_ASSETS_DUCKDB_PATH", str(tmp_path / "crm.duckdb"))
    with dg.DagsterInstance.get() as instance:
        yield instance


def pg_rows(server: PostgresServer, sql: str, *params) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(server.url) as conn, conn.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    conn.close()
    return rows


def materialize(select: str, *partition_range: str) -> None:
    """`dagster asset materialize` as an operator would run it: steps in subprocesses, each
    opening the instance from DAGSTER_HOME with the credentials of its environment."""
    command = [DAGSTER, "asset", "materialize", "-m", "crm_assets.definitions", "--select", select]
    if partition_range:
        command += ["--partition-range", "...".join(partition_range)]
    done = subprocess.run(command, cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_a_backfill_and_a_sync_on_a_postgres_instance(postgres, deploy_instance, sandbox):
    instance = deploy_instance
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert instance.run_monitoring_enabled and instance.event_log_storage.supports_global_concurrency_limits
    today = datetime.now(UTC).date()
    first, last = (today - timedelta(days=1)).isoformat(), today.isoformat()
    sandbox.harvest_modify("clients", count=3)  # so that the two days hold clients to push

    materialize('key:"harvest/clients"', first, last)
    materialize('key:"zoho_crm/clients_to_zoho_accounts"')  # the shipped sync that reads harvest.clients

    runs = instance.get_runs()
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
    # What Dagster recorded is in Postgres, read here with plain SQL.
    statuses = pg_rows(postgres, "select status from runs")
    assert sorted(statuses) == [("SUCCESS",), ("SUCCESS",)]
    materialized = set(pg_rows(
        postgres, "select asset_key, partition from event_logs where dagster_event_type = %s",
        "ASSET_MATERIALIZATION",
    ))
    assert materialized == {('["harvest", "clients"]', first), ('["harvest", "clients"]', last),
                            ('["zoho_crm", "clients_to_zoho_accounts"]', None)}
    assert not (Path(os.environ["DAGSTER_HOME"]) / "history").exists(), "no SQLite history beside Postgres"
    # The backfill wrote the sandbox's clients of those days; the sync pushed each of them.
    with duckdb.connect(os.environ["CRM_ASSETS_DUCKDB_PATH"], read_only=True) as conn:
        assert_table_matches(conn, "clients", expected_rows(sandbox, "clients", since=first))
        client_ids = {str(row[0]) for row in conn.execute("select id from harvest.clients").fetchall()}
    assert len(client_ids) >= 3
    assert {r["Harvest_Client_Id"] for r in module_records(sandbox, "Accounts")} == client_ids
    # The password came from the environment and went nowhere else.
    for path in Path(os.environ["DAGSTER_HOME"]).rglob("*"):
        if path.is_file():
            assert postgres.password not in path.read_text(errors="replace"), path
