"""Syncs into the sandbox's Zoho CRM: the records API over real HTTP, a real DuckDB file, real runs.

Expected module contents come from the test's own reading of its query and the sandbox's raw
records; the request bodies are the ones the sandbox logged.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from crm_assets.destinations.specs import load_syncs
from crm_assets_tests.conftest import harvest_assets_from, harvest_resources, materialize_harvest, today
from crm_assets_tests.destinations.conftest import query_rows, run_sql
from crm_assets_tests.zoho_modules import (
    as_zoho_value,
    module_records,
    run_zoho,
    stored_value,
    writes,
    zoho_client,
    zoho_counts,
    zoho_sync,
)

CLIENT_QUERY = """
    select id::varchar as Harvest_Client_Id, name as Account_Name, currency as Harvest_Currency,
           active as Harvest_Active, since as Client_Since, updated as Harvest_Updated_At,
           employees as Employees, revenue as Annual_Revenue, tags as Tag, owner as Owner
    from src.clients
"""


def active_user_ids(sb) -> list[str]:
    return [u["id"] for u in sb.zoho_records("users") if u["status"] == "active"][:3]


def make_clients(path: str, sb, count: int) -> None:
    owners = ", ".join(f"'{i}'" for i in active_user_ids(sb))
    run_sql(
        path,
        "create schema src",
        f"""create table src.clients as
            select i as id, 'Client ' || i as name, ['USD', 'EUR', 'GBP'][1 + i % 3] as currency,
                   i % 4 <> 0 as active, date '2023-01-01' + i::int as since,
                   timestamptz '2024-05-01 09:30:00+02' + i * interval 37 minute as updated,
                   case when i % 5 = 0 then null else i * 7 end as employees,
                   (i * 1234.5)::decimal(16, 2) as revenue,
                   case when i % 2 = 0 then ['Partner', 'Key'] else ['Prospect'] end as tags,
                   [{owners}][1 + i % 3] as owner
            from range(1, {count + 1}) t(i)""",
    )


def client_sync(**fields):
    base = {"name": "clients", "query": CLIENT_QUERY, "mode": "update", "upsert": True, "key": "Harvest_Client_Id"}
    return zoho_sync(**(base | fields))


def assert_module_equals_query(sb, path: str, sql: str, key: str = "Harvest_Client_Id", skip=()) -> None:
    """Every row of the query is a record of Accounts with exactly the row's values, field by field."""
    expected = {row[key]: row for row in query_rows(path, sql) if row[key] not in skip}
    records = {r[key]: r for r in module_records(sb)}
    assert set(records) >= set(expected)
    for key_value, row in expected.items():
        for column, value in row.items():
            assert stored_value(records[key_value], column) == as_zoho_value(value), (key_value, column)


