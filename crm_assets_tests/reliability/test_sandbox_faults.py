"""The sandbox's fault kinds reach every API, seen from a plain HTTP client: a 429 with
``Retry-After``, a 503, a reset connection, a body that stops short, a body cut with a matching
length, an answer slower than the client's timeout, and a credential that dies mid-run."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
import requests

from crm_assets.sandbox import SandboxProcess

Call = Callable[[float], requests.Response]


def calls(sb: SandboxProcess) -> dict[str, Call]:
    """One harmless request per API, taking the client's timeout."""
    env = sb.env
    session = sb.salesforce_session()
    sf_login = base64.b64encode(f"{env['SALESFORCE_CLIENT_ID']}:{env['SALESFORCE_CLIENT_SECRET']}".encode()).decode()
    zoho_form = {"grant_type": "refresh_token", "client_id": env["ZOHO_CLIENT_ID"],
                 "client_secret": env["ZOHO_CLIENT_SECRET"], "refresh_token": env["ZOHO_REFRESH_TOKEN"]}
    harvest_form = {"grant_type": "refresh_token", "client_id": env["HARVEST_CLIENT_ID"],
                    "client_secret": env["HARVEST_CLIENT_SECRET"], "refresh_token": env["HARVEST_REFRESH_TOKEN"]}
    zoho_token = requests.post(f"{env['ZOHO_ACCOUNTS_URL']}/oauth/v2/token", data=zoho_form, timeout=30).json()["access_token"]
    return {
        "harvest": lambda t: requests.get(f"{sb.harvest_url}/clients", headers=sb.harvest_headers(), timeout=t),
        "harvest_id": lambda t: requests.post(f"{env['HARVEST_ID_URL']}/api/v2/oauth2/token", data=harvest_form, timeout=t),
        "zoho": lambda t: requests.get(f"{sb.url}/zoho/crm/v8/settings/roles",
                                       headers={"Authorization": f"Zoho-oauthtoken {zoho_token}"}, timeout=t),
        "zoho_accounts": lambda t: requests.post(f"{env['ZOHO_ACCOUNTS_URL']}/oauth/v2/token", data=zoho_form, timeout=t),
        "salesforce": lambda t: requests.get(f"{session['instance_url']}/services/data/v59.0/sobjects",
                                             headers={"Authorization": f"Bearer {session['session_id']}"},
                                             verify=env["SALESFORCE_CA_BUNDLE"], timeout=t),
        "salesforce_login": lambda t: requests.post(f"{env['SALESFORCE_LOGIN_URL']}/services/oauth2/token",
                                                    data={"grant_type": "client_credentials"},
                                                    headers={"Authorization": f"Basic {sf_login}"},
                                                    verify=env["SALESFORCE_CA_BUNDLE"], timeout=t),
    }


@pytest.fixture
def sb(sandbox: SandboxProcess):
    sandbox.clear_faults()
    yield sandbox
    sandbox.clear_faults()


@pytest.mark.parametrize("api", ["harvest", "harvest_id", "zoho", "zoho_accounts", "salesforce", "salesforce_login"])
def test_every_fault_kind_reaches_the_api(sb, api):
    call = calls(sb)[api]
    healthy = call(10)
    assert healthy.status_code == 200 and healthy.json()

    if api == "zoho":  # Zoho documents no Retry-After; the emulator adds one when asked to
        sb.zoho_settings(retry_after_header=True)
    sb.inject_fault(api, 429, retry_after=7)
    throttled = call(10)
    sb.zoho_settings(retry_after_header=False)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    sb.inject_fault(api, 503)
    assert call(10).status_code == 503

    sb.plan_fault(api, "reset")
    with pytest.raises(requests.ConnectionError):
        call(10)
    sb.plan_fault(api, "truncate")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        call(10)
    sb.plan_fault(api, "cut")
    cut = call(10)
    assert cut.status_code == 200 and len(cut.content) == len(healthy.content) // 2
    with pytest.raises(ValueError):
        cut.json()
    sb.add_fault_rule(api, "slow=1.0")
    sb.plan_fault(api, "slow")
    with pytest.raises(requests.Timeout):
        call(0.3)
    assert call(10).status_code == 200, "the faults were used up"


def test_credentials_die_mid_run_when_an_expiry_is_due(sb):
    env = sb.env
    token = requests.post(f"{env['HARVEST_ID_URL']}/api/v2/oauth2/token", timeout=30, data={
        "grant_type": "refresh_token", "client_id": env["HARVEST_CLIENT_ID"],
        "client_secret": env["HARVEST_CLIENT_SECRET"], "refresh_token": env["HARVEST_REFRESH_TOKEN"]}).json()["access_token"]
    headers = {**sb.harvest_headers(), "Authorization": f"Bearer {token}"}
    assert requests.get(f"{sb.harvest_url}/clients", headers=headers, timeout=10).status_code == 200
    sb.plan_fault("harvest", "expire")
    for _ in range(2):  # the expiring answer, then the token stays dead
        assert requests.get(f"{sb.harvest_url}/clients", headers=headers, timeout=10).status_code == 401

    session = sb.salesforce_session()
    url = f"{session['instance_url']}/services/data/v59.0/sobjects"
    auth = {"Authorization": f"Bearer {session['session_id']}"}
    assert requests.get(url, headers=auth, verify=env["SALESFORCE_CA_BUNDLE"], timeout=10).status_code == 200
    sb.plan_fault("salesforce", "expire")
    for _ in range(2):
        answer = requests.get(url, headers=auth, verify=env["SALESFORCE_CA_BUNDLE"], timeout=10)
        assert answer.status_code == 401 and answer.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_a_random_expiry_spares_a_credential_on_its_first_request(sb):
    sb.add_fault_rule("salesforce", "expire@1")
    env = sb.env
    session = sb.salesforce_session()
    url = f"{session['instance_url']}/services/data/v59.0/sobjects"
    auth = {"Authorization": f"Bearer {session['session_id']}"}
    assert requests.get(url, headers=auth, verify=env["SALESFORCE_CA_BUNDLE"], timeout=10).status_code == 200
    assert requests.get(url, headers=auth, verify=env["SALESFORCE_CA_BUNDLE"], timeout=10).status_code == 401


def test_bad_fault_specs_are_refused(sb):
    for rule in ("respond@0.1", "reset@2", "slow=abc"):
        with pytest.raises(Exception, match="HTTP 400"):
            sb.add_fault_rule("harvest", rule)
