"""Bad answers from each API: a record without its key, a string where a number belongs, an
unknown nested shape, an empty page that still points to a next one, an HTML error page, a
body cut in half. Each must end in an error naming the table (and, for a record, the record
and the field) or in the data stored faithfully; never in a row silently missing.

The sandbox plants the answers (``respond`` and ``cut`` faults on one path); the planted pages
are the API's own pages, fetched raw by the test and edited by it.
"""

from __future__ import annotations

import copy
import gc
import json
import re
import shutil
from typing import Any

import dagster as dg
import duckdb
import pytest
import requests

from crm_assets.sandbox import SandboxProcess
from crm_assets.sources.zoho import zoho_catalog
from crm_assets_tests.reliability.conftest import (
    FAST_RETRIES,
    backfill,
    fresh_org,
    org_digest,
    org_duplicates,
    push,
)

HARVEST_PATHS = {"clients": "/v2/clients", "time_entries": "/v2/time_entries"}
ZOHO_USERS_PATH = "/crm/v8/users"
MARKER = "planted-marker-7c1"


def harvest_page(sb: SandboxProcess, table: str) -> dict[str, Any]:
    resp = requests.get(f"{sb.harvest_url}/{table}", params={"per_page": 2000}, headers=sb.harvest_headers(), timeout=30)
    resp.raise_for_status()
    page = resp.json()
    assert page["links"]["next"] is None, "the whole table fits one page"
    return page


def zoho_page(sb: SandboxProcess) -> dict[str, Any]:
    """Every user, fetched raw page by page, as one page that says it is the last (the planted
    API may answer more than the 200 a real page holds)."""
    env = sb.env
    token = requests.post(f"{env['ZOHO_ACCOUNTS_URL']}/oauth/v2/token", timeout=30, data={
        "grant_type": "refresh_token", "client_id": env["ZOHO_CLIENT_ID"],
        "client_secret": env["ZOHO_CLIENT_SECRET"], "refresh_token": env["ZOHO_REFRESH_TOKEN"]}).json()["access_token"]
    users: list[dict[str, Any]] = []
    for number in range(1, 100):
        resp = requests.get(f"{sb.url}/zoho{ZOHO_USERS_PATH}", params={"type": "AllUsers", "per_page": 200, "page": number},
                            headers={"Authorization": f"Zoho-oauthtoken {token}"}, timeout=30)
        resp.raise_for_status()
        page = resp.json()
        users += page["users"]
        if not page["info"]["more_records"]:
            break
    page["users"] = users
    page["info"].update(count=len(users), page=1, per_page=len(users), more_records=False)
    return page


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """The messages of every failed step, with their causes."""
    texts = []
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            while error is not None:
                texts.append(error.message)
                error = error.cause
    return "\n".join(texts)


