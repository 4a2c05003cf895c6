"""Describe, SOQL with ``nextRecordsUrl`` paging and sObject REST rows, through simple-salesforce."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from crm_assets_tests.sandbox.salesforce_client import password_client, session_client


def fields_of(sf, obj):
    return {f["name"]: f for f in getattr(sf, obj).describe()["fields"]}


def test_describe_tells_what_a_pre_flight_needs(sfsb):
    sf = session_client(sfsb)
    account = fields_of(sf, "Account")
    assert account["Harvest_Client_Id__c"]["externalId"] and account["Harvest_Client_Id__c"]["custom"]
    assert (
        account["Name"]["idLookup"] and not account["Name"]["externalId"] and not account["Name"]["nillable"]
    )
    for system in ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted"):
        assert not account[system]["createable"] and not account[system]["updateable"], system
    assert account["BillingCity"]["compoundFieldName"] == "BillingAddress"
    assert all("compoundFieldName" in f for f in account.values())
    project = fields_of(sf, "Harvest_Project__c")
    assert (
        project["Budget_Amount__c"]["type"],
        project["Budget_Amount__c"]["precision"],
        project["Budget_Amount__c"]["scale"],
    ) == ("currency", 16, 2)
    assert project["Bill_By__c"]["restrictedPicklist"]
    assert [v["value"] for v in project["Bill_By__c"]["picklistValues"]] == [
        "Project",
        "Tasks",
        "People",
        "none",
    ]
    assert (project["Starts_On__c"]["type"], project["Is_Billable__c"]["type"]) == ("date", "boolean")
    assert project["Account__c"]["referenceTo"] == ["Account"]
    assert fields_of(sf, "Contact")["LastName"]["length"] == 80
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {"Account", "Contact", "Harvest_Project__c"} <= names


def test_query_pages_through_next_records_url(sfsb):
    sf = password_client(sfsb.env)
    sf.bulk.Harvest_Project__c.insert(
        [{"Name": f"P{i:04d}", "Harvest_Project_Id__c": str(i)} for i in range(4500)]
    )
    first = sf.query("SELECT Id, Name FROM Harvest_Project__c ORDER BY Name")
    assert (first["totalSize"], len(first["records"]), first["done"]) == (4500, 2000, False)
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(second["records"]) == 2000 and not second["done"]
    everything = sf.query_all("SELECT Name, Harvest_Project_Id__c FROM Harvest_Project__c ORDER BY Name")[
        "records"
    ]
    assert [r["Name"] for r in everything] == [f"P{i:04d}" for i in range(4500)]
    pages = [r["path"].rpartition("/")[2] for r in sfsb.salesforce_requests() if "/query/01g" in r["path"]]
    assert [p.partition("-")[2] for p in pages] == [
        "2000",
        "2000",
        "4000",
    ]  # query_more once, query_all twice
    filtered = sf.query(
        "SELECT Id FROM Harvest_Project__c WHERE Harvest_Project_Id__c IN ('1', '2', '9999') "
        "OR Name LIKE 'P449%'"
    )
    assert filtered["totalSize"] == 12
    assert sf.query("SELECT COUNT() FROM Harvest_Project__c WHERE Is_Active__c = false")["totalSize"] == 4500


def test_query_errors_are_salesforces(sfsb):
    sf = session_client(sfsb)
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query("SELECT Nope__c FROM Account")
    assert raised.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query("SELECT Id FROM Nope")
    assert raised.value.content[0]["errorCode"] == "INVALID_TYPE"


def test_rest_create_update_upsert_get_delete(sfsb):
    sf = password_client(sfsb.env)
    created = sf.Account.create({"Name": "Acme", "Website": "https://acme.example", "BillingCity": "Lyon"})
    assert created["success"] and created["id"].startswith("001") and len(created["id"]) == 18
    assert sf.Account.update(created["id"], {"Phone": "555-0101", "Website": None}) == 204
    assert sf.Account.upsert("Harvest_Client_Id__c/42", {"Name": "Globex"}) == 201
    assert sf.Account.upsert("Harvest_Client_Id__c/42", {"Name": "Globex Corp"}) == 200
    record = sf.Account.get_by_custom_id("Harvest_Client_Id__c", "42")
    assert record["Name"] == "Globex Corp" and record["attributes"]["type"] == "Account"
    acme = sf.Account.get(created["id"])
    assert (acme["Phone"], acme["Website"], acme["BillingCity"]) == ("555-0101", None, "Lyon")
    assert sf.Account.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get(created["id"])
    org = sfsb.salesforce_records("Account", deleted="include")
    assert [(r["Name"], r["IsDeleted"]) for r in org] == [("Acme", True), ("Globex Corp", False)]
    assert sf.query_all("SELECT Id FROM Account")["totalSize"] == 1
    assert sf.query_all("SELECT Id FROM Account", include_deleted=True)["totalSize"] == 2


@pytest.mark.parametrize(
    "body, code",
    [
        ({"Name": "A", "Nope__c": 1}, "INVALID_FIELD"),
        ({"Website": "x"}, "REQUIRED_FIELD_MISSING"),
        ({"Name": "A" * 256}, "STRING_TOO_LONG"),
        ({"Name": "A", "NumberOfEmployees": "many"}, "JSON_PARSER_ERROR"),
        ({"Name": "A", "CreatedDate": "2024-01-01T00:00:00Z"}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
    ],
)
def test_rest_create_rejections(sfsb, body, code):
    with pytest.raises(SalesforceMalformedRequest) as raised:
        session_client(sfsb).Account.create(body)
    assert raised.value.status == 400 and raised.value.content[0]["errorCode"] == code
    assert sfsb.salesforce_records("Account") == []


def test_values_are_converted_as_salesforce_does(sfsb):
    sf = password_client(sfsb.env)
    [account] = sf.bulk.Account.insert([{"Name": "Client", "Harvest_Client_Id__c": "7"}])
    rows = [
        {
            "Harvest_Project_Id__c": "1",
            "Budget_Hours__c": 12.345,
            "Budget_Amount__c": "1234.565",
            "Starts_On__c": "2024-02-29",
            "Last_Entry_At__c": "2024-03-01T10:00:00+02:00",
            "Is_Billable__c": "true",
            "Bill_By__c": "Project",
            "Account__r": {"Harvest_Client_Id__c": "7"},
            "Code__c": "",
        },
        {"Harvest_Project_Id__c": "2", "Last_Entry_At__c": "2024-03-01 10:00:00"},
        {"Harvest_Project_Id__c": "3", "Starts_On__c": "2024-02-30"},
        {"Harvest_Project_Id__c": "4", "Bill_By__c": "Hourly"},
        {"Harvest_Project_Id__c": "5", "Budget_Amount__c": 1e17},
        {"Harvest_Project_Id__c": "6", "Account__r": {"Harvest_Client_Id__c": "404"}},
        {"Harvest_Project_Id__c": "7", "Account__c": "not-an-id"},
        {"Harvest_Project_Id__c": "8", "Is_Billable__c": None, "Is_Active__c": "yes"},
    ]
    results = sf.bulk.Harvest_Project__c.upsert(rows, "Harvest_Project_Id__c")
    assert [r["errors"][0]["statusCode"] if r["errors"] else None for r in results] == [
        None,
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "NUMBER_OUTSIDE_VALID_RANGE",
        "INVALID_FIELD",
        "MALFORMED_ID",
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
    ]
    [project] = sfsb.salesforce_records("Harvest_Project__c")
    assert (project["Budget_Hours__c"], project["Budget_Amount__c"]) == (12.35, 1234.57)
    assert project["Starts_On__c"] == "2024-02-29"
    assert project["Last_Entry_At__c"] == "2024-03-01T08:00:00.000+0000"
    assert (project["Is_Billable__c"], project["Is_Active__c"]) == (True, False)
    assert project["Account__c"] == account["id"] and project["Code__c"] is None
    assert project["Name"] == project["Id"]  # a custom object's name defaults to its id
    cleared = sf.bulk.Harvest_Project__c.update(
        [{"Id": project["Id"], "Is_Billable__c": None, "Budget_Hours__c": None}]
    )
    assert cleared[0]["success"]
    [project] = sfsb.salesforce_records("Harvest_Project__c")
    assert (project["Is_Billable__c"], project["Budget_Hours__c"]) == (
        False,
        None,
    )  # a null checkbox is false


def test_rest_answers_report_api_usage(sfsb):
    sf = session_client(sfsb)
    sf.query("SELECT Id FROM Account")
    sf.query("SELECT Id FROM Account")
    usage = sf.api_usage["api-usage"]
    assert usage.total == 100_000 and usage.used >= 2
