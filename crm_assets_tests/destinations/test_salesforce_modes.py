"""Every mode on the wire, transient faults, and the three ways to log in, against the sandbox."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from crm_assets_tests.destinations.conftest import (
    as_org_value,
    check_passed,
    materialization,
    query_rows,
    run_sql,
    run_syncs,
    salesforce_resource,
    sync,
)

CONTACTS = """
    create schema src;
    create table src.people as
    select i as id, 'First' || i as first_name, 'Last' || i as last_name,
           case when i % 4 = 0 then null else 'p' || i || '@example.com' end as email
    from range(1, 41) t(i)
"""
CONTACT_QUERY = """
    select id::varchar as Harvest_Contact_Id__c, first_name as FirstName, last_name as LastName,
           email as Email from src.people
"""


def contact_upsert(**fields):
    """The `people` sync: CONTACT_QUERY upserted into Contact on its Harvest external id."""
    base = {"name": "people", "object": "Contact", "query": CONTACT_QUERY, "mode": "update",
            "upsert": True, "key": "Harvest_Contact_Id__c"}
    return sync(**(base | fields))


def org_rows(sfsb, columns, deleted="exclude"):
    return sorted(
        (tuple(r[c] for c in columns) for r in sfsb.salesforce_records("Contact", deleted)),
        key=lambda row: int(row[0]),
    )


def expected_rows(path, sql, columns):
    return sorted(
        (tuple(as_org_value(row[c]) for c in columns) for row in query_rows(path, sql)),
        key=lambda row: int(row[0]),
    )


COLUMNS = ("Harvest_Contact_Id__c", "FirstName", "LastName", "Email")


def jobs_by_operation(sfsb):
    return [(j["operation"], j["concurrencyModeSent"]) for j in sfsb.salesforce_jobs()]


@pytest.mark.parametrize("concurrency", ["serial", "parallel"])
def test_append_inserts_changed_rows_as_new_records(sfsb, warehouse_path, concurrency):
    run_sql(warehouse_path, CONTACTS)
    spec = sync(
        name="people",
        object="Contact",
        query=CONTACT_QUERY,
        mode="append",
        concurrency=concurrency,
        batch_size=15,
    )
    counts = materialization(run_syncs([spec], warehouse_path, salesforce_resource(sfsb.env)), spec)
    assert (counts["inserted"], counts["batches"]) == (40, 3)
    assert org_rows(sfsb, COLUMNS) == expected_rows(warehouse_path, CONTACT_QUERY, COLUMNS)
    assert jobs_by_operation(sfsb) == [("insert", 1 if concurrency == "serial" else 0)]


@pytest.mark.parametrize("concurrency", ["serial", "parallel"])
@pytest.mark.parametrize("hard_delete", [False, True])
def test_truncate_removes_every_record_then_inserts(sfsb, warehouse_path, hard_delete, concurrency):
    run_sql(warehouse_path, CONTACTS)
    sfsb.salesforce_load("Contact", [{"LastName": f"Old {i}"} for i in range(25)])
    spec = sync(
        name="people",
        object="Contact",
        query=CONTACT_QUERY,
        mode="truncate",
        hard_delete=hard_delete,
        concurrency=concurrency,
        batch_size=10,
    )
    for _ in range(2):  # truncate sends every row each time
        counts = materialization(run_syncs([spec], warehouse_path, salesforce_resource(sfsb.env)), spec)
        assert counts["inserted"] == 40
        assert org_rows(sfsb, COLUMNS) == expected_rows(warehouse_path, CONTACT_QUERY, COLUMNS)
    assert counts["deleted"] == 40
    recycled = sfsb.salesforce_records("Contact", "only")
    assert len(recycled) == (0 if hard_delete else 25 + 40)
    deletes = {job for job in jobs_by_operation(sfsb) if job[0] in ("delete", "hardDelete")}
    assert deletes == {("hardDelete" if hard_delete else "delete", 1 if concurrency == "serial" else 0)}


@pytest.mark.parametrize("concurrency", ["serial", "parallel"])
def test_update_by_id_changes_existing_records_only(sfsb, warehouse_path, concurrency):
    loaded = sfsb.salesforce_load(
        "Contact", [{"LastName": f"Before {i}", "Email": f"b{i}@example.com"} for i in range(5)]
    )
    ids = [r["id"] for r in loaded]
    values = ", ".join(f"('{record_id}', 'After {i}')" for i, record_id in enumerate(ids))
    run_sql(
        warehouse_path,
        "create schema src",
        f"create table src.renames as select * from (values {values}, ('003000000000000AAA', 'Ghost')) t(id, name)",
    )
    query = "select id as Id, name as LastName, null::varchar as Email from src.renames"
    spec = sync(name="renames", object="Contact", query=query, mode="update", concurrency=concurrency)
    result = run_syncs([spec], warehouse_path, salesforce_resource(sfsb.env))
    counts = materialization(result, spec)
    assert (counts["updated"], counts["succeeded"], counts["rejected"], counts["sent"]) == (5, 5, 1, 6)
    org = {r["Id"]: (r["LastName"], r["Email"]) for r in sfsb.salesforce_records("Contact")}
    assert org == {record_id: (f"After {i}", None) for i, record_id in enumerate(ids)}
    assert not check_passed(result)
    assert jobs_by_operation(sfsb) == [("update", 1 if concurrency == "serial" else 0)]


def test_many_batches_go_in_windows_and_every_row_has_its_result(sfsb, warehouse_path):
    run_sql(
        warehouse_path,
        "create schema src",
        "create table src.people as select i as id, 'Last' || i as last_name from range(1, 251) t(i)",
    )
    query = "select id::varchar as Harvest_Contact_Id__c, last_name as LastName from src.people"
    spec = contact_upsert(query=query, batch_size=10)
    counts = materialization(run_syncs([spec], warehouse_path, salesforce_resource(sfsb.env)), spec)
    assert (counts["inserted"], counts["batches"], len(sfsb.salesforce_jobs())) == (250, 25, 3)
    org = {r["Harvest_Contact_Id__c"]: r["LastName"] for r in sfsb.salesforce_records("Contact")}
    assert org == {str(i): f"Last{i}" for i in range(1, 251)}


@pytest.mark.parametrize("concurrency", ["serial", "parallel"])
def test_transient_faults_are_retried_and_the_org_matches_a_fault_free_run(sfsb, warehouse_path, concurrency):
    run_sql(warehouse_path, CONTACTS)
    spec = contact_upsert(batch_size=10, concurrency=concurrency, retry_limit=4)
    sfsb.salesforce_fault("lock", count=5)
    sfsb.salesforce_fault("batch_failed", count=1)
    sfsb.salesforce_fault("status", status=503, count=2)
    counts = materialization(run_syncs([spec], warehouse_path, salesforce_resource(sfsb.env)), spec)
    assert (counts["inserted"], counts["rejected"]) == (40, 0) and counts["retries"] >= 1
    assert org_rows(sfsb, COLUMNS) == expected_rows(warehouse_path, CONTACT_QUERY, COLUMNS)


def test_faults_that_never_clear_fail_the_run_after_the_retries(sfsb, warehouse_path):
    run_sql(warehouse_path, CONTACTS)
    spec = contact_upsert(batch_size=40, retry_limit=2)
    sfsb.salesforce_fault("lock", probability=1.0)
    result = run_syncs([spec], warehouse_path, salesforce_resource(sfsb.env), raise_on_error=False)
    assert not result.success
    message = result.failure_data_for_node("salesforce__people").error.message
    assert "UNABLE_TO_LOCK_ROW (40 rows)" in message and "after 2 retries" in message
    assert len(sfsb.salesforce_jobs()) == 3  # the first attempt and two retries
    assert len(query_rows(warehouse_path, "select * from reverse_etl.rejections")) == 40
    sfsb.salesforce_clear_faults()
    assert check_passed(run_syncs([spec], warehouse_path, salesforce_resource(sfsb.env)))


@pytest.mark.parametrize("method", ["password", "client_credentials", "session_id"])
def test_each_login_works_and_no_secret_reaches_dagster_home(
    sfsb, warehouse_path, tmp_path, monkeypatch, method
):
    run_sql(warehouse_path, CONTACTS)
    env = dict(sfsb.env)
    if method == "session_id":
        env |= {"SALESFORCE_SESSION_ID": sfsb.salesforce_session()["session_id"]}
    names = {
        "password": ["SALESFORCE_USERNAME", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN"],
        "client_credentials": ["SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET"],
        "session_id": ["SALESFORCE_SESSION_ID", "SALESFORCE_INSTANCE_URL"],
    }[method]
    for name in names:
        monkeypatch.setenv(name, env[name])
    # The machine's CA variables must not override the sandbox's CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    resource = salesforce_resource(
        env, method="none", **{n.removeprefix("SALESFORCE_").lower(): dg.EnvVar(n) for n in names}
    )
    spec = contact_upsert(batch_size=10)
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = run_syncs([spec], warehouse_path, resource, instance=instance)
    assert materialization(result, spec)["inserted"] == 40
    secrets = [
        env[n] for n in ("SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN", "SALESFORCE_CLIENT_SECRET")
    ]
    secrets += sfsb.salesforce_issued_sessions()  # by logins too
    assert secrets[3:], "the run used a session"
    assert any(home.rglob("*.db")) and any(home.rglob("compute_logs/**/*"))  # the run was recorded there
    assert not _files_containing(home, secrets)


def test_an_expired_session_is_renewed_once_and_the_push_goes_on(sfsb, warehouse_path):
    run_sql(warehouse_path, CONTACTS)
    spec = contact_upsert(batch_size=5)
    sfsb.salesforce_fault("session_expiry", after=6)
    counts = materialization(run_syncs([spec], warehouse_path, salesforce_resource(sfsb.env)), spec)
    assert (counts["inserted"], counts["rejected"]) == (40, 0)
    logins = [r for r in sfsb.salesforce_requests() if "/services/Soap/u/" in r["path"]]
    assert len(logins) >= 2


def test_a_session_id_that_expires_fails_naming_the_variable(sfsb, warehouse_path):
    run_sql(warehouse_path, CONTACTS)
    minted = sfsb.salesforce_session()
    resource = salesforce_resource(
        sfsb.env, method="none", session_id=minted["session_id"], instance_url=minted["instance_url"]
    )
    sfsb.salesforce_expire_sessions(after=2)
    spec = sync(name="people", object="Contact", query=CONTACT_QUERY, mode="append", batch_size=5)
    result = run_syncs([spec], warehouse_path, resource, raise_on_error=False)
    message = result.failure_data_for_node("salesforce__people").error.message
    assert "SALESFORCE_SESSION_ID" in message and minted["session_id"] not in message


def _files_containing(root: Path, needles: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n[:3]}..." for n in needles if n.encode() in data]
    return found


def test_without_credentials_the_run_fails_naming_the_variables(sfsb, warehouse_path):
    run_sql(warehouse_path, CONTACTS)
    spec = sync(name="people", object="Contact", query=CONTACT_QUERY, mode="append")
    result = run_syncs(
        [spec], warehouse_path, salesforce_resource(sfsb.env, method="none"), raise_on_error=False
    )
    message = result.failure_data_for_node("salesforce__people").error.message
    assert "SALESFORCE_USERNAME" in message and "SALESFORCE_SESSION_ID" in message
    assert sfsb.salesforce_requests() == []


def test_field_names_match_whatever_their_case(sfsb, warehouse_path):
    run_sql(warehouse_path, CONTACTS)
    query = "select id::varchar as harvest_contact_id__c, last_name as lastname from src.people"
    spec = sync(
        name="people", object="Contact", query=query, mode="update", upsert=True, key="harvest_contact_id__c"
    )
    assert (
        materialization(run_syncs([spec], warehouse_path, salesforce_resource(sfsb.env)), spec)["inserted"]
        == 40
    )
    org = {r["Harvest_Contact_Id__c"]: r["LastName"] for r in sfsb.salesforce_records("Contact")}
    assert org == {str(i): f"Last{i}" for i in range(1, 41)}
