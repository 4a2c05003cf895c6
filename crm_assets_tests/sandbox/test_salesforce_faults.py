"""Faults the Salesforce sandbox injects on request, as simple-salesforce meets them: row locks,
request limits, server errors, batches that fail as a whole, sessions that expire."""

from __future__ import annotations

import subprocess
import sys

import pytest
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from crm_assets.sandbox import SandboxProcess
from crm_assets_tests.sandbox.salesforce_client import password_client, session_client


def codes(results):
    return [r["errors"][0]["statusCode"] if r["errors"] else None for r in results]


def test_queued_row_locks_fail_those_rows_only(sfsb):
    sfsb.salesforce_fault("lock", count=2)
    results = password_client(sfsb.env).bulk.Account.insert([{"Name": f"A{i}"} for i in range(5)])
    assert codes(results) == ["UNABLE_TO_LOCK_ROW", "UNABLE_TO_LOCK_ROW", None, None, None]
    assert results[0]["errors"][0]["message"].startswith("unable to obtain exclusive access to this record")
    assert [r["Name"] for r in sfsb.salesforce_records("Account")] == ["A2", "A3", "A4"]


def test_a_share_of_rows_locked_from_the_command_line():
    with SandboxProcess(seed=5, scale=0.05, lifetime=300, faults="salesforce:lock@0.25") as sb:
        results = password_client(sb.env).bulk.Contact.insert([{"LastName": f"L{i}"} for i in range(400)])
        locked = [i for i, code in enumerate(codes(results)) if code == "UNABLE_TO_LOCK_ROW"]
        assert 50 <= len(locked) <= 150 and set(codes(results)) == {None, "UNABLE_TO_LOCK_ROW"}
        stored = {r["LastName"] for r in sb.salesforce_records("Contact")}
        assert stored == {f"L{i}" for i in range(400) if i not in locked}


def test_request_limit_exceeded_then_served_again(sfsb):
    sf = session_client(sfsb)
    sfsb.salesforce_fault("status", status=403)
    with pytest.raises(SalesforceRefusedRequest) as raised:
        sf.query("SELECT Id FROM Account")
    assert raised.value.content == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert sf.query("SELECT Id FROM Account")["totalSize"] == 0


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_on_a_bulk_call(sfsb, status):
    sf = password_client(sfsb.env)
    sfsb.salesforce_fault("status", status=status)
    with pytest.raises(SalesforceGeneralError) as raised:
        sf.bulk.Account.insert([{"Name": "A"}])
    assert raised.value.status == status
    assert sfsb.salesforce_jobs() == [] and sfsb.salesforce_records("Account") == []
    assert [r["status"] for r in sfsb.salesforce_requests()][-1] == status


def test_a_batch_failing_as_a_whole_loses_the_calls_results_but_not_the_other_batches_rows(sfsb):
    sf = password_client(sfsb.env)
    sfsb.salesforce_fault("batch_failed", count=1)
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.bulk.Account.insert([{"Name": f"A{i}"} for i in range(4)], batch_size=2)
    assert raised.value.content["exceptionCode"] == "InvalidBatch"
    [job] = sfsb.salesforce_jobs()
    assert [b["state"] for b in job["batches"]] == ["Failed", "Completed"]
    assert job["batches"][0]["stateMessage"].startswith("TooManyLockFailure")
    assert job["state"] == "Open"  # simple-salesforce raised before closing it
    assert [r["Name"] for r in sfsb.salesforce_records("Account")] == ["A2", "A3"]


def test_an_expired_session_is_renewed_by_a_credentials_client(sfsb):
    sfsb.salesforce_fault("session_expiry", after=2)
    sf = password_client(sfsb.env)
    for _ in range(3):
        assert sf.query("SELECT Id FROM Account")["totalSize"] == 0
    statuses = [(r["api"], r["status"]) for r in sfsb.salesforce_requests()]
    assert statuses == [
        ("soap", 200),
        ("rest", 200),
        ("rest", 200),
        ("rest", 401),
        ("soap", 200),
        ("rest", 200),
    ]


def test_an_expired_session_fails_bulk_calls_with_invalid_session_id(sfsb):
    sf = password_client(sfsb.env)
    sfsb.salesforce_expire_sessions(after=1)
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.bulk.Account.insert([{"Name": "A"}])
    assert raised.value.status == 400
    assert raised.value.content == {
        "exceptionCode": "InvalidSessionId",
        "exceptionMessage": "Invalid session id",
    }


def test_slow_batches_are_polled_until_done(sfsb):
    sfsb.salesforce_settings(polls_before_done=1)
    results = password_client(sfsb.env).bulk.Account.insert(
        [{"Name": "A"}]
    )  # simple-salesforce sleeps 5 s once
    assert results[0]["success"]
    polls = [
        r
        for r in sfsb.salesforce_requests()
        if "/batch/" in r["path"] and r["method"] == "GET" and not r["path"].endswith("/result")
    ]
    assert len(polls) == 2


def test_faults_from_the_command_line_are_listed_and_bad_ones_refused():
    with SandboxProcess(
        seed=5,
        scale=0.05,
        lifetime=300,
        faults="salesforce:batch_failed@0.5,salesforce:session_expiry=30,salesforce:503@0.01",
    ) as sb:
        assert sb.call("GET", "/_sandbox/salesforce/faults") == {
            "probability": {"batch_failed": 0.5},
            "count": {},
            "session_expiry": 30,
        }
        assert sb.call("GET", "/_sandbox/faults")["random"] == {
            "salesforce": [{"status": 503, "probability": 0.01}]
        }
    done = subprocess.run(
        [sys.executable, "-m", "crm_assets.sandbox", "--faults", "salesforce:lock@2"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "salesforce:lock@2" in done.stderr
