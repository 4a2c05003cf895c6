"""The sandbox's Zoho CRM over real HTTP: each table's envelope, paging and change filter, record
shapes, the admin's edits, feature switches and faults."""

from __future__ import annotations

import concurrent.futures
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from crm_assets.sandbox import SandboxProcess
from crm_assets.sandbox.zoho_reference import RECORDS, shape_errors
from crm_assets_tests.sandbox.zoho_http import crm_get, token, when

ENVELOPES = {"currencies": ("/org/currencies", "currencies"), "organization": ("/org", "org"),
             "profiles": ("/settings/profiles", "profiles"), "roles": ("/settings/roles", "roles"),
             "territories": ("/settings/territories", "territories"), "users": ("/users", "users")}


@pytest.fixture(scope="module")
def sb():
    with SandboxProcess(seed=5, scale=0.05, lifetime=900) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def auth(sb):
    return token(sb)


def get(sb, auth, path, headers=None, **params) -> requests.Response:
    return crm_get(sb, path, auth[0], auth[1], headers=headers, **params)


def every_page(sb, auth, path, envelope, **params) -> tuple[list[dict], list[dict]]:
    """All records by ``page`` until ``more_records`` is false, and each page's ``info``."""
    records, infos = [], []
    for page in range(1, 100):
        answer = get(sb, auth, path, page=page, **params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        records += body[envelope]
        infos.append(body["info"])
        if not body["info"]["more_records"]:
            return records, infos
    raise AssertionError(f"{path}: more_records never became false")


def test_users_span_two_pages_of_200_and_a_page_past_the_end_is_204(sb, auth):
    users, infos = every_page(sb, auth, "/users", "users", type="AllUsers")
    assert [(i["page"], i["count"], i["per_page"], i["more_records"]) for i in infos] == [
        (1, 200, 200, True), (2, 40, 200, False)]
    assert users == sb.zoho_records("users")
    past = get(sb, auth, "/users", type="AllUsers", page=3)
    assert past.status_code == 204 and past.content == b""
    assert get(sb, auth, "/users", per_page=201).json()["code"] == "INVALID_DATA"
    small, infos = every_page(sb, auth, "/users", "users", per_page=50)
    assert small == users and len(infos) == 5


def test_all_users_leaves_deleted_users_out_and_types_filter(sb, auth):
    deleted = get(sb, auth, "/users", type="DeletedUsers").json()["users"]
    assert len(deleted) == 4 and {u["status"] for u in deleted} == {"deleted"}
    assert deleted == sb.zoho_records("users", user_type="DeletedUsers")
    active = get(sb, auth, "/users", type="ActiveUsers").json()["users"]
    assert active and {u["status"] for u in active} == {"active"}
    assert get(sb, auth, "/users/actions/count", type="AllUsers").json() == {"count": "240"}
    assert get(sb, auth, "/users", type="NoSuchUsers").status_code == 400


@pytest.mark.parametrize("table", sorted(ENVELOPES))
def test_each_table_serves_its_envelope_and_the_ground_truth(sb, auth, table):
    path, envelope = ENVELOPES[table]
    body = get(sb, auth, path).json()
    if table in ("profiles", "territories", "users"):
        records, infos = every_page(sb, auth, path, envelope)
        assert infos[0]["count"] == len(body[envelope])
        if table == "profiles":
            assert infos[0]["license_limit"] == 200
    else:
        assert set(body) == {envelope}, "unpaged endpoints have no info block"
        records = body[envelope]
    assert records == sb.zoho_records(table)
    assert len(records) == 1 if table == "organization" else len(records) > 3
    one = get(sb, auth, f"{path}/{records[-1]['id']}").json() if table != "organization" else body
    assert one[envelope] == [records[-1]]


@pytest.mark.parametrize("table", sorted(ENVELOPES))
def test_records_have_the_reference_shape(sb, table):
    records = sb.zoho_records(table) + (sb.zoho_records(table, "DeletedUsers") if table == "users" else [])
    errors = [e for r in records for e in shape_errors(r, RECORDS[table], f"{table} {r['id']}")]
    assert not errors, errors[:5]
    assert all(isinstance(r["id"], str) and r["id"].isdigit() and len(r["id"]) <= 19 for r in records)


def test_timestamps_carry_offsets_of_every_kind_and_ids_exceed_a_double(sb):
    users = sb.zoho_records("users")
    endings = {u["created_time"][-6:] if not u["created_time"].endswith("Z") else "Z" for u in users}
    assert endings == {"+05:30", "-07:00", "Z"}
    assert any(int(float(u["id"])) != int(u["id"]) for u in users), "ids must not survive a float round trip"
    assert any(u["Modified_Time"] is None for u in users)  # the replication key is nullable
    assert any(u["Multi_Select_1"] for u in users) and all(isinstance(u["Multi_Select_1"], list) for u in users)


def test_nested_references_point_at_existing_records(sb):
    roles = {r["id"]: r for r in sb.zoho_records("roles")}
    territories = {t["id"]: t for t in sb.zoho_records("territories")}
    profiles = {p["id"] for p in sb.zoho_records("profiles")}
    users = sb.zoho_records("users")
    assert [r for r in roles.values() if r["reporting_to"] is None] == [next(iter(roles.values()))]
    assert all(r["reporting_to"]["id"] in roles for r in roles.values() if r["reporting_to"])
    assert sum(t["reporting_to"] is None for t in territories.values()) == 1
    assert all(t["reporting_to"]["id"] in territories for t in territories.values() if t["reporting_to"])
    grandchildren = [t for t in territories.values() if t["reporting_to"] and territories[t["reporting_to"]["id"]]["reporting_to"]]
    assert grandchildren, "territories nest more than one level"
    assert all(u["role"]["id"] in roles and u["profile"]["id"] in profiles for u in users)
    user_ids = {u["id"] for u in users}
    managers = [t["manager"]["id"] for t in territories.values() if t["manager"]]
    assert managers and set(managers) <= user_ids
    assert all(u["Reporting_To"]["id"] in user_ids for u in users if u["Reporting_To"])
    assert len({u["profile"]["id"] for u in users}) == len(profiles)
    assert any(p["created_time"] is None and p["created_by"] is None for p in sb.zoho_records("profiles"))


def test_if_modified_since_keeps_users_modified_at_or_after_it_and_answers_304_for_none(sb, auth):
    users = [u for u in sb.zoho_records("users") if u["Modified_Time"]]
    times = sorted(when(u["Modified_Time"]) for u in users)
    cutoff = times[len(times) // 2]
    header = cutoff.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    expected = [u["id"] for u in users if when(u["Modified_Time"]) >= cutoff]
    changed = get(sb, auth, "/users", headers={"If-Modified-Since": header}, type="AllUsers")
    assert [u["id"] for u in changed.json()["users"]] == expected
    assert changed.json()["info"]["more_records"] is False
    as_http_date = get(sb, auth, "/users", headers={"If-Modified-Since": format_datetime(cutoff.astimezone(UTC), usegmt=True)})
    assert [u["id"] for u in as_http_date.json()["users"]] == expected
    later = (times[-1] + timedelta(seconds=1)).isoformat()
    none = get(sb, auth, "/users", headers={"If-Modified-Since": later}, type="AllUsers")
    assert none.status_code == 304 and none.content == b""
    bad = get(sb, auth, "/users", headers={"If-Modified-Since": "yesterday"})
    assert bad.status_code == 400 and bad.json()["details"] == {"header_name": "If-Modified-Since"}


def test_territory_filters_on_modified_time_and_parent(sb, auth):
    territories = sb.zoho_records("territories")
    times = sorted(when(t["modified_time"]) for t in territories)
    low, high = times[3], times[10]

    def ids(criterion):
        answer = get(sb, auth, "/settings/territories", filters=json.dumps(criterion))
        return [] if answer.status_code == 204 else [t["id"] for t in answer.json()["territories"]]

    after = {"field": {"api_name": "modified_time"}, "comparator": "greater_than", "value": low.isoformat()}
    assert ids(after) == [t["id"] for t in territories if when(t["modified_time"]) > low]
    between = {"field": {"api_name": "modified_time"}, "comparator": "between", "value": [low.isoformat(), high.isoformat()]}
    assert ids(between) == [t["id"] for t in territories if low <= when(t["modified_time"]) <= high]
    root = territories[0]["id"]
    children = {"field": {"api_name": "reporting_to.id"}, "comparator": "equal", "value": root}
    assert ids(children) == [t["id"] for t in territories if t["reporting_to"] and t["reporting_to"]["id"] == root]
    both = {"group_operator": "AND", "group": [after, children]}
    assert set(ids(both)) == set(ids(after)) & set(ids(children))
    assert get(sb, auth, "/settings/territories", filters="{not json").json()["code"] == "INVALID_DATA"


def test_modified_records_show_a_newer_modified_time_and_only_they_pass_the_change_filters(sb, auth):
    before = {t: {r["id"]: r for r in sb.zoho_records(t)} for t in ("users", "territories", "roles", "currencies")}
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    user_ids = sb.zoho_modify("users", ids=[u for u in list(before["users"])[10:13]])
    territory_ids = sb.zoho_modify("territories", count=1, set={"description": "moved"})
    sb.zoho_modify("roles", count=1)
    sb.zoho_modify("currencies", ids=[list(before["currencies"])[1]])
    after_users = {u["id"]: u for u in get(sb, auth, "/users", per_page=200).json()["users"]}
    for uid in user_ids:
        old, new = before["users"][uid], after_users[uid]
        assert when(new["Modified_Time"]) > when(old["Modified_Time"]) and when(new["Modified_Time"]) >= started
        assert new["phone"] != old["phone"]
    since = {"If-Modified-Since": started.isoformat()}
    assert [u["id"] for u in get(sb, auth, "/users", headers=since).json()["users"]] == user_ids
    territory = get(sb, auth, f"/settings/territories/{territory_ids[0]}").json()["territories"][0]
    assert territory["description"] == "moved" and when(territory["modified_time"]) >= started
    recent = {"field": {"api_name": "modified_time"}, "comparator": "greater_than", "value": started.isoformat()}
    filtered = get(sb, auth, "/settings/territories", filters=json.dumps(recent)).json()["territories"]
    assert [t["id"] for t in filtered] == territory_ids
    role = sb.zoho_records("roles")[0]
    assert role["modified_time__s"] and when(role["modified_time__s"]) >= started
    currency = next(c for c in sb.zoho_records("currencies") if c["id"] == list(before["currencies"])[1])
    assert when(currency["modified_time"]) >= started


def test_multi_currency_and_territories_can_be_switched_off(sb, auth):
    sb.zoho_settings(multi_currency=False, territories_enabled=False)
    try:
        currencies = get(sb, auth, "/org/currencies")
        territories = get(sb, auth, "/settings/territories")
        org = get(sb, auth, "/org").json()["org"][0]
    finally:
        sb.zoho_settings(multi_currency=True, territories_enabled=True)
    assert currencies.status_code == 403 and currencies.json() == {
        "code": "CURRENCIES_NOT_ENABLED", "details": {}, "message": "Multi currency is not enabled", "status": "error"}
    assert territories.status_code == 400 and territories.json()["code"] == "FEATURE_NOT_ENABLED"
    assert org["mc_status"] is False
    assert get(sb, auth, "/org/currencies").status_code == 200


def test_a_table_whose_scope_the_token_lacks_answers_oauth_scope_mismatch(sb, auth):
    sb.zoho_settings(scope_missing=["roles"])
    try:
        roles, users = get(sb, auth, "/settings/roles"), get(sb, auth, "/users")
    finally:
        sb.zoho_settings(scope_missing=[])
    assert roles.status_code == 401 and roles.json() == {
        "code": "OAUTH_SCOPE_MISMATCH", "details": {}, "message": "Unauthorized", "status": "error"}
    assert users.status_code == 200


def test_faults_answer_with_zohos_bodies(sb, auth):
    sb.inject_fault("zoho", 429)
    limited = get(sb, auth, "/users")
    sb.inject_fault("zoho", 500)
    broken = get(sb, auth, "/users")
    assert limited.status_code == 429 and limited.json()["code"] == "TOO_MANY_REQUESTS"
    assert limited.json()["status"] == "error" and "Retry-After" not in limited.headers
    assert broken.status_code == 500 and broken.json()["code"] == "INTERNAL_ERROR"
    assert get(sb, auth, "/users").status_code == 200
    sb.zoho_settings(retry_after_header=True)
    try:
        sb.inject_fault("zoho", 429, retry_after=7)
        told = get(sb, auth, "/users")
    finally:
        sb.zoho_settings(retry_after_header=False)
    assert told.status_code == 429 and told.headers["Retry-After"] == "7"


def test_requests_over_the_concurrency_limit_get_429(sb, auth):
    sb.call("POST", "/_sandbox/faults", {"api": "zoho", "spec": "concurrency=2"})
    sb.zoho_settings(latency=0.6)
    try:
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(lambda _: get(sb, auth, "/org"), range(5)))
    finally:
        sb.zoho_settings(latency=0)
        sb.clear_faults("zoho")
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) >= 1 and statuses.count(429) >= 1, statuses
    assert all("concurrency" in a.json()["message"] for a in answers if a.status_code == 429)
    assert get(sb, auth, "/org").status_code == 200