def test_250_records_go_in_3_calls_and_the_module_equals_the_query(zsb, tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    make_clients(path, zsb, 250)
    spec = client_sync(batch_size=100)
    result = run_zoho([spec], path, zoho_client(zsb))
    counts = zoho_counts(result, spec)
    assert (counts["selected"], counts["sent"], counts["inserted"], counts["rejected"]) == (250, 250, 250, 0)
    assert counts["batches"] == 3 and result.get_asset_check_evaluations()[0].passed
    calls = writes(zsb)
    assert [(c["method"], c["path"].rsplit("/", 2)[-2:]) for c in calls] == [("POST", ["Accounts", "upsert"])] * 3
    assert sorted(len(c["body"]["data"]) for c in calls) == [50, 100, 100]
    assert all(c["body"]["duplicate_check_fields"] == ["Harvest_Client_Id"] for c in calls)
    assert len(module_records(zsb)) == 250
    assert_module_equals_query(zsb, path, CLIENT_QUERY)
    # Nothing changed: no call at all.
    zsb.reset_zoho_stats()
    again = zoho_counts(run_zoho([spec], path, zoho_client(zsb)), spec)
    assert (again["sent"], again["unchanged"], again["api_calls"]) == (0, 250, 0) and zsb.zoho_requests() == []


def test_four_invalid_rows_of_100_changed_are_rejected_then_cleared_once_fixed(zsb, tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    make_clients(path, zsb, 100)
    spec = client_sync()
    (tmp_path / "dagster_home").mkdir()
    instance = dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "dagster_home"))
    first = zoho_counts(run_zoho([spec], path, zoho_client(zsb), instance=instance), spec)
    assert (first["inserted"], first["rejected"]) == (100, 0)
    inactive = next(u["id"] for u in zsb.zoho_records("users") if u["status"] == "inactive")
    run_sql(
        path,
        "update src.clients set name = name || ' v2'",
        "update src.clients set name = repeat('x', 201) where id = 10",
        "update src.clients set employees = 1000000000 where id = 20",
        "update src.clients set currency = 'EURO' where id = 30",
        f"update src.clients set owner = '{inactive}' where id = 40",
    )
    result = run_zoho([spec], path, zoho_client(zsb), instance=instance)
    counts = zoho_counts(result, spec)
    assert (counts["sent"], counts["updated"], counts["rejected"]) == (100, 96, 4)
    assert not result.get_asset_check_evaluations()[0].passed
    rejected = {r["key"]: r for r in query_rows(path, "select * from reverse_etl.rejections")}
    assert set(rejected) == {"10", "20", "30", "40"}
    assert {r["error_code"] for r in rejected.values()} == {"INVALID_DATA"}
    for key, field in (("10", "Account_Name"), ("20", "Employees"), ("30", "Harvest_Currency"), ("40", "Owner")):
        assert rejected[key]["message"].startswith(f"{field}: "), rejected[key]
    assert_module_equals_query(zsb, path, CLIENT_QUERY, skip={"10", "20", "30", "40"})
    old = {r["Harvest_Client_Id"]: r["Account_Name"] for r in module_records(zsb)}
    assert [old[k] for k in ("10", "20", "30", "40")] == ["Client 10", "Client 20", "Client 30", "Client 40"]

    run_sql(
        path,
        "update src.clients set name = 'Client 10 v2' where id = 10",
        "update src.clients set employees = 20 where id = 20",
        "update src.clients set currency = 'EUR' where id = 30",
        f"update src.clients set owner = '{active_user_ids(zsb)[0]}' where id = 40",
    )
    fixed = run_zoho([spec], path, zoho_client(zsb), instance=instance)
    counts = zoho_counts(fixed, spec)
    assert (counts["sent"], counts["updated"], counts["rejected"]) == (4, 4, 0)
    assert fixed.get_asset_check_evaluations()[0].passed
    assert query_rows(path, "select * from reverse_etl.rejections") == []
    assert_module_equals_query(zsb, path, CLIENT_QUERY)

    # Nothing the runs recorded holds a token or a secret.
    issued = zsb.zoho_issued_tokens()
    secrets = [*issued["access_tokens"], *issued["refresh_tokens"], zsb.env["ZOHO_CLIENT_SECRET"]]
    assert issued["access_tokens"]
    for file in Path(tmp_path / "dagster_home").rglob("*"):
        if file.is_file():
            content = file.read_bytes()
            assert not [s for s in secrets if s.encode() in content], file


