"""The sandbox's Zoho module records over real HTTP: field metadata, validation per record, the
statuses of §3.4, upsert matching, listing, workflow triggers and the logged request bodies."""

from __future__ import annotations

import pytest
import requests

from crm_assets_tests.sandbox.zoho_http import crm_get, token
from crm_assets_tests.zoho_modules import module_records


@pytest.fixture
def auth(zsb):
    return token(zsb)


def write(auth, method: str, path: str, body: dict) -> requests.Response:
    access_token, api_domain = auth
    return requests.request(method, f"{api_domain}/crm/v8{path}", json=body, timeout=30,
                            headers={"Authorization": f"Zoho-oauthtoken {access_token}"})


def codes(resp: requests.Response) -> list[tuple[str, str | None]]:
    return [(r["code"], r["details"].get("api_name")) for r in resp.json()["data"]]


def test_field_metadata_names_types_flags_and_the_unique_custom_field(zsb, auth):
    fields = {f["api_name"]: f for f in crm_get(zsb, "/settings/fields", *auth, module="Accounts").json()["fields"]}
    assert fields["Harvest_Client_Id"]["unique"] and fields["Harvest_Client_Id"]["custom_field"]
    assert fields["Account_Name"]["system_mandatory"] and fields["Account_Name"]["length"] == 200
    assert fields["Account_Code"]["read_only"] and fields["Created_Time"]["read_only"]
    assert (fields["Owner"]["data_type"], fields["Owner"]["json_type"]) == ("ownerlookup", "jsonobject")
    missing = crm_get(zsb, "/settings/fields", *auth)
    unknown = crm_get(zsb, "/settings/fields", *auth, module="Nope")
    assert (missing.status_code, missing.json()["code"]) == (400, "REQUIRED_PARAM_MISSING")
    assert (unknown.status_code, unknown.json()["code"]) == (400, "INVALID_MODULE")


def test_each_record_is_validated_on_its_own_and_the_status_says_how_many_passed(zsb, auth):
    owner = next(u["id"] for u in zsb.zoho_records("users") if u["status"] == "inactive")
    good = {"Account_Name": "Acme", "Harvest_Client_Id": "1", "Client_Since": "2024-02-29",
            "Harvest_Updated_At": "2024-02-29T10:00:00-07:00", "Employees": 12, "Tag": ["Key"]}
    bad = [
        {"Account_Name": "B", "Nope": 1},
        {"Account_Name": "C", "Employees": "12"},
        {"Harvest_Client_Id": "3"},
        {"Account_Name": "x" * 201},
        {"Account_Name": "E", "Harvest_Client_Id": "1"},
        {"Account_Name": "F", "Account_Code": "A-1"},
        {"Account_Name": "G", "Client_Since": "02/29/2024"},
        {"Account_Name": "H", "Harvest_Updated_At": "2024-02-29T10:00:00.000Z"},
        {"Account_Name": "I", "Owner": {"id": owner}},
    ]
    mixed = write(auth, "POST", "/Accounts", {"data": [good, *bad]})
    assert mixed.status_code == 207
    assert codes(mixed) == [
        ("SUCCESS", None), ("INVALID_DATA", "Nope"), ("INVALID_DATA", "Employees"),
        ("MANDATORY_NOT_FOUND", "Account_Name"), ("INVALID_DATA", "Account_Name"),
        ("DUPLICATE_DATA", "Harvest_Client_Id"), ("INVALID_DATA", "Account_Code"), ("INVALID_DATA", "Client_Since"),
        ("INVALID_DATA", "Harvest_Updated_At"), ("INVALID_DATA", "Owner"),
    ]
    results = mixed.json()["data"]
    assert results[2]["details"] == {"api_name": "Employees", "json_path": "$.data[2].Employees",
                                     "expected_data_type": "integer"}
    assert results[4]["details"]["maximum_length"] == 200
    assert results[5]["details"]["duplicate_record"]["id"] == results[0]["details"]["id"]
    (stored,) = module_records(zsb)
    assert {k: stored[k] for k in good} == good and stored["Owner"]["id"] == zsb.zoho_records("users")[0]["id"]
    assert write(auth, "POST", "/Accounts", {"data": bad[:2]}).status_code == 400
    assert write(auth, "POST", "/Accounts", {"data": [{"Account_Name": "J"}]}).status_code == 201


