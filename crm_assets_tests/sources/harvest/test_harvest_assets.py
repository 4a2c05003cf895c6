"""The Harvest slice end to end: sandbox over HTTP → real Dagster runs → a real DuckDB file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import pytest

from crm_assets.sandbox import SandboxProcess
from crm_assets_tests.conftest import (
    SANDBOX_LIFETIME_SECONDS,
    harvest_assets_from,
    harvest_resources,
    materialize_harvest,
    today,
)
from crm_assets_tests.harvest_truth import ALL_TABLES, ROOTS, assert_table_matches, expected_rows, table_rows

CDC_ROOTS = [t for t in ROOTS if t != "roles"]  # roles are re-read whole (no updated_since)


def hashable(value):
    return tuple(map(hashable, value)) if isinstance(value, list | tuple) else value


def snapshot(path: str) -> dict[str, set[tuple]]:
    """Every row of every Harvest table, `_synced_at` included."""
    with duckdb.connect(path, read_only=True) as conn:
        return {
            t: {hashable(row) for row in conn.execute(f"SELECT * FROM harvest.{t}").fetchall()}
            for (t,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'harvest'"
            ).fetchall()
        }


@pytest.fixture(scope="module")
def full_load(sandbox: SandboxProcess, tmp_path_factory) -> tuple[str, dg.ExecuteInProcessResult]:
    path = str(tmp_path_factory.mktemp("full") / "crm.duckdb")
    # Small pages joined into writes of a few pages each: every table also goes through
    # the path that merges page batches (and their children's scopes) into one transaction.
    resources = harvest_resources(sandbox, path, batch_records=1200, per_page=500)
    start = sandbox.env["HARVEST_START_DATE"]
    result = materialize_harvest(resources, start, today(), assets=harvest_assets_from(start))
    return path, result


@pytest.mark.parametrize("table", ALL_TABLES)
def test_full_backfill_equals_the_api_row_by_row(sandbox, full_load, table):
    path, result = full_load
    assert result.success
    with duckdb.connect(path, read_only=True) as conn:
        assert_table_matches(conn, table, expected_rows(sandbox, table))


def test_full_backfill_is_one_run_with_metadata_and_passing_checks(sandbox, full_load):
    _, result = full_load
    materializations = {e.asset_key.path[-1]: e for e in result.get_asset_materialization_events()}
    assert set(ALL_TABLES) <= set(materializations)
    for event in result.get_asset_materialization_events():
        meta = event.step_materialization_data.materialization.metadata
        for key in ("run_rows_written", "run_rows_inserted", "run_rows_updated", "run_pages", "run_seconds"):
            assert key in meta
        # every day of the range gets this event: a row count of the whole run would be false here
        assert "dagster/row_count" not in meta
    time_entries = [
        e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[-1] == "time_entries"
    ][0]
    assert time_entries["run_rows_inserted"].value == len(expected_rows(sandbox, "time_entries")) > 0
    assert time_entries["run_api_requests"].value == time_entries["run_pages"].value
    failed = [(e.asset_key.to_user_string(), e.check_name) for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed == []
    assert len(result.get_asset_check_evaluations()) >= 24


def test_a_load_allocates_arrow_buffers_with_malloc(full_load):
    """The run was in this process: its load switched Arrow to the C library's allocator,
    which hands page-sized buffers back to the system (pyarrow's default pool kept ~50 MB)."""
    import pyarrow as pa

    assert full_load[1].success
    assert pa.default_memory_pool().backend_name == "system"


def _busiest_day(records: list[dict]) -> str:
    days: dict[str, int] = {}
    for r in records:
        days[r["updated_at"][:10]] = days.get(r["updated_at"][:10], 0) + 1
    return max(sorted(days), key=days.get)


def test_a_partition_holds_exactly_the_records_updated_that_day(sandbox, tmp_path):
    day = _busiest_day(sandbox.harvest_records("time_entries"))
    path = str(tmp_path / "crm.duckdb")
    result = materialize_harvest(harvest_resources(sandbox, path), day)
    row_counts = {
        e.asset_key.path[-1]: e.step_materialization_data.materialization.metadata["dagster/row_count"].value
        for e in result.get_asset_materialization_events()
    }
    with duckdb.connect(path, read_only=True) as conn:
        for table in CDC_ROOTS:
            on_day = [r for r in expected_rows(sandbox, table) if r["updated_at"][:10] == day]
            assert_table_matches(conn, table, on_day)
            assert row_counts[table] == len(on_day), table  # the partition's own rows
        line_items = [r for r in expected_rows(sandbox, "invoice_line_items")
                      if r["invoice_id"] in {i["id"] for i in expected_rows(sandbox, "invoices") if i["updated_at"][:10] == day}]
        assert row_counts["invoice_line_items"] == len(line_items)
        assert table_rows(conn, "time_entries")[1], "the busiest day must not be empty"
        # roles are a full-table stream: every partition writes the whole snapshot
        assert_table_matches(conn, "roles", expected_rows(sandbox, "roles"))


def test_a_range_of_days_is_one_run_and_one_pass(sandbox, tmp_path):
    records = sandbox.harvest_records("time_entries")
    last = _busiest_day(records)
    first = (datetime.fromisoformat(last) - timedelta(days=6)).date().isoformat()
    path = str(tmp_path / "crm.duckdb")
    sandbox.reset_harvest_stats()
    result = materialize_harvest(harvest_resources(sandbox, path), first, last, selection=["time_entries"])
    assert result.success
    # one page for the whole range, one one-record page for the row-count check's total
    assert sandbox.harvest_stats()["by_route"] == {"/time_entries": 2}
    partitions = {e.partition for e in result.get_asset_materialization_events()}
    assert len(partitions) == 7
    with duckdb.connect(path, read_only=True) as conn:
        in_range = [r for r in records if first <= r["updated_at"][:10] <= last]
        assert_table_matches(conn, "time_entries", in_range)


def test_running_a_partition_twice_leaves_identical_tables(sandbox, full_load, tmp_path):
    day = _busiest_day(sandbox.harvest_records("invoices"))
    path = str(tmp_path / "crm.duckdb")
    resources = harvest_resources(sandbox, path)
    materialize_harvest(resources, day)
    before = snapshot(path)
    result = materialize_harvest(resources, day)
    assert snapshot(path) == before
    metadata = {
        e.asset_key.path[-1]: e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert all(m["run_rows_written"].value == 0 for m in metadata.values())


def test_a_child_table_alone_reads_its_parent_but_writes_only_itself(sandbox, tmp_path):
    path = str(tmp_path / "crm.duckdb")
    result = materialize_harvest(
        harvest_resources(sandbox, path), sandbox.env["HARVEST_START_DATE"], today(),
        selection=["invoice_line_items"],
    )
    assert {e.asset_key.path[-1] for e in result.get_asset_materialization_events()} == {"invoice_line_items"}
    with duckdb.connect(path, read_only=True) as conn:
        assert_table_matches(conn, "invoice_line_items", expected_rows(sandbox, "invoice_line_items"))
        tables = {t for (t,) in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'harvest'").fetchall()}
    assert tables == {"invoice_line_items"}


class TestChangeDataCapture:
    """Changes made in the sandbox today reach exactly the rows they touch."""

    @pytest.fixture(scope="class")
    @classmethod
    def changed(cls, tmp_path_factory):
        with SandboxProcess(seed=11, scale=1.0, lifetime=SANDBOX_LIFETIME_SECONDS) as sb:
            path = str(tmp_path_factory.mktemp("cdc") / "crm.duckdb")
            resources = harvest_resources(sb, path)
            materialize_harvest(resources, sb.env["HARVEST_START_DATE"], today())
            full_requests = sb.harvest_stats()["requests"]
            before = snapshot(path)
            entries = sb.harvest_modify("time_entries", count=100)
            invoices = sb.harvest_modify("invoices", count=5)
            sb.reset_harvest_stats()
            result = materialize_harvest(resources, today())
            yield {
                "sandbox": sb, "path": path, "before": before, "after": snapshot(path),
                "entries": set(entries), "invoices": set(invoices), "result": result,
                "requests": sb.harvest_stats(), "full_requests": full_requests,
            }

    @staticmethod
    def _changed_rows(c, table: str, key_index: int = 0) -> set:
        return {row[key_index] for row in c["after"][table] ^ c["before"][table]}

    def test_only_the_modified_rows_change(self, changed):
        c = changed
        assert self._changed_rows(c, "time_entries") == c["entries"]
        assert self._changed_rows(c, "invoices") == c["invoices"]
        untouched = set(c["before"]) - {"time_entries", "invoices", "invoice_line_items", "time_entry_external_reference"}
        for table in untouched:
            assert c["after"][table] == c["before"][table], f"harvest.{table} changed"

    def test_modified_invoices_have_their_line_items_replaced(self, changed):
        c = changed
        with duckdb.connect(c["path"], read_only=True) as conn:
            invoice_col = [d[0] for d in conn.execute("SELECT * FROM harvest.invoice_line_items LIMIT 0").description].index("invoice_id")
        touched = {row[invoice_col] for row in c["after"]["invoice_line_items"] ^ c["before"]["invoice_line_items"]}
        assert touched and touched <= c["invoices"]
        with duckdb.connect(c["path"], read_only=True) as conn:
            assert_table_matches(conn, "invoice_line_items", expected_rows(c["sandbox"], "invoice_line_items"))
            for table in ("time_entries", "invoices", "time_entry_external_reference"):
                assert_table_matches(conn, table, expected_rows(c["sandbox"], table))

    def test_requests_grow_with_the_changes_not_the_table(self, changed):
        by_route = changed["requests"]["by_route"]
        # one listing of the day's changes, and one one-record page for the row-count check's total
        assert by_route["/time_entries"] == 2
        assert by_route["/invoices"] == 2
        assert by_route["/invoices/{id}/messages"] == 5
        assert by_route["/invoices/{id}/payments"] == 5
        # project_users' listing and count, and the users family's look at the day's assignment
        # changes (none here, so no user's assignments are read)
        assert by_route["/user_assignments"] == 3
        assert "/users/{id}/project_assignments" not in by_route
        assert changed["requests"]["requests"] <= 45 < changed["full_requests"]

    def test_the_cursor_is_the_newest_committed_change(self, changed):
        with duckdb.connect(changed["path"], read_only=True) as conn:
            cursor = conn.execute(
                "SELECT cursor_value FROM crm_assets_state.stream_state WHERE stream = 'time_entries'"
            ).fetchone()[0]
            newest = conn.execute("SELECT max(updated_at) FROM harvest.time_entries").fetchone()[0]
        assert cursor == newest
        assert cursor.astimezone(UTC).date() == datetime.now(UTC).date()


def test_a_window_that_fails_midway_keeps_its_committed_rows_but_not_the_cursor(sandbox, tmp_path):
    """Pages are not sorted by updated_at: a cursor moved per page would pass unread records."""
    path = str(tmp_path / "crm.duckdb")
    resources = harvest_resources(sandbox, path, batch_records=1000, per_page=1000, max_retries=0)
    sandbox.call("POST", "/_sandbox/faults", {"api": "harvest", "spec": "rate=3/600"})  # then 429s
    try:
        result = materialize_harvest(
            resources, sandbox.env["HARVEST_START_DATE"], today(), selection=["time_entries"], raise_on_error=False
        )
    finally:
        sandbox.clear_faults()
    assert not result.success
    total = len(sandbox.harvest_records("time_entries"))
    with duckdb.connect(path, read_only=True) as conn:
        committed = conn.execute("SELECT count(*) FROM harvest.time_entries").fetchone()[0]
        cursors = conn.execute(
            "SELECT cursor_value FROM crm_assets_state.stream_state WHERE stream = 'time_entries'"
        ).fetchall()
    assert 0 < committed < total
    assert cursors in ([], [(None,)])
