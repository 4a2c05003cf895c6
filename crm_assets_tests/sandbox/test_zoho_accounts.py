"""The sandbox's Zoho Accounts over real HTTP: grants, the HTTP-200 error bodies, expiry and
revocation as the CRM sees them, and a request log without secrets."""

from __future__ import annotations

import time

import pytest
import requests

from crm_assets.sandbox import SandboxProcess
from crm_assets_tests.sandbox.zoho_http import crm_get, grant, token

INVALID_TOKEN = {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}
AUTHENTICATION_FAILURE = {"code": "AUTHENTICATION_FAILURE", "details": {}, "message": "Authentication failed",
                          "status": "error"}


@pytest.fixture(scope="module")
def sb():
    with SandboxProcess(seed=4, scale=0.05, lifetime=900) as sandbox:
        yield sandbox


def test_the_exports_name_the_accounts_server_and_credentials_but_no_api_url(sb):
    for name in ("ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN", "ZOHO_ACCOUNTS_URL", "ZOHO_START_DATE"):
        assert sb.env.get(name), name
    assert "ZOHO_API_URL" not in sb.env
    assert sb.env["ZOHO_ACCOUNTS_URL"] == sb.url + "/zoho_accounts"


@pytest.mark.parametrize("where", ["form", "query"])
def test_a_refresh_grant_answers_a_bearer_token_for_an_hour_and_the_api_domain(sb, where):
    fields = {"grant_type": "refresh_token", "client_id": sb.env["ZOHO_CLIENT_ID"],
              "client_secret": sb.env["ZOHO_CLIENT_SECRET"], "refresh_token": sb.env["ZOHO_REFRESH_TOKEN"]}
    url = sb.env["ZOHO_ACCOUNTS_URL"] + "/oauth/v2/token"
    answer = requests.post(url, data=fields, timeout=10) if where == "form" else requests.post(url, params=fields, timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"access_token", "scope", "api_domain", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["api_domain"] == sb.url + "/zoho"
    assert crm_get(sb, "/org", body["access_token"], body["api_domain"]).status_code == 200


@pytest.mark.parametrize(("override", "error"), [
    ({"client_id": "1000.NOSUCHCLIENT"}, "invalid_client"),
    ({"client_secret": "wrong"}, "invalid_client_secret"),
    ({"refresh_token": "1000.abc.def"}, "invalid_code"),
    ({"grant_type": "authorization_code", "code": "1000.used.code"}, "invalid_code"),
])
def test_token_endpoint_failures_come_with_http_200_and_one_key(sb, override, error):
    answer = grant(sb, **override)
    assert answer.status_code == 200
    assert answer.json() == {"error": error}


def test_an_authorization_code_is_exchanged_once_for_a_refresh_token(sb):
    code = sb.call("POST", "/_sandbox/zoho/grant_codes", {"redirect_uri": "http://127.0.0.1/cb"})["code"]
    assert grant(sb, grant_type="authorization_code", code=code, redirect_uri="http://elsewhere/cb").json() == {
        "error": "invalid_redirect_uri"}
    first = grant(sb, grant_type="authorization_code", code=code, redirect_uri="http://127.0.0.1/cb").json()
    assert first["expires_in"] == 3600 and first["refresh_token"].startswith("1000.")
    assert grant(sb, grant_type="authorization_code", code=code).json() == {"error": "invalid_code"}
    assert "access_token" in grant(sb, refresh_token=first["refresh_token"]).json()


def test_the_crm_wants_the_zoho_oauthtoken_scheme(sb):
    access, domain = token(sb)
    url = f"{domain}/crm/v8/org"
    assert requests.get(url, timeout=10).json() == AUTHENTICATION_FAILURE
    bearer = requests.get(url, headers={"Authorization": f"Bearer {access}"}, timeout=10)
    assert bearer.status_code == 401 and bearer.json() == AUTHENTICATION_FAILURE
    assert requests.get(url, params={"access_token": access}, timeout=10).status_code == 401
    garbage = crm_get(sb, "/org", "1000.not.atoken", domain)
    assert garbage.status_code == 401 and garbage.json() == INVALID_TOKEN


def test_an_access_token_expired_by_the_admin_gets_invalid_token_while_a_new_one_works(sb):
    access, domain = token(sb)
    assert crm_get(sb, "/users", access, domain).status_code == 200
    assert sb.zoho_expire_access_token(access) == 1
    dead = crm_get(sb, "/users", access, domain)
    assert dead.status_code == 401 and dead.json() == INVALID_TOKEN
    assert crm_get(sb, "/users").status_code == 200  # a refresh gives a working token


def test_access_tokens_can_be_made_to_die_after_some_requests(sb):
    sb.zoho_token_settings(access_token_max_uses=2)
    try:
        access, domain = token(sb)
        statuses = [crm_get(sb, "/org", access, domain).status_code for _ in range(3)]
    finally:
        sb.zoho_token_settings(access_token_max_uses=0)
    assert statuses == [200, 200, 401]


def test_a_token_whose_real_lifetime_is_shorter_still_says_3600_and_then_dies(sb):
    sb.zoho_token_settings(expires_in=1)
    try:
        body = grant(sb).json()
    finally:
        sb.zoho_token_settings(expires_in=3600)
    assert body["expires_in"] == 3600
    assert crm_get(sb, "/org", body["access_token"], body["api_domain"]).status_code == 200
    time.sleep(1.2)
    assert crm_get(sb, "/org", body["access_token"], body["api_domain"]).json() == INVALID_TOKEN


def test_the_31st_access_token_of_a_refresh_token_deletes_the_oldest(sb):
    refresh = sb.call("POST", "/_sandbox/zoho/tokens/refresh_tokens")["refresh_token"]
    minted = [grant(sb, refresh_token=refresh).json() for _ in range(31)]
    domain = minted[0]["api_domain"]
    assert crm_get(sb, "/org", minted[0]["access_token"], domain).json() == INVALID_TOKEN
    assert crm_get(sb, "/org", minted[1]["access_token"], domain).status_code == 200


def test_a_revoked_refresh_token_gets_invalid_code_and_its_access_tokens_die(sb):
    refresh = sb.call("POST", "/_sandbox/zoho/tokens/refresh_tokens")["refresh_token"]
    access = grant(sb, refresh_token=refresh).json()["access_token"]
    assert sb.zoho_revoke_refresh_token(refresh) == 1
    assert grant(sb, refresh_token=refresh).json() == {"error": "invalid_code"}
    assert crm_get(sb, "/org", access, sb.url + "/zoho").json() == INVALID_TOKEN
    assert "access_token" in grant(sb).json()  # the exported one still works


def test_the_revoke_endpoint_revokes_a_refresh_token(sb):
    refresh = sb.call("POST", "/_sandbox/zoho/tokens/refresh_tokens")["refresh_token"]
    answer = requests.post(sb.env["ZOHO_ACCOUNTS_URL"] + "/oauth/v2/token/revoke", params={"token": refresh}, timeout=10)
    assert answer.status_code == 200 and answer.json() == {"status": "success"}
    assert grant(sb, refresh_token=refresh).json() == {"error": "invalid_code"}


def test_a_mint_limit_answers_access_denied_with_400(sb):
    refresh = sb.call("POST", "/_sandbox/zoho/tokens/refresh_tokens")["refresh_token"]
    sb.zoho_token_settings(mint_limit={"count": 2, "seconds": 600})
    try:
        answers = [grant(sb, refresh_token=refresh) for _ in range(3)]
    finally:
        sb.zoho_token_settings(mint_limit=None)
    assert [a.status_code for a in answers] == [200, 200, 400]
    assert answers[2].json()["error"] == "Access Denied"
    assert "too many requests continuously" in answers[2].json()["error_description"]


def test_token_requests_are_counted_and_the_log_holds_no_secret(sb):
    sb.reset_zoho_stats()
    access, _ = token(sb)
    grant(sb, client_secret="wrong")
    crm_get(sb, "/users", access, sb.url + "/zoho", headers={"If-Modified-Since": "2020-01-01T00:00:00+05:30"})
    stats = sb.zoho_stats()
    assert stats["token_requests"] == 2 and stats["crm_requests"] == 1
    assert stats["by_route"]["accounts /oauth/v2/token issued"] == 1
    assert stats["by_route"]["accounts /oauth/v2/token invalid_client_secret"] == 1
    log = sb.zoho_requests()
    assert [e["api"] for e in log] == ["accounts", "accounts", "crm"]
    assert log[2]["headers"]["If-Modified-Since"] == "2020-01-01T00:00:00+05:30"
    assert log[2]["auth_scheme"] == "Zoho-oauthtoken"
    assert dict(log[0]["query"])["grant_type"] == "refresh_token"
    text = requests.get(sb.url + "/_sandbox/zoho/requests", timeout=10).text
    issued = sb.zoho_issued_tokens()
    secrets = [sb.env["ZOHO_CLIENT_SECRET"], sb.env["ZOHO_REFRESH_TOKEN"], *issued["access_tokens"], *issued["refresh_tokens"]]
    assert access in secrets
    leaked = [s for s in secrets if s in text]
    assert not leaked
