"""Bulk API 1.0 through simple-salesforce's own ``sf.bulk.<Object>`` calls, over HTTPS to the sandbox.

Each call's per-row results come back in request order, also across batches; rejected rows carry
Salesforce's status codes; the org (read through the admin API) holds exactly the accepted rows.
"""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crm_assets_tests.sandbox.salesforce_client import password_client


def codes(results):
    return [r["errors"][0]["statusCode"] if r["errors"] else None for r in results]


def test_insert_gives_one_result_per_row_in_order_across_batches(sfsb):
    rows = [{"Name": f"Client {i}", "Harvest_Client_Id__c": str(100 + i)} for i in range(7)]
    rows[3] = {"Harvest_Client_Id__c": "103"}  # no Name: required
    rows[5]["NumberOfEmployees"] = "many"  # not a number
    rows[6]["Harvest_Client_Id__c"] = "101"  # the external id of row 1, in another batch
    results = password_client(sfsb.env).bulk.Account.insert(rows, batch_size=3)
    assert codes(results) == [
        None,
        None,
        None,
        "REQUIRED_FIELD_MISSING",
        None,
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        "DUPLICATE_VALUE",
    ]
    assert results[3]["errors"][0]["fields"] == ["Name"]
    assert results[6]["errors"][0]["message"] == (
        f"duplicate value found: Harvest_Client_Id__c duplicates value on record with id: {results[1]['id']}"
    )
    assert [r["success"] for r in results] == [True, True, True, False, True, False, False]
    assert all(r["created"] for r in results if r["success"]) and results[3]["id"] is None
    org = {r["Id"]: r for r in sfsb.salesforce_records("Account")}
    assert sorted(org) == sorted(r["id"] for r in results if r["success"])
    for row, result in zip(rows, results):
        if result["success"]:
            assert org[result["id"]]["Name"] == row["Name"]
            assert org[result["id"]]["Harvest_Client_Id__c"] == row["Harvest_Client_Id__c"]
    batches = [
        r for r in sfsb.salesforce_requests() if r["path"].endswith("/batch") and r["method"] == "POST"
    ]
    assert [b["records"] for b in batches] == [3, 3, 1]


def test_upsert_inserts_new_keys_and_updates_existing_ones(sfsb):
    sf = password_client(sfsb.env)
    first = sf.bulk.Account.insert([{"Name": "Old", "Harvest_Client_Id__c": "1", "Phone": "555-0100"}])
    results = sf.bulk.Account.upsert(
        [
            {"Harvest_Client_Id__c": "2", "Name": "New"},
            {"Harvest_Client_Id__c": "1", "Name": "Renamed", "Phone": None},
            {"Name": "No key"},
            {"Harvest_Client_Id__c": "3", "Name": "Twice"},
            {"Harvest_Client_Id__c": "3", "Name": "x"},
        ],
        "Harvest_Client_Id__c",
    )
    assert codes(results) == [
        None,
        None,
        "MISSING_ARGUMENT",
        "DUPLICATE_EXTERNAL_ID",
        "DUPLICATE_EXTERNAL_ID",
    ]
    assert [r["created"] for r in results[:2]] == [True, False]
    assert results[1]["id"] == first[0]["id"]
    org = {r["Harvest_Client_Id__c"]: r for r in sfsb.salesforce_records("Account")}
    assert sorted(org) == ["1", "2"]
    assert org["1"]["Name"] == "Renamed" and org["1"]["Phone"] is None  # null clears the field
    assert org["2"]["Name"] == "New"


def test_update_by_id_and_its_row_errors(sfsb):
    sf = password_client(sfsb.env)
    ids = [
        r["id"]
        for r in sf.bulk.Contact.insert(
            [{"LastName": "Ada", "Email": "ada@example.com"}, {"LastName": "Bob"}]
        )
    ]
    results = sf.bulk.Contact.update(
        [
            {"Id": ids[0], "FirstName": "Countess", "Email": None},
            {"Id": ids[1], "LastName": None},  # required field cleared
            {"Id": ids[1], "Email": "not-an-email"},
            {"Id": "003000000000000", "LastName": "Ghost"},
            {"Id": ids[1], "CreatedDate": "2024-01-01T00:00:00Z"},
            {"Id": ids[1], "Title": "x" * 129},
        ]
    )
    assert codes(results) == [
        None,
        "REQUIRED_FIELD_MISSING",
        "INVALID_EMAIL_ADDRESS",
        "INVALID_CROSS_REFERENCE_KEY",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "STRING_TOO_LONG",
    ]
    assert results[1]["id"] == ids[1] and not results[0]["created"]
    org = {r["Id"]: r for r in sfsb.salesforce_records("Contact")}
    assert org[ids[0]]["FirstName"] == "Countess" and org[ids[0]]["Email"] is None
    assert org[ids[0]]["Name"] == "Countess Ada"
    assert org[ids[1]]["LastName"] == "Bob" and org[ids[1]]["Title"] is None


