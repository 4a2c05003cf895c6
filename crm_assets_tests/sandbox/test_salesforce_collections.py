"""sObject collections (through ``sf.restful``) and Bulk API 2.0 ingest (``sf.bulk2``), the lower-priority
paths a sync may take, driven by simple-salesforce against the sandbox."""

from __future__ import annotations

import csv
import io

import pytest
from simple_salesforce.exceptions import SalesforceOperationError

from crm_assets_tests.sandbox.salesforce_client import password_client


def test_collections_create_update_upsert_delete_in_request_order(sfsb):
    sf = password_client(sfsb.env)
    created = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Account"}, "Name": "A", "Harvest_Client_Id__c": "1"},
                {"attributes": {"type": "Account"}, "Phone": "555"},
                {"attributes": {"type": "Contact"}, "LastName": "L"},
            ],
        },
    )
    assert [r["success"] for r in created] == [True, False, True]
    assert created[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING" and "created" not in created[0]
    updated = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Account"}, "Id": created[0]["id"], "Website": "https://a.example"}
            ]
        },
    )
    assert updated == [{"id": created[0]["id"], "success": True, "errors": []}]
    upserted = sf.restful(
        "composite/sobjects/Account/Harvest_Client_Id__c",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Account"}, "Harvest_Client_Id__c": "1", "Name": "A2"},
                {"attributes": {"type": "Account"}, "Harvest_Client_Id__c": "2", "Name": "B"},
            ]
        },
    )
    assert [(r["success"], r["created"]) for r in upserted] == [(True, False), (True, True)]
    accounts = {r["Harvest_Client_Id__c"]: r for r in sfsb.salesforce_records("Account")}
    assert (accounts["1"]["Name"], accounts["1"]["Website"], accounts["2"]["Name"]) == (
        "A2",
        "https://a.example",
        "B",
    )
    deleted = sf.restful(
        "composite/sobjects", method="DELETE", params={"ids": f"{created[2]['id']},{created[2]['id']}"}
    )
    assert [r["success"] for r in deleted] == [True, False]
    assert sfsb.salesforce_records("Contact") == []


def test_collections_all_or_none_rolls_back(sfsb):
    sf = password_client(sfsb.env)
    results = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Account"}, "Name": "kept?"},
                {"attributes": {"type": "Account"}},
            ],
        },
    )
    assert [r["errors"][0]["statusCode"] for r in results] == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "REQUIRED_FIELD_MISSING",
    ]
    assert sfsb.salesforce_records("Account") == []


def test_bulk2_insert_and_per_row_results(sfsb):
    sf = password_client(sfsb.env)
    [job] = sf.bulk2.Account.insert(
        records=[
            {"Name": "A", "Harvest_Client_Id__c": "1"},
            {"Name": "", "Harvest_Client_Id__c": "2"},
            {"Name": "C", "Harvest_Client_Id__c": "3"},
        ],
        wait=0.1,
    )
    assert (job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (3, 1)
    ok = list(csv.DictReader(io.StringIO(sf.bulk2.Account.get_successful_records(job["job_id"]))))
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Account.get_failed_records(job["job_id"]))))
    assert sorted(r["Harvest_Client_Id__c"] for r in ok) == ["1", "3"] and {r["sf__Created"] for r in ok} == {
        "true"
    }
    assert [r["sf__Error"] for r in failed] == [
        "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"
    ]
    assert sorted(r["Name"] for r in sfsb.salesforce_records("Account")) == ["A", "C"]


def test_bulk2_upsert_leaves_empty_cells_unchanged_and_na_clears(sfsb, tmp_path):
    sf = password_client(sfsb.env)
    sf.bulk.Account.insert(
        [{"Name": "A", "Harvest_Client_Id__c": "1", "Phone": "555", "Website": "https://a.example"}]
    )
    data = tmp_path / "accounts.csv"
    data.write_text("Harvest_Client_Id__c,Name,Phone,Website\n1,A2,,#N/A\n")
    [job] = sf.bulk2.Account.upsert(csv_file=str(data), external_id_field="Harvest_Client_Id__c", wait=0.1)
    assert job["numberRecordsFailed"] == 0
    [account] = sfsb.salesforce_records("Account")
    assert (account["Name"], account["Phone"], account["Website"]) == ("A2", "555", None)


def test_bulk2_unknown_column_fails_the_job(sfsb):
    with pytest.raises(SalesforceOperationError, match="Field name not found : Nope__c"):
        password_client(sfsb.env).bulk2.Account.insert(records=[{"Name": "A", "Nope__c": "x"}], wait=0.1)
    assert sfsb.salesforce_records("Account") == []
