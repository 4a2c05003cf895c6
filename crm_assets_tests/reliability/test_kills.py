"""SIGKILL in the middle of a backfill or a push, again and again, then a run to the end: the
warehouse and the org end as the fault-free run left them, and no cursor claims data that a
killed run did not commit.

The run lives in a forked child (the test process has Dagster and the project imported
already, so a child starts in milliseconds instead of seconds); the kill points are drawn
from a seeded RNG within the fault-free run's duration.
"""

from __future__ import annotations

import random
import shutil
import time
from datetime import datetime
from typing import Any

import duckdb

from crm_assets.sandbox import SandboxProcess
from crm_assets.sources.harvest import harvest_catalog
from crm_assets.sources.zoho import zoho_catalog
from crm_assets_tests.reliability.conftest import (
    backfill,
    duplicate_keys,
    fresh_org,
    kill_at,
    org_digest,
    org_duplicates,
    push,
    warehouse_digest,
)

KILLS = 10
CATALOGS = {"harvest": harvest_catalog(), "zoho": zoho_catalog()}


def truth(sb: SandboxProcess, source: str, stream: str) -> list[dict[str, Any]]:
    """A root stream's records exactly as the sandbox holds them."""
    if source == "harvest":
        return sb.harvest_records(stream)
    return sb.zoho_records(stream, user_type="AllUsers" if stream == "users" else None)


def stamp(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def state_ahead_of_data(sb: SandboxProcess, path: str) -> list[str]:
    """Cursors beyond the newest replication key their table holds, and recorded windows
    (the table reflects the API for these keys) missing a record the API has in them."""
    problems: list[str] = []
    with duckdb.connect(path, read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        tables = {f"{s}.{t}" for s, t in conn.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
        if "crm_assets_state.stream_state" not in tables:
            return problems
        cursors = conn.execute(
            "SELECT source, stream, cursor_value FROM crm_assets_state.stream_state WHERE cursor_value IS NOT NULL"
        ).fetchall()
        for source, name, cursor in cursors:
            s = CATALOGS[source].stream(name)
            newest = conn.execute(f'SELECT max("{s.replication_key}") FROM {s.table}').fetchone()[0] if s.table in tables else None
            if newest is None or cursor > newest:
                problems.append(f"{s.table}: cursor {cursor} ahead of its newest row {newest}")
        windows = conn.execute("SELECT source, stream, window_start, window_end FROM crm_assets_state.stream_windows").fetchall()
        for source, name, start, end in windows:
            s = CATALOGS[source].stream(name)
            if not (s.is_root and s.replication_key):
                continue
            (key,) = s.primary_key
            held = {str(k) for (k,) in conn.execute(f'SELECT "{key}" FROM {s.table}').fetchall()} if s.table in tables else set()
            for record in truth(sb, source, name):
                changed = stamp(record.get(s.replication_key))
                if changed is not None and (start is None or changed >= start) and changed < end and str(record[key]) not in held:
                    problems.append(f"{s.table}: window [{start}, {end}) recorded without record {record[key]}")
    return problems


def test_a_backfill_killed_ten_times_then_run_to_the_end_equals_the_fault_free_one(sandbox, baseline, tmp_path):
    fresh_org(sandbox)
    path = str(tmp_path / "warehouse.duckdb")
    rng = random.Random(1717)
    killed, span = 0, baseline.backfill_seconds
    for _ in range(KILLS):
        began = time.monotonic()
        outcome = kill_at(lambda: backfill(sandbox, path), rng.uniform(0.05, span))
        killed += outcome is None
        if outcome == 0:  # a forked run is quicker than the baseline's: kill within what it took
            span = min(span, 0.8 * (time.monotonic() - began))
        assert outcome in (None, 0)
        assert state_ahead_of_data(sandbox, path) == []
        assert duplicate_keys(path) == {}
    assert killed >= KILLS // 2, "most runs died before their end"
    backfill(sandbox, path)
    assert warehouse_digest(path) == baseline.warehouse
    assert state_ahead_of_data(sandbox, path) == []
    assert duplicate_keys(path) == {}


def test_a_push_killed_mid_way_then_run_to_the_end_leaves_the_org_equal(sandbox, baseline, tmp_path):
    path = str(tmp_path / "warehouse.duckdb")

    def nothing_pushed_yet() -> None:
        """An empty org, and the baseline's tables as if nothing had been pushed."""
        fresh_org(sandbox)
        shutil.copyfile(baseline.path, path)
        with duckdb.connect(path) as conn:
            conn.execute("DELETE FROM crm_assets_state.sync_rows")
            conn.execute("DELETE FROM reverse_etl.rejections")

    nothing_pushed_yet()
    rng = random.Random(2323)
    killed, span = 0, 0.6 * baseline.push_seconds  # the first part of a push, whatever the load
    for _ in range(4):
        began = time.monotonic()
        outcome = kill_at(lambda: push(sandbox, path), rng.uniform(0.05, span))
        killed += outcome is None
        if outcome == 0:
            span = min(span, 0.8 * (time.monotonic() - began))
        assert outcome in (None, 0)
        assert org_duplicates(sandbox) == {}
        if outcome == 0:  # it finished before the kill: start over, so the next one has work to cut
            nothing_pushed_yet()
    assert killed >= 2, "most pushes died before their end"
    push(sandbox, path)
    assert org_digest(sandbox) == baseline.org
    assert org_duplicates(sandbox) == {}