@pytest.mark.parametrize("use_serial, sent, answered", [(True, 1, "Serial"), (False, 0, "Parallel")])
def test_the_jobs_concurrency_mode_is_recorded_as_sent(sfsb, use_serial, sent, answered):
    password_client(sfsb.env).bulk.Account.insert([{"Name": "A"}], use_serial=use_serial)
    [job] = sfsb.salesforce_jobs()
    assert job["concurrencyModeSent"] == sent and job["concurrencyMode"] == answered
    assert job["state"] == "Closed" and job["numberRecordsProcessed"] == 1
    [create] = [r for r in sfsb.salesforce_requests() if r["path"].endswith("/job") and r["method"] == "POST"]
    assert create["body"]["concurrencyMode"] == sent and create["body"]["operation"] == "insert"


def test_an_unknown_column_fails_the_whole_batch(sfsb):
    sf = password_client(sfsb.env)
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.bulk.Account.insert([{"Name": "fine"}, {"Name": "bad", "Nope__c": 1}])
    assert raised.value.content == {
        "exceptionCode": "InvalidBatch",
        "exceptionMessage": "Records not processed",
    }
    [job] = sfsb.salesforce_jobs()
    assert job["batches"][0]["state"] == "Failed"
    assert job["batches"][0]["stateMessage"] == "InvalidBatch : Field name not found : Nope__c"
    assert sfsb.salesforce_records("Account") == []


def test_upsert_on_a_field_that_is_not_an_external_id_is_refused_at_job_creation(sfsb):
    with pytest.raises(SalesforceMalformedRequest) as raised:
        password_client(sfsb.env).bulk.Account.upsert([{"Name": "A"}], "Name")
    assert raised.value.content["exceptionCode"] == "InvalidJob"
    assert sfsb.salesforce_jobs() == []


def test_delete_goes_to_the_recycle_bin_and_hard_delete_removes(sfsb):
    sf = password_client(sfsb.env)
    ids = [r["id"] for r in sf.bulk.Account.insert([{"Name": n} for n in "ABC"])]
    deleted = sf.bulk.Account.delete([{"Id": ids[0]}, {"Id": ids[0]}])
    assert codes(deleted) == [None, "ENTITY_IS_DELETED"] and deleted[0]["id"] == ids[0]
    hard = sf.bulk.Account.hard_delete([{"Id": ids[1]}, {"Id": ids[0]}])
    assert codes(hard) == [None, None]
    assert [r["Id"] for r in sfsb.salesforce_records("Account")] == [ids[2]]
    assert sfsb.salesforce_records("Account", deleted="only") == []
    sf.bulk.Account.delete([{"Id": ids[2]}])
    assert [(r["Id"], r["IsDeleted"]) for r in sfsb.salesforce_records("Account", deleted="include")] == [
        (ids[2], True)
    ]


def test_bulk_query_and_query_all_read_the_org(sfsb):
    sf = password_client(sfsb.env)
    ids = [r["id"] for r in sf.bulk.Account.insert([{"Name": n, "Harvest_Client_Id__c": n} for n in "ABC"])]
    sf.bulk.Account.delete([{"Id": ids[1]}])
    live = sf.bulk.Account.query("SELECT Id, Harvest_Client_Id__c FROM Account ORDER BY Name")
    assert [(r["Id"], r["Harvest_Client_Id__c"]) for r in live] == [(ids[0], "A"), (ids[2], "C")]
    assert live[0]["attributes"]["type"] == "Account"
    everything = sf.bulk.Account.query_all("SELECT Id, IsDeleted FROM Account")
    assert [(r["Id"], r["IsDeleted"]) for r in everything] == [
        (ids[0], False),
        (ids[1], True),
        (ids[2], False),
    ]


def test_seeded_records_are_there_for_a_truncate_and_not_counted_as_requests(sfsb):
    results = sfsb.salesforce_load(
        "Contact", [{"LastName": "Seeded", "Harvest_Contact_Id__c": "9"}, {"FirstName": "x"}]
    )
    assert [r["success"] for r in results] == [True, False]
    assert sfsb.salesforce_requests() == []
    sf = password_client(sfsb.env)
    ids = [r["Id"] for r in sf.query_all("SELECT Id FROM Contact")["records"]]
    assert ids == [results[0]["id"]]
    assert sf.bulk.Contact.hard_delete([{"Id": i} for i in ids])[0]["success"]
    assert sfsb.salesforce_records("Contact", deleted="include") == []
