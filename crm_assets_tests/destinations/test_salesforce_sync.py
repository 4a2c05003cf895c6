"""Syncs into the sandbox's Salesforce: simple-salesforce over real HTTPS, real DuckDB, real runs.

Expected org contents are computed by the test from the query itself (its own DuckDB read and
its own conversion to the org's JSON shapes), never by the code under test.
"""

from __future__ import annotations

import pytest

from crm_assets_tests.destinations.conftest import (
    as_org_value,
    batch_posts,
    check_passed,
    materialization,
    query_rows,
    run_sql,
    run_syncs,
    salesforce_resource,
    sync,
)

PROJECTS = """
    create schema src;
    create table src.projects as
    select i as id,
           case when i % 20 = 0 then repeat('x', 81) else 'Project ' || i end as name,
           (i * 1.25)::decimal(16, 2) as hours,
           0.1 * i + 0.2 as rate,
           date '2024-01-01' + i::int as starts_on,
           case when i % 7 = 0 then null else date '2025-06-30' end as ends_on,
           timestamptz '2024-03-01 10:00:00+02' + i * interval 90 minute as last_entry_at,
           i % 3 = 0 as active
    from range(1, 201) t(i)
"""
PROJECT_QUERY = """
    select id::varchar as Harvest_Project_Id__c, name as Name, hours as Hours_Logged__c,
           rate as Hourly_Rate__c, starts_on as Starts_On__c, ends_on as Ends_On__c,
           last_entry_at as Last_Entry_At__c, active as Is_Active__c
    from src.projects
"""


def project_sync(**fields):
    base = {
        "name": "projects",
        "object": "Harvest_Project__c",
        "query": PROJECT_QUERY,
        "mode": "update",
        "upsert": True,
        "key": "Harvest_Project_Id__c",
        "batch_size": 50,
    }
    return sync(**(base | fields))


def assert_org_equals_query(sfsb, path, obj, key, sql, skip=()):
    """Every row of the query is a record of the org with exactly the row's values."""
    expected = {str(row[key]): row for row in query_rows(path, sql) if str(row[key]) not in skip}
    records = {r[key]: r for r in sfsb.salesforce_records(obj)}
    assert set(records) == set(expected)
    for ext_id, row in expected.items():
        for column, value in row.items():
            want = as_org_value(value)
            got = records[ext_id][column]
            assert got == pytest.approx(want) if isinstance(want, float) else got == want, (
                ext_id,
                column,
                got,
                want,
            )


def test_upsert_writes_the_org_equal_to_the_query_record_by_record(sfsb, warehouse_path):
    run_sql(warehouse_path, PROJECTS, "update src.projects set name = 'Project ' || id")
    spec = project_sync()
    result = run_syncs([spec], warehouse_path, salesforce_resource(sfsb.env))
    counts = materialization(result, spec)
    assert (counts["selected"], counts["sent"], counts["inserted"], counts["rejected"]) == (200, 200, 200, 0)
    assert counts["batches"] == 4 and check_passed(result)
    assert_org_equals_query(
        sfsb, warehouse_path, "Harvest_Project__c", "Harvest_Project_Id__c", PROJECT_QUERY
    )
    # A null really clears the field; a float sum arrives without binary noise.
    run_sql(warehouse_path, "update src.projects set starts_on = null, rate = 0.1 + 0.2 where id = 5")
    result = run_syncs([spec], warehouse_path, salesforce_resource(sfsb.env))
    assert (materialization(result, spec)["sent"], materialization(result, spec)["updated"]) == (1, 1)
    (five,) = [r for r in sfsb.salesforce_records("Harvest_Project__c") if r["Harvest_Project_Id__c"] == "5"]
    assert five["Starts_On__c"] is None and five["Hourly_Rate__c"] == 0.3
    assert_org_equals_query(
        sfsb, warehouse_path, "Harvest_Project__c", "Harvest_Project_Id__c", PROJECT_QUERY
    )