def test_trigger_workflow_and_include_nulls_show_in_the_request_bodies(zsb, tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    make_clients(path, zsb, 3)
    run_sql(path, "update src.clients set employees = 5")
    quiet = client_sync(name="quiet")  # the defaults: trigger_workflow false, include_nulls false
    run_zoho([quiet], path, zoho_client(zsb))
    (first,) = writes(zsb)
    assert first["body"]["trigger"] == [] and zsb.call("GET", "/_sandbox/zoho/modules/automations")["automations"] == []

    run_sql(path, "update src.clients set employees = null, currency = null")
    zsb.reset_zoho_stats()
    run_zoho([quiet], path, zoho_client(zsb))
    (kept,) = writes(zsb)
    assert all("Employees" not in r and "Harvest_Currency" not in r for r in kept["body"]["data"])
    assert {(r["Employees"], r["Harvest_Currency"] is not None) for r in module_records(zsb)} == {(5, True)}

    loud = client_sync(name="loud", trigger_workflow=True, include_nulls=True)
    zsb.reset_zoho_stats()
    run_zoho([loud], path, zoho_client(zsb))
    (cleared,) = writes(zsb)
    assert cleared["body"]["trigger"] == ["workflow", "approval", "blueprint"]
    assert all(r["Employees"] is None and r["Harvest_Currency"] is None for r in cleared["body"]["data"])
    assert {(r["Employees"], r["Harvest_Currency"]) for r in module_records(zsb)} == {(None, None)}
    ran = zsb.call("GET", "/_sandbox/zoho/modules/automations")["automations"]
    assert len(ran) == 3 and all("workflow" in a["ran"] for a in ran)


def test_append_inserts_and_update_matches_records_by_their_zoho_id(zsb, tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    run_sql(
        path,
        "create schema src",
        "create table src.leads as select i as id, 'Lead ' || i as name from range(1, 6) t(i)",
    )
    append = zoho_sync(
        name="new_accounts",
        mode="append",
        query="select name as Account_Name, id::varchar as Harvest_Client_Id from src.leads",
    )
    counts = zoho_counts(run_zoho([append], path, zoho_client(zsb)), append)
    assert (counts["inserted"], counts["rejected"]) == (5, 0)
    assert [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in writes(zsb)] == [("POST", "Accounts")]
    ids = {r["Harvest_Client_Id"]: r["id"] for r in module_records(zsb)}
    values = ", ".join(f"('{zoho_id}', 'Renamed {key}')" for key, zoho_id in ids.items())
    run_sql(path, f"create table src.renames as select * from (values {values}) v(zoho_id, new_name)")
    zsb.reset_zoho_stats()
    update = zoho_sync(name="renames", mode="update", query="select zoho_id as id, new_name as Account_Name from src.renames")
    counts = zoho_counts(run_zoho([update], path, zoho_client(zsb)), update)
    assert (counts["updated"], counts["inserted"], counts["rejected"]) == (5, 0, 0)
    (call,) = writes(zsb)
    assert call["method"] == "PUT" and {r["id"] for r in call["body"]["data"]} == set(ids.values())
    assert {r["Harvest_Client_Id"]: r["Account_Name"] for r in module_records(zsb)} == {
        key: f"Renamed {key}" for key in ids
    }


def test_columns_that_do_not_fit_fail_before_anything_is_sent(zsb, tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    run_sql(path, "create schema src", "create table src.t as select 1 as id, 'x' as v")
    spec = zoho_sync(
        name="misfit",
        mode="update",
        upsert=True,
        key="Account_Number",
        query="""select v as Account_Number, v as Nope_Field, v as Account_Code, v as Employees,
                        id as Harvest_Active from src.t""",
    )
    result = run_zoho([spec], path, zoho_client(zsb), raise_on_error=False)
    message = result.failure_data_for_node("zoho_crm__misfit").error.message
    for expected in (
        "Account_Number: not a unique or system duplicate-check field",
        "Nope_Field: no such field on Accounts",
        "Account_Code: read-only on Accounts",
        "Employees: VARCHAR does not fit a integer field",
        "Harvest_Active: INTEGER does not fit a boolean field",
        "Account_Name: mandatory on Accounts but not in the query",
    ):
        assert expected in message, message
    assert writes(zsb) == []
    assert [r["path"] for r in zsb.zoho_requests("crm")] == ["/crm/v8/settings/fields"]
    nowhere = zoho_sync(name="nowhere", object="Nowhere", mode="append", query="select v as Name from src.t")
    result = run_zoho([nowhere], path, zoho_client(zsb), raise_on_error=False)
    message = result.failure_data_for_node("zoho_crm__nowhere").error.message
    assert "sync nowhere: Zoho has no module 'Nowhere'; nothing was sent" in message and writes(zsb) == []


def test_rate_limits_and_server_errors_are_retried_to_a_complete_push(zsb, tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    make_clients(path, zsb, 150)
    zsb.call("POST", "/_sandbox/zoho/modules/faults", {"status": 429, "count": 1, "retry_after": 0})
    zsb.call("POST", "/_sandbox/zoho/modules/faults", {"status": 500, "count": 1})
    spec = client_sync(concurrency="serial")
    counts = zoho_counts(run_zoho([spec], path, zoho_client(zsb)), spec)
    assert (counts["inserted"], counts["rejected"]) == (150, 0) and counts["retries"] >= 1
    statuses = [c["status"] for c in writes(zsb)]
    assert statuses[:2] == [429, 500] and statuses.count(201) + statuses.count(200) == 2
    assert_module_equals_query(zsb, path, CLIENT_QUERY)


def test_an_access_token_that_dies_between_calls_is_renewed_once_per_call(zsb, tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    make_clients(path, zsb, 120)
    zsb.zoho_token_settings(access_token_max_uses=1)  # every token answers one call, then INVALID_TOKEN
    try:
        spec = client_sync(concurrency="serial")
        counts = zoho_counts(run_zoho([spec], path, zoho_client(zsb)), spec)
    finally:
        zsb.zoho_token_settings(access_token_max_uses=0)
    assert (counts["inserted"], counts["rejected"]) == (120, 0)
    assert [c["status"] for c in writes(zsb)] == [401, 200, 401, 200]
    assert_module_equals_query(zsb, path, CLIENT_QUERY)


def test_the_shipped_example_upserts_harvest_clients_into_zoho_accounts(zsb, tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    start = zsb.env["HARVEST_START_DATE"]
    materialize_harvest(
        harvest_resources(zsb, path), start, today(), selection=["clients"], assets=harvest_assets_from(start)
    )
    (spec,) = [s for s in load_syncs() if s.destination == "zoho"]
    result = run_zoho([spec], path, zoho_client(zsb))
    rows = query_rows(path, spec.query)
    counts = zoho_counts(result, spec)
    assert rows and (counts["selected"], counts["inserted"], counts["rejected"]) == (len(rows), len(rows), 0)
    assert len(module_records(zsb)) == len(rows)
    assert_module_equals_query(zsb, path, spec.query)
