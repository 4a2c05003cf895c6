"""An append (Bulk inserts: nothing in the org to match a row on) that ends before it learns
what became of its batches: the next run reads their results from the journal's handles
instead of sending the rows again, so no row is ever inserted twice.

Two ways to end early: SIGKILL at random points while batches are in flight (the sandbox keeps
each batch running for 20 polls), and results that stay unreadable (the sandbox answers
503 to every result request for a while). Expected contents are the test's own query; what
was sent comes from the sandbox's request log.
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from crm_assets.destinations.journal import JOURNAL_SUFFIX
from crm_assets.sandbox import SandboxProcess
from crm_assets_tests.destinations.conftest import batch_posts, run_sql, run_syncs, salesforce_resource, sync
from crm_assets_tests.reliability.conftest import kill_at

ROWS, BATCH = 150, 10  # Bulk jobs of 10 batches, then 5
PEOPLE = f"""
    create schema src;
    create table src.people as
    select i as id, 'First' || i as first_name, 'Last' || i as last_name from range(1, {ROWS + 1}) t(i)
"""
# Title, a plain text field: the org would take a second insert of a row as a second record
# (its unique external id would have turned it into a DUPLICATE_VALUE rejection instead).
QUERY = "select 'P' || id as Title, first_name as FirstName, last_name as LastName from src.people"
EXPECTED = Counter(f"P{i}" for i in range(1, ROWS + 1))
SPEC = sync(name="people_append", object="Contact", query=QUERY, mode="append", batch_size=BATCH)


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxProcess]:
    with SandboxProcess(seed=3, scale=0.05, lifetime=600) as sandbox:
        yield sandbox


def fresh(sb: SandboxProcess, path: str, polls_before_done: int) -> None:
    """An empty org and a warehouse that has pushed nothing (no journal either)."""
    sb.clear_faults()
    sb.salesforce_reset()
    sb.salesforce_settings(polls_before_done=polls_before_done)
    sb.salesforce_clear_requests()
    shutil.rmtree(path + JOURNAL_SUFFIX, ignore_errors=True)
    Path(path).unlink(missing_ok=True)
    run_sql(path, PEOPLE)


def in_org(sb: SandboxProcess) -> Counter:
    return Counter(r["Title"] for r in sb.salesforce_records("Contact", deleted="include"))


def recorded(path: str) -> int:
    with duckdb.connect(path, read_only=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM crm_assets_state.sync_rows WHERE sync = ?", [SPEC.name]
        ).fetchone()[0]


def test_an_append_killed_while_batches_run_never_inserts_a_row_twice(sb, tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    fresh(sb, path, polls_before_done=20)
    resource = salesforce_resource(sb.env)

    def push() -> None:
        run_syncs([SPEC], path, resource)

    rng = random.Random(4141)
    span, kills, left_unknown = 3.0, 0, 0
    for _ in range(6):
        began = time.monotonic()
        outcome = kill_at(push, rng.uniform(0.2, span))
        assert outcome in (None, 0)
        assert max(in_org(sb).values(), default=0) <= 1
        if outcome == 0:  # it finished first: start again with less time
            span = max(0.4, 0.8 * (time.monotonic() - began))
            fresh(sb, path, polls_before_done=20)
            continue
        kills += 1
        left_unknown += any(Path(path + JOURNAL_SUFFIX).rglob("*.accepted"))

    push()
    assert in_org(sb) == EXPECTED
    assert recorded(path) == ROWS
    assert kills >= 3 and left_unknown >= 1, (kills, left_unknown)  # the kills hit batches in flight
    assert not any(Path(path + JOURNAL_SUFFIX).rglob("*.accepted"))
    sb.salesforce_clear_requests()
    push()  # nothing left to send
    assert batch_posts(sb) == []


def test_results_that_stay_unreadable_are_read_by_the_next_run_not_sent_again(sb, tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    fresh(sb, path, polls_before_done=0)
    # Every result request of the first run fails: each read is retried (retry_limit 2), and a
    # batch gives up after three failed reads.
    sb.plan_fault("salesforce", "respond", count=1000, path="/result", status=503, json={"error": "busy"})
    first = run_syncs([SPEC], path, salesforce_resource(sb.env), raise_on_error=False)
    assert not first.success
    message = first.failure_data_for_node("salesforce__people_append").error.message
    assert "sync people_append:" in message and "503" in message
    # The first Bulk job's ten batches were all done, only their results unread; the run stopped
    # there, before the second job.
    first_job = in_org(sb)
    assert sum(first_job.values()) == 10 * BATCH and max(first_job.values()) == 1
    assert recorded(path) == 0

    sb.clear_faults()
    sb.salesforce_clear_requests()
    run_syncs([SPEC], path, salesforce_resource(sb.env))
    # Read back, not sent again: the rerun's batches hold exactly the rows the first never sent.
    assert sum(post["records"] for post in batch_posts(sb)) == ROWS - 10 * BATCH
    assert in_org(sb) == EXPECTED
    assert recorded(path) == ROWS
