"""Answers that look fine but are not: an empty snapshot, replication keys in other forms.

This module edits its sandbox's data, so it runs on its own sandbox (the `sandbox` fixture is
per module).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb

from crm_assets_tests.conftest import harvest_resources, materialize_harvest, today
from crm_assets_tests.harvest_truth import assert_table_matches, expected_rows

ALLOW_SHRINK = {"ops": {"harvest_tables": {"config": {"allow_snapshot_shrink": True}}}}


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failures, "the run should have failed"
    return failures[0].step_failure_data.error.message


def count(path: str, table: str) -> int:
    with duckdb.connect(path, read_only=True) as conn:
        return conn.execute(f"SELECT count(*) FROM harvest.{table}").fetchone()[0]


def test_an_empty_snapshot_fails_the_run_and_keeps_the_tables(sandbox, tmp_path):
    path = str(tmp_path / "crm.duckdb")
    resources = harvest_resources(sandbox, path)
    roles = ["roles", "user_roles"]
    materialize_harvest(resources, today(), selection=roles)
    before = {t: count(path, t) for t in roles}
    assert before["roles"] > 1 and before["user_roles"] > 1
    sandbox.harvest_delete("roles", [r["id"] for r in sandbox.harvest_records("roles")])
    assert sandbox.harvest_records("roles") == []  # the API now answers "roles": []

    result = materialize_harvest(resources, today(), selection=roles, raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "harvest.roles" in message and "allow_snapshot_shrink" in message
    assert {t: count(path, t) for t in roles} == before

    allowed = materialize_harvest(resources, today(), selection=roles, run_config=ALLOW_SHRINK)
    assert allowed.success
    assert {t: count(path, t) for t in roles} == {"roles": 0, "user_roles": 0}


def utc_text(moment: datetime, separator: str = "T") -> str:
    return moment.astimezone(UTC).strftime(f"%Y-%m-%d{separator}%H:%M:%SZ")


def test_a_replication_key_with_a_space_lands_at_its_instant(sandbox, tmp_path):
    """RFC 3339 allows a space for the `T`: it used to compare as text outside the window."""
    path = str(tmp_path / "crm.duckdb")
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    (client_id,) = sandbox.harvest_modify("clients", count=1, set={"updated_at": utc_text(moment, " ")})
    result = materialize_harvest(harvest_resources(sandbox, path), today(), selection=["clients"])
    assert result.success
    with duckdb.connect(path, read_only=True) as conn:
        stored = conn.execute("SELECT updated_at FROM harvest.clients WHERE id = ?", [client_id]).fetchall()
    assert stored == [(moment,)]


def test_an_unparseable_replication_key_fails_naming_table_record_and_field(sandbox, tmp_path):
    path = str(tmp_path / "crm.duckdb")
    slashed = datetime.now(UTC).strftime("%Y/%m/%d %H:%M:%S")
    (task_id,) = sandbox.harvest_modify("tasks", count=1, set={"updated_at": slashed})
    result = materialize_harvest(harvest_resources(sandbox, path), today(), selection=["tasks"], raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "harvest.tasks" in message and f"id={task_id}" in message and "'updated_at'" in message
    # the record is not dropped silently: once the API sends a proper timestamp it loads
    sandbox.harvest_modify("tasks", ids=[task_id], set={"updated_at": utc_text(datetime.now(UTC))})
    assert materialize_harvest(harvest_resources(sandbox, path), today(), selection=["tasks"]).success
    today_tasks = [r for r in expected_rows(sandbox, "tasks") if r["updated_at"][:10] == today()]
    with duckdb.connect(path, read_only=True) as conn:
        assert_table_matches(conn, "tasks", today_tasks)