def test_request_level_refusals(zsb, auth):
    too_many = write(auth, "POST", "/Accounts", {"data": [{"Account_Name": f"A{i}"} for i in range(101)]})
    assert (too_many.status_code, too_many.json()["code"], too_many.json()["details"]["limit"]) == (
        400, "LIMIT_EXCEEDED", 100)
    assert write(auth, "POST", "/Accounts", {"data": []}).json()["code"] == "REQUIRED_PARAM_MISSING"
    assert write(auth, "POST", "/Accounts", {"data": [{}], "trigger": ["nope"]}).json()["details"] == {
        "param_name": "trigger"}
    assert write(auth, "POST", "/Nowhere", {"data": [{}]}).json()["code"] == "INVALID_MODULE"
    assert write(auth, "DELETE", "/Accounts", {}).status_code == 405
    assert module_records(zsb) == []


def test_update_by_id_and_upsert_on_duplicate_check_fields(zsb, auth):
    added = write(auth, "POST", "/Accounts", {"data": [{"Account_Name": "Acme", "Harvest_Client_Id": "7"}]})
    record_id = added.json()["data"][0]["details"]["id"]
    updated = write(auth, "PUT", "/Accounts", {"data": [
        {"id": record_id, "Phone": "+1 555 0100"}, {"Phone": "1"}, {"id": "123", "Phone": "2"},
        {"id": record_id, "Account_Name": None}]})
    assert updated.status_code == 207
    assert codes(updated) == [("SUCCESS", None), ("MANDATORY_NOT_FOUND", "id"), ("INVALID_DATA", "id"),
                              ("MANDATORY_NOT_FOUND", "Account_Name")]
    upserted = write(auth, "POST", "/Accounts/upsert", {
        "data": [{"Account_Name": "Acme Corp", "Harvest_Client_Id": "7"}, {"Account_Name": "Beta", "Harvest_Client_Id": "8"}],
        "duplicate_check_fields": ["Harvest_Client_Id"]})
    assert upserted.status_code == 200
    assert [(r["action"], r["duplicate_field"], r["message"]) for r in upserted.json()["data"]] == [
        ("update", "Harvest_Client_Id", "record updated"), ("insert", None, "record added")]
    by_default = write(auth, "POST", "/Accounts/upsert", {"data": [{"Account_Name": "beta", "Website": "b.example"}]})
    assert by_default.json()["data"][0]["duplicate_field"] == "Account_Name"  # the system field, case-insensitive
    records = {r["Harvest_Client_Id"]: r for r in module_records(zsb)}
    assert (records["7"]["id"], records["7"]["Account_Name"], records["7"]["Phone"]) == (record_id, "Acme Corp", "+1 555 0100")
    assert records["8"]["Website"] == "b.example" and len(records) == 2
    not_unique = write(auth, "POST", "/Accounts/upsert", {"data": [{"Account_Name": "X"}], "duplicate_check_fields": ["Phone"]})
    assert not_unique.json()["details"] == {"param_name": "duplicate_check_fields"}


def test_lookups_listing_and_what_the_trigger_list_runs(zsb, auth):
    account = write(auth, "POST", "/Accounts", {"data": [{"Account_Name": "Acme"}], "trigger": []})
    account_id = account.json()["data"][0]["details"]["id"]
    contacts = write(auth, "POST", "/Contacts", {"data": [
        {"Last_Name": "Ng", "Account_Name": {"id": account_id}}, {"Last_Name": "Li", "Account_Name": {"id": "99"}}]})
    assert codes(contacts) == [("SUCCESS", None), ("INVALID_DATA", "Account_Name")]
    assert module_records(zsb, "Contacts")[0]["Account_Name"] == {"name": "Acme", "id": account_id}
    ran = zsb.call("GET", "/_sandbox/zoho/modules/automations")["automations"]
    assert [(a["module"], a["ran"]) for a in ran] == [("Contacts", ["approval", "workflow", "blueprint"])]
    bodies = [r["body"] for r in zsb.zoho_requests("crm") if r["method"] == "POST"]
    assert bodies[0] == {"data": [{"Account_Name": "Acme"}], "trigger": []} and "trigger" not in bodies[1]
    for i in range(3):
        write(auth, "POST", "/Accounts", {"data": [{"Account_Name": f"N{i}"}]})
    listed = crm_get(zsb, "/Accounts", *auth, fields="Account_Name", sort_order="asc", per_page=3)
    assert [r["Account_Name"] for r in listed.json()["data"]] == ["Acme", "N0", "N1"]
    assert listed.json()["info"]["more_records"] is True
    assert crm_get(zsb, "/Accounts", *auth).json()["details"] == {"param_name": "fields"}
    assert crm_get(zsb, "/Deals", *auth, fields="Deal_Name").status_code == 204