def stored_rows(path: str, table: str) -> list[dict[str, Any]]:
    gc.collect()  # a failed run's frames may hold its warehouse connection until collected
    with duckdb.connect(path, read_only=True) as conn:
        present = {f"{s}.{t}" for s, t in conn.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
        if table not in present:
            return []
        cursor = conn.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def run_one(sb: SandboxProcess, path: str, asset: str) -> dg.ExecuteInProcessResult:
    return backfill(sb, path, selection=[asset], raise_on_error=False, **FAST_RETRIES)


def assert_named_error_or_stored(result, path, table, records, key, field, record_id, faithful) -> None:
    """The run failed naming `table`, `field` and the record (`record_id`, or one of several ways
    to name it), or it stored every record, `faithful(rows)` saying the bad one is intact."""
    rows = stored_rows(path, table)
    if result.success:
        assert len(rows) == len(records), f"{table}: {len(records)} records answered, {len(rows)} stored"
        assert faithful(rows), f"{table}: the planted record was not stored faithfully"
        return
    message = failure_text(result)
    assert table in message or table.replace(".", "/") in message, message
    assert re.search(rf"\b{re.escape(field)}\b", message), message
    names = record_id if isinstance(record_id, tuple) else (record_id,)
    assert any(str(name) in message for name in names), message
    assert not rows, f"{table}: a failed run left a partial table"


@pytest.fixture
def planted(sandbox: SandboxProcess):
    fresh_org(sandbox)
    yield sandbox
    sandbox.clear_faults()


def test_harvest_record_without_its_key(planted, tmp_path):
    page = harvest_page(planted, "clients")
    bad = page["clients"][3]
    del bad["id"]
    planted.plan_fault("harvest", "respond", count=5, path=HARVEST_PATHS["clients"], json=page)
    path = str(tmp_path / "w.duckdb")
    result = run_one(planted, path, "harvest/clients")
    assert_named_error_or_stored(result, path, "harvest.clients", page["clients"], "id", "id", ("#3", bad["name"]),
                                 lambda rows: any(r["name"] == bad["name"] and r["id"] is None for r in rows))


def test_harvest_string_where_a_number_belongs(planted, tmp_path):
    page = harvest_page(planted, "time_entries")
    bad = page["time_entries"][0]
    bad["hours"] = f"two hours {MARKER}"
    planted.plan_fault("harvest", "respond", count=5, path=HARVEST_PATHS["time_entries"], json=page)
    path = str(tmp_path / "w.duckdb")
    result = run_one(planted, path, "harvest/time_entries")
    assert_named_error_or_stored(result, path, "harvest.time_entries", page["time_entries"], "id", "hours", bad["id"],
                                 lambda rows: any(r["id"] == bad["id"] and r["hours"] == bad["hours"] for r in rows))


def test_harvest_unknown_nested_shape(planted, tmp_path):
    page = harvest_page(planted, "clients")
    bad = page["clients"][0]
    bad["address"] = {"lines": [MARKER, "Suite 5"], "geo": {"lat": 1.5, "lon": [2.5]}}
    planted.plan_fault("harvest", "respond", count=5, path=HARVEST_PATHS["clients"], json=page)
    path = str(tmp_path / "w.duckdb")
    result = run_one(planted, path, "harvest/clients")
    assert_named_error_or_stored(result, path, "harvest.clients", page["clients"], "id", "address", bad["id"],
                                 lambda rows: any(r["id"] == bad["id"] and MARKER in json.dumps(r, default=str)
                                                  for r in rows))


def test_harvest_empty_page_that_points_to_a_next_one(planted, tmp_path):
    page = harvest_page(planted, "clients")
    empty = copy.deepcopy(page)
    empty["clients"] = []
    empty["total_pages"], empty["next_page"] = 2, 2
    empty["links"]["next"] = f"{planted.harvest_url}/clients?page=2&per_page=2000"
    planted.plan_fault("harvest", "respond", path=HARVEST_PATHS["clients"], json=empty)
    planted.plan_fault("harvest", "respond", path=HARVEST_PATHS["clients"], json=page)
    path = str(tmp_path / "w.duckdb")
    result = run_one(planted, path, "harvest/clients")
    if result.success:
        assert {r["id"] for r in stored_rows(path, "harvest.clients")} == {c["id"] for c in page["clients"]}
    else:
        assert "clients" in failure_text(result)


@pytest.mark.parametrize("kind", ["html", "cut"])
def test_harvest_html_error_page_or_body_cut_in_half(planted, tmp_path, kind):
    if kind == "html":
        body = "<html><head><title>Error</title></head><body><h1>Something went wrong</h1></body></html>"
        planted.plan_fault("harvest", "respond", count=20, path=HARVEST_PATHS["clients"], body=body)
    else:
        planted.plan_fault("harvest", "cut", count=20, path=HARVEST_PATHS["clients"])
    path = str(tmp_path / "w.duckdb")
    result = run_one(planted, path, "harvest/clients")
    assert not result.success
    message = failure_text(result)
    assert "harvest.clients" in message or "harvest/clients" in message, message
    assert stored_rows(path, "harvest.clients") == []


def zoho_number_column() -> str:
    users = zoho_catalog().stream("users")
    return next(c.name for c in users.columns if c.type.upper() in ("DOUBLE", "BIGINT") and "__" not in c.name)


def test_zoho_record_without_its_key(planted, tmp_path):
    page = zoho_page(planted)
    keyless = page["users"][1]
    del keyless["id"]
    planted.plan_fault("zoho", "respond", path=ZOHO_USERS_PATH, json=page)
    path = str(tmp_path / "w.duckdb")
    result = run_one(planted, path, "zoho/users")
    assert_named_error_or_stored(result, path, "zoho.users", page["users"], "id", "id", ("#1", keyless["full_name"]),
                                 lambda rows: any(r["id"] is None and r["full_name"] == keyless["full_name"] for r in rows))


def test_zoho_string_where_a_number_belongs(planted, tmp_path):
    page = zoho_page(planted)
    wrong = page["users"][2]
    number = zoho_number_column()
    wrong[number] = f"lots {MARKER}"
    planted.plan_fault("zoho", "respond", path=ZOHO_USERS_PATH, json=page)
    path = str(tmp_path / "w.duckdb")
    result = run_one(planted, path, "zoho/users")
    assert_named_error_or_stored(result, path, "zoho.users", page["users"], "id", number, wrong["id"],
                                 lambda rows: any(r["id"] == wrong["id"] and r[number] == wrong[number] for r in rows))


def test_zoho_empty_page_that_says_more_records(planted, tmp_path):
    page = zoho_page(planted)
    empty = copy.deepcopy(page)
    empty["users"] = []
    empty["info"]["more_records"] = True
    planted.plan_fault("zoho", "respond", path=ZOHO_USERS_PATH, json=empty)
    planted.plan_fault("zoho", "respond", path=ZOHO_USERS_PATH, json=page)
    path = str(tmp_path / "w.duckdb")
    result = run_one(planted, path, "zoho/users")
    if result.success:
        assert {r["id"] for r in stored_rows(path, "zoho.users")} == {u["id"] for u in page["users"]}
    else:
        assert "users" in failure_text(result)


@pytest.mark.parametrize("kind", ["html", "cut"])
def test_zoho_html_error_page_or_body_cut_in_half(planted, tmp_path, kind):
    if kind == "html":
        body = "<html><body><h2>Zoho CRM is under maintenance</h2></body></html>"
        planted.plan_fault("zoho", "respond", count=20, path=ZOHO_USERS_PATH, body=body)
    else:
        planted.plan_fault("zoho", "cut", count=20, path=ZOHO_USERS_PATH)
    path = str(tmp_path / "w.duckdb")
    result = run_one(planted, path, "zoho/users")
    assert not result.success
    message = failure_text(result)
    assert "zoho.users" in message or "zoho/users" in message, message
    assert stored_rows(path, "zoho.users") == []


@pytest.mark.parametrize("kind", ["html", "cut"])
def test_salesforce_html_page_or_cut_answer_to_a_batch_never_loses_or_doubles_a_record(planted, baseline, tmp_path, kind):
    path = str(tmp_path / "w.duckdb")
    shutil.copyfile(baseline.path, path)
    with duckdb.connect(path) as conn:  # the baseline's tables, as if nothing had been pushed yet
        conn.execute("DELETE FROM crm_assets_state.sync_rows")
        conn.execute("DELETE FROM reverse_etl.rejections")
    if kind == "html":
        page = "<html><body><h1>503 Service Unavailable</h1><p>Maintenance</p></body></html>"
        planted.plan_fault("salesforce", "respond", path="/batch", body=page)
    else:  # the org takes the batch, the answer is cut in half on the way back
        planted.plan_fault("salesforce", "cut", path="/batch")
    first = push(planted, path, fast=True, raise_on_error=False)
    if first.success:
        assert org_digest(planted) == baseline.org
    push(planted, path)
    assert org_digest(planted) == baseline.org
    assert org_duplicates(planted) == {}
