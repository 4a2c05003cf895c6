"""The sandbox's Harvest ID over real HTTP: the grants, the accounts, and tokens the API accepts."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from crm_assets.sandbox import SandboxProcess

UA = {"User-Agent": "crm_assets tests (dev@example.com)"}
INVALID_TOKEN = {
    "error": "invalid_token",
    "error_description": "The access token provided is expired, revoked, malformed or invalid for other reasons.",
}


@pytest.fixture(scope="module")
def sb():
    with SandboxProcess(seed=3, scale=0.1, lifetime=900) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def default_settings(sb):
    yield
    sb.call("POST", "/_sandbox/harvest_id/settings", {"expires_in": 1209600, "max_uses": 0, "reuse_refresh_tokens": True})


def token_request(sb, fields: dict, as_json: bool = False) -> requests.Response:
    body = {"client_id": sb.env["HARVEST_CLIENT_ID"], "client_secret": sb.env["HARVEST_CLIENT_SECRET"], **fields}
    url = sb.env["HARVEST_ID_URL"] + "/api/v2/oauth2/token"
    return requests.post(url, json=body, headers=UA, timeout=10) if as_json else requests.post(url, data=body, headers=UA, timeout=10)


def refresh(sb, refresh_token: str | None = None, as_json: bool = False) -> requests.Response:
    token = refresh_token or sb.env["HARVEST_REFRESH_TOKEN"]
    return token_request(sb, {"grant_type": "refresh_token", "refresh_token": token}, as_json)


def api_get(sb, access_token: str, path: str = "/company") -> requests.Response:
    headers = {**UA, "Authorization": f"Bearer {access_token}", "Harvest-Account-Id": sb.env["HARVEST_ACCOUNT_ID"]}
    return requests.get(sb.env["HARVEST_API_URL"] + path, headers=headers, timeout=10)


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_a_refresh_grant_gives_a_token_the_api_accepts_and_a_new_refresh_token(sb, as_json):
    answer = refresh(sb, as_json=as_json)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 1209600
    assert body["refresh_token"] != sb.env["HARVEST_REFRESH_TOKEN"]
    assert api_get(sb, body["access_token"]).json()["name"] == "Sandbox Studio"
    assert refresh(sb, body["refresh_token"]).status_code == 200  # the rotated token works too


def test_strict_rotation_spends_a_refresh_token_once(sb):
    sb.call("POST", "/_sandbox/harvest_id/settings", {"reuse_refresh_tokens": False})
    first = sb.call("POST", "/_sandbox/harvest_id/refresh_tokens")["refresh_token"]
    rotated = refresh(sb, first).json()["refresh_token"]
    again = refresh(sb, first)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert refresh(sb, rotated).status_code == 200


def test_wrong_client_credentials_and_grants_get_oauth_errors(sb):
    bad_secret = token_request(sb, {"grant_type": "refresh_token", "refresh_token": sb.env["HARVEST_REFRESH_TOKEN"],
                                    "client_secret": "wrong"})
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
    assert set(bad_secret.json()) == {"error", "error_description"}
    assert refresh(sb, "sbx-rt-unknown").json()["error"] == "invalid_grant"
    assert token_request(sb, {"grant_type": "password"}).json()["error"] == "unsupported_grant_type"


def test_the_authorization_code_flow(sb):
    authorize = sb.env["HARVEST_ID_URL"] + "/oauth2/authorize"
    params = {"client_id": sb.env["HARVEST_CLIENT_ID"], "response_type": "code", "state": "xyz",
              "redirect_uri": "http://127.0.0.1:9/callback"}
    redirect = requests.get(authorize, params=params, allow_redirects=False, timeout=10)
    assert redirect.status_code == 302
    location = urlsplit(redirect.headers["Location"])
    assert location.netloc == "127.0.0.1:9" and location.path == "/callback"
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["state"] == "xyz" and query["scope"] == f"harvest:{sb.env['HARVEST_ACCOUNT_ID']}"
    granted = token_request(sb, {"grant_type": "authorization_code", "code": query["code"]})
    assert granted.status_code == 200
    assert api_get(sb, granted.json()["access_token"]).status_code == 200
    reused = token_request(sb, {"grant_type": "authorization_code", "code": query["code"]})
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    implicit = requests.get(authorize, params={**params, "response_type": "token"}, allow_redirects=False, timeout=10)
    fragment = {k: v[0] for k, v in parse_qs(urlsplit(implicit.headers["Location"]).fragment).items()}
    assert "refresh_token" not in fragment
    assert api_get(sb, fragment["access_token"]).status_code == 200


def test_expired_revoked_and_used_up_tokens_get_invalid_token(sb):
    expiring, revoked = (refresh(sb).json()["access_token"] for _ in range(2))
    assert sb.call("POST", "/_sandbox/harvest_id/expire", {"access_token": expiring})["expired"] == 1
    sb.call("POST", "/_sandbox/harvest_id/revoke", {"access_token": revoked})
    for token in (expiring, revoked, "sbx-at-never-issued"):
        answer = api_get(sb, token)
        assert answer.status_code == 401 and answer.json() == INVALID_TOKEN
    sb.call("POST", "/_sandbox/harvest_id/settings", {"max_uses": 2})
    limited = refresh(sb).json()["access_token"]
    assert [api_get(sb, limited).status_code for _ in range(3)] == [200, 200, 401]
    assert api_get(sb, sb.env["HARVEST_ACCESS_TOKEN"]).status_code == 200  # the personal token still works


def test_the_accounts_listing(sb):
    token = refresh(sb).json()["access_token"]
    listing = requests.get(sb.env["HARVEST_ID_URL"] + "/api/v2/accounts",
                           headers={**UA, "Authorization": f"Bearer {token}"}, timeout=10)
    body = listing.json()
    assert set(body) == {"user", "accounts"} and body["user"]["email"]
    assert {(a["id"], a["product"]) for a in body["accounts"]} == {
        (int(sb.env["HARVEST_ACCOUNT_ID"]), "harvest"), (int(sb.env["HARVEST_ACCOUNT_ID"]) + 1, "forecast")}
    sb.call("POST", "/_sandbox/harvest_id/accounts", {"id": 42, "name": "Second Studio", "product": "harvest"})
    try:
        again = requests.get(sb.env["HARVEST_ID_URL"] + "/api/v2/accounts",
                             headers={**UA, "Authorization": f"Bearer {token}"}, timeout=10).json()
        assert {"id": 42, "name": "Second Studio", "product": "harvest"} in again["accounts"]
    finally:
        sb.call("DELETE", "/_sandbox/harvest_id/accounts/42")
    anonymous = requests.get(sb.env["HARVEST_ID_URL"] + "/api/v2/accounts", headers=UA, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json() == INVALID_TOKEN