def test_unknown_paths_and_methods_get_zoho_errors(sb, auth):
    assert get(sb, auth, "/settings/nothing").json()["code"] == "INVALID_URL_PATTERN"
    headers = {"Authorization": f"Zoho-oauthtoken {auth[0]}"}
    posted = requests.post(f"{auth[1]}/crm/v8/users", headers=headers, timeout=10)
    assert posted.status_code == 405 and posted.json()["code"] == "INVALID_REQUEST_METHOD"
    assert get(sb, auth, "/users/1").json()["message"] == "the id given seems to be invalid"
    assert sb.zoho_stats()["by_route"]["crm GET /crm/v8/users/{id}"] >= 1


def test_the_same_seed_gives_the_same_data():
    """Fresh sandboxes (the module's own has been edited): same seed and anchor, same records."""
    def snapshot(seed):
        with SandboxProcess(seed=seed, scale=0.05, anchor="2026-06-30", lifetime=120) as fresh:
            return {t: fresh.zoho_records(t) for t in ENVELOPES} | {"deleted": fresh.zoho_records("users", "DeletedUsers")}

    first, again, other = snapshot(5), snapshot(5), snapshot(6)
    assert first == again
    assert all(first[t] != other[t] for t in ("currencies", "profiles", "roles", "territories", "users"))