def test_a_second_run_sends_nothing_and_ten_changed_rows_send_ten(sfsb, warehouse_path):
    run_sql(
        warehouse_path,
        "create schema src",
        "create table src.clients as select i as id, 'Client ' || i as name from range(1, 50001) t(i)",
    )
    query = "select id::varchar as Harvest_Client_Id__c, name as Name from src.clients"
    spec = sync(
        name="clients",
        object="Account",
        query=query,
        mode="update",
        upsert=True,
        key="Harvest_Client_Id__c",
        batch_size=10_000,
    )
    resource = salesforce_resource(sfsb.env)
    first = materialization(run_syncs([spec], warehouse_path, resource), spec)
    assert (first["sent"], first["inserted"], first["batches"]) == (50_000, 50_000, 5)
    assert [p["records"] for p in batch_posts(sfsb)] == [10_000] * 5
    sfsb.salesforce_clear_requests()
    second = materialization(run_syncs([spec], warehouse_path, resource), spec)
    assert (second["sent"], second["unchanged"], second["api_calls"]) == (0, 50_000, 0)
    assert sfsb.salesforce_requests() == []
    run_sql(warehouse_path, "update src.clients set name = name || ' (renamed)' where id % 5000 = 0")
    third = materialization(run_syncs([spec], warehouse_path, resource), spec)
    assert (third["sent"], third["updated"], third["unchanged"]) == (10, 10, 49_990)
    assert [p["records"] for p in batch_posts(sfsb)] == [10]
    renamed = {
        r["Harvest_Client_Id__c"]
        for r in sfsb.salesforce_records("Account")
        if r["Name"].endswith("(renamed)")
    }
    assert renamed == {str(i) for i in range(5000, 50001, 5000)}


def test_invalid_rows_are_rejected_the_check_fails_and_clears_once_fixed(sfsb, warehouse_path):
    run_sql(warehouse_path, PROJECTS)
    spec = project_sync()
    invalid = {str(i) for i in range(20, 201, 20)}  # names of 81 characters: 5% of the rows
    result = run_syncs([spec], warehouse_path, salesforce_resource(sfsb.env))
    counts = materialization(result, spec)
    assert (counts["inserted"], counts["rejected"]) == (190, 10)
    assert not check_passed(result)
    rejected = query_rows(warehouse_path, "select * from reverse_etl.rejections")
    assert {r["key"] for r in rejected} == invalid
    assert {(r["sync"], r["error_code"], r["run_id"]) for r in rejected} == {
        ("projects", "STRING_TOO_LONG", result.run_id)
    }
    assert all('"Name":"' + "x" * 81 + '"' in r["record"] for r in rejected)
    assert_org_equals_query(
        sfsb, warehouse_path, "Harvest_Project__c", "Harvest_Project_Id__c", PROJECT_QUERY, skip=invalid
    )
    # Unchanged, still invalid: sent again, still rejected.
    again = run_syncs([spec], warehouse_path, salesforce_resource(sfsb.env))
    assert (materialization(again, spec)["sent"], materialization(again, spec)["rejected"]) == (10, 10)
    run_sql(warehouse_path, "update src.projects set name = 'Project ' || id where length(name) > 80")
    fixed = run_syncs([spec], warehouse_path, salesforce_resource(sfsb.env))
    assert (materialization(fixed, spec)["sent"], materialization(fixed, spec)["inserted"]) == (10, 10)
    assert check_passed(fixed)
    assert query_rows(warehouse_path, "select * from reverse_etl.rejections") == []
    assert_org_equals_query(
        sfsb, warehouse_path, "Harvest_Project__c", "Harvest_Project_Id__c", PROJECT_QUERY
    )


def test_a_bad_column_or_key_fails_before_anything_is_sent(sfsb, warehouse_path):
    run_sql(warehouse_path, PROJECTS, "update src.projects set name = 'Project ' || id")
    query = PROJECT_QUERY.replace("name as Name", "name as Nmae").replace(
        "active as Is_Active__c", "active as Is_Active__c, now() as CreatedDate"
    )
    bad_columns = project_sync(query=query)
    bad_key = project_sync(name="by_name", key="Name")
    for spec, words in (
        (bad_columns, ["Nmae: no such field", "CreatedDate: not createable or updateable"]),
        (bad_key, ["Name: not an external id field"]),
    ):
        result = run_syncs([spec], warehouse_path, salesforce_resource(sfsb.env), raise_on_error=False)
        assert not result.success
        message = result.failure_data_for_node(f"salesforce__{spec.name}").error.message
        assert all(w in message for w in words), message
    sent = [r for r in sfsb.salesforce_requests() if "/services/async/" in r["path"]]
    assert sent == [] and sfsb.salesforce_records("Harvest_Project__c") == []
