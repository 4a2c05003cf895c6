"""One call of a push refused outright: every call answered before it (in its window, or an
earlier Bulk job) is recorded, so a rerun sends only the rows not written and an insert never
lands twice.

The sandbox plants the refusal on one write call (a ``respond`` fault on the write path); the
calls before it pass through ``slow`` faults that wait 0 seconds, so that the refused call is
one in the middle of the window. Expected contents come from the test's own query and the
sandbox's raw records; what a rerun sent comes from the sandbox's request logs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from crm_assets.destinations.machinery import FAILURE_KIND
from crm_assets.sandbox import SandboxProcess
from crm_assets_tests.destinations.conftest import (
    batch_posts,
    query_rows,
    run_sql,
    run_syncs,
    salesforce_resource,
    sync,
)
from crm_assets_tests.zoho_modules import module_records, run_zoho, writes, zoho_client, zoho_sync

ROWS, BATCH = 150, 10  # Zoho: a first window of 10 parallel calls, then one of 5
PEOPLE = f"""
    create schema src;
    create table src.people as
    select i as id, 'First' || i as first_name, 'Last' || i as last_name from range(1, {ROWS + 1}) t(i)
"""
ZOHO_QUERY = "select 'Client ' || id as Account_Name, id::varchar as Harvest_Client_Id from src.people"
SALESFORCE_QUERY = """
    select id::varchar as Harvest_Contact_Id__c, first_name as FirstName, last_name as LastName
    from src.people where id <= {rows}
"""
NO_PERMISSION = {
    "code": "NO_PERMISSION",
    "details": {"permissions": ["Crm_Implied_Create_Accounts"]},
    "message": "permission denied",
    "status": "error",
}
EXCEEDED_QUOTA = {"exceptionCode": "ExceededQuota", "exceptionMessage": "ApiBatchItems Limit exceeded."}


@pytest.fixture
def sb(zoho_sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """The session's sandbox with an empty org and empty modules, empty logs, and ``slow``
    faults that wait 0 seconds (a planned one lets its request through unchanged)."""
    zoho_sandbox.clear_faults()
    zoho_sandbox.call("POST", "/_sandbox/zoho/modules/reset")
    zoho_sandbox.reset_zoho_stats()
    zoho_sandbox.salesforce_reset()
    zoho_sandbox.salesforce_settings(polls_before_done=0)
    for api in ("zoho", "salesforce"):
        zoho_sandbox.add_fault_rule(api, "slow=0")
    yield zoho_sandbox
    zoho_sandbox.clear_faults()


def refuse_one_call(sb: SandboxProcess, api: str, path: str, passed: int, status: int, answer: dict) -> None:
    """The next `passed` requests to `path` go through, the one after gets `answer`."""
    sb.plan_fault(api, "slow", count=passed, path=path)
    sb.plan_fault(api, "respond", path=path, status=status, json=answer)


def failure_of(result, node: str) -> tuple[str, dict]:
    failure = result.failure_data_for_node(node)
    return failure.error.message, {k: v.value for k, v in failure.user_failure_data.metadata.items()}


def test_zoho_append_with_one_refused_call_records_the_others_and_never_inserts_twice(sb, tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    run_sql(path, PEOPLE)
    expected = Counter(row["Harvest_Client_Id"] for row in query_rows(path, ZOHO_QUERY))
    spec = zoho_sync(name="new_accounts", mode="append", batch_size=BATCH, query=ZOHO_QUERY)
    assert spec.concurrency != "serial"
    refuse_one_call(sb, "zoho", "/crm/v8/Accounts", passed=5, status=403, answer=NO_PERMISSION)

    first = run_zoho([spec], path, zoho_client(sb), raise_on_error=False)
    assert not first.success
    message, metadata = failure_of(first, "zoho_crm__new_accounts")
    assert "sync new_accounts: POST /crm/v8/Accounts: HTTP 403: NO_PERMISSION: permission denied" in message
    assert metadata[FAILURE_KIND] == "configuration"
    written = Counter(r["Harvest_Client_Id"] for r in module_records(sb))
    # The five calls let through were under way before the refusal; the refused call's rows and
    # the second window's were not written.
    assert max(written.values()) == 1 and set(written) <= set(expected)
    assert 5 * BATCH <= len(written) <= 9 * BATCH and len(written) % BATCH == 0
    assert metadata["inserted"] == len(written)

    sb.clear_faults("zoho")
    sb.reset_zoho_stats()
    second = run_zoho([spec], path, zoho_client(sb))
    assert second.success
    resent = Counter(r["Harvest_Client_Id"] for call in writes(sb) for r in call["body"]["data"])
    assert resent == expected - written
    final = module_records(sb)
    assert Counter(r["Harvest_Client_Id"] for r in final) == expected
    assert all(r["Account_Name"] == f"Client {r['Harvest_Client_Id']}" for r in final)


# A Bulk job per window of 10 batches: a batch refused in the middle of the first job (rows
# 50: one job of 5 batches), or the second job refused after the first was done (rows 150).
REFUSALS = {
    "batch": {"rows": 50, "path": "/batch", "passed": 2, "written": 2 * BATCH, "refused_posts": 1},
    "job": {"rows": ROWS, "path": "/job", "passed": 1, "written": 10 * BATCH, "refused_posts": 0},
}


@pytest.mark.parametrize("refused", list(REFUSALS))
def test_salesforce_insert_with_one_refused_call_records_what_was_written_before_it(sb, tmp_path, refused):
    case = REFUSALS[refused]
    path = str(tmp_path / "warehouse.duckdb")
    run_sql(path, PEOPLE)
    query = SALESFORCE_QUERY.format(rows=case["rows"])
    rows = query_rows(path, query)
    expected = Counter(row["Harvest_Contact_Id__c"] for row in rows)
    spec = sync(name="people", object="Contact", query=query, mode="append", batch_size=BATCH)
    assert spec.concurrency != "serial"
    refuse_one_call(sb, "salesforce", case["path"], passed=case["passed"], status=400, answer=EXCEEDED_QUOTA)

    first = run_syncs([spec], path, salesforce_resource(sb.env), raise_on_error=False)
    assert not first.success
    message, metadata = failure_of(first, "salesforce__people")
    assert "sync people:" in message and "ExceededQuota" in message
    assert "ApiBatchItems Limit exceeded." in message
    # The batches added before the refusal were all taken; none was added after it (a refused
    # batch post is answered in the org's place, so its records are never read).
    posts = [(post["status"], post.get("records")) for post in batch_posts(sb)]
    assert posts == [(201, BATCH)] * (case["written"] // BATCH) + [(400, None)] * case["refused_posts"]
    written = Counter(r["Harvest_Contact_Id__c"] for r in sb.salesforce_records("Contact"))
    assert sum(written.values()) == case["written"] and max(written.values()) == 1
    assert set(written) <= set(expected)
    assert metadata["inserted"] == case["written"]

    sb.clear_faults("salesforce")
    sb.salesforce_clear_requests()
    run_syncs([spec], path, salesforce_resource(sb.env))
    # The log counts a batch's records: the rerun sent as many as were missing, and the org ends
    # with each exactly once, so it sent exactly the missing ones.
    assert sum(post["records"] for post in batch_posts(sb)) == (expected - written).total()
    final = sb.salesforce_records("Contact")
    assert Counter(r["Harvest_Contact_Id__c"] for r in final) == expected
    names = {row["Harvest_Contact_Id__c"]: (row["FirstName"], row["LastName"]) for row in rows}
    assert all((r["FirstName"], r["LastName"]) == names[r["Harvest_Contact_Id__c"]] for r in final)
