"""The three ways the platform authenticates, with simple-salesforce unchanged, over real HTTPS that
only the sandbox's CA bundle makes trusted; and the exports that point a client at it."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import requests
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceExpiredSession
from simple_salesforce.login import token_login

from crm_assets_tests.sandbox.salesforce_client import (
    client_credentials_client,
    password_client,
    sandbox_session,
    session_client,
)

EXPORTS = (
    "SALESFORCE_LOGIN_URL",
    "SALESFORCE_INSTANCE_URL",
    "SALESFORCE_USERNAME",
    "SALESFORCE_PASSWORD",
    "SALESFORCE_SECURITY_TOKEN",
    "SALESFORCE_CLIENT_ID",
    "SALESFORCE_CLIENT_SECRET",
    "SALESFORCE_CA_BUNDLE",
)


def test_the_sandbox_exports_every_salesforce_variable(sfsb):
    assert all(sfsb.env.get(name) for name in EXPORTS)
    assert sfsb.env["SALESFORCE_LOGIN_URL"].startswith("https://localhost:")
    assert sfsb.env["SALESFORCE_INSTANCE_URL"].startswith("https://127.0.0.1:")
    assert Path(sfsb.env["SALESFORCE_CA_BUNDLE"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    info = sfsb.call("GET", "/_sandbox/salesforce/info")
    assert (info["login_url"], info["instance_url"]) == (
        sfsb.env["SALESFORCE_LOGIN_URL"],
        sfsb.env["SALESFORCE_INSTANCE_URL"],
    )
    assert {"Account", "Contact", "Harvest_Project__c"} <= set(info["objects"])


def test_password_and_security_token_log_in_over_soap_and_data_goes_to_the_instance(sfsb):
    sf = password_client(sfsb.env)
    assert sf.auth_type == "password"
    assert sf.base_url == f"{sfsb.env['SALESFORCE_INSTANCE_URL']}/services/data/v59.0/"
    assert sf.Account.describe()["name"] == "Account"
    login, describe = sfsb.salesforce_requests()
    assert (login["api"], login["path"], login["status"]) == ("soap", "/services/Soap/u/59.0", 200)
    assert login["host"].startswith("localhost:") and describe["host"].startswith("127.0.0.1:")
    assert sfsb.env["SALESFORCE_PASSWORD"] not in str(login)
    assert sf.session_id in sfsb.salesforce_issued_sessions()
    assert sf.session_id not in str(sfsb.salesforce_requests())


def test_soap_login_also_reaches_the_sandbox_through_scratch_url(sfsb):
    session_id, instance = SalesforceLogin(
        username=sfsb.env["SALESFORCE_USERNAME"],
        password=sfsb.env["SALESFORCE_PASSWORD"],
        security_token=sfsb.env["SALESFORCE_SECURITY_TOKEN"],
        scratch_url=sfsb.env["SALESFORCE_LOGIN_URL"],
        session=sandbox_session(sfsb.env),
    )
    assert instance == sfsb.env["SALESFORCE_INSTANCE_URL"].removeprefix("https://")
    sf = Salesforce(session_id=session_id, instance=instance, session=sandbox_session(sfsb.env))
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 0


@pytest.mark.parametrize(
    "field, value",
    [
        ("SALESFORCE_PASSWORD", "wrong"),
        ("SALESFORCE_SECURITY_TOKEN", ""),
        ("SALESFORCE_USERNAME", "nobody@example.com"),
    ],
)
def test_bad_credentials_get_salesforces_login_fault(sfsb, field, value):
    with pytest.raises(SalesforceAuthenticationFailed) as raised:
        password_client({**sfsb.env, field: value})
    assert raised.value.code == "INVALID_LOGIN"
    assert raised.value.auth_message == "Invalid username, password, security token; or user locked out."


def test_oauth_client_credentials_on_a_my_domain(sfsb):
    sf = client_credentials_client(sfsb.env)
    assert sf.sf_instance == sfsb.env["SALESFORCE_INSTANCE_URL"].removeprefix("https://")
    assert sf.Contact.describe()["name"] == "Contact"
    token = sfsb.salesforce_requests()[0]
    assert token["api"] == "oauth" and token["body"] == {"grant_type": "client_credentials"}


def test_oauth_client_credentials_through_token_login_on_the_login_url(sfsb):
    """The path a client takes when the login URL is not a ``*.salesforce.com`` host (spec §2.0)."""
    basic = base64.b64encode(
        f"{sfsb.env['SALESFORCE_CLIENT_ID']}:{sfsb.env['SALESFORCE_CLIENT_SECRET']}".encode()
    )
    token, instance = token_login(
        f"{sfsb.env['SALESFORCE_LOGIN_URL']}/services/oauth2/token",
        {"grant_type": "client_credentials"},
        "unused",
        sfsb.env["SALESFORCE_CLIENT_ID"],
        {"Authorization": f"Basic {basic.decode()}"},
        None,
        sandbox_session(sfsb.env),
    )
    sf = Salesforce(session_id=token, instance=instance, session=sandbox_session(sfsb.env))
    assert sf.query("SELECT Username FROM User")["records"][0]["Username"] == sfsb.env["SALESFORCE_USERNAME"]


def test_oauth_client_credentials_with_a_wrong_secret_is_refused(sfsb):
    with pytest.raises(SalesforceAuthenticationFailed) as raised:
        client_credentials_client({**sfsb.env, "SALESFORCE_CLIENT_SECRET": "nope"})
    assert raised.value.code == "invalid_client"


def test_oauth_password_grant(sfsb):
    sf = Salesforce(
        username=sfsb.env["SALESFORCE_USERNAME"],
        password=sfsb.env["SALESFORCE_PASSWORD"] + sfsb.env["SALESFORCE_SECURITY_TOKEN"],
        consumer_key=sfsb.env["SALESFORCE_CLIENT_ID"],
        consumer_secret=sfsb.env["SALESFORCE_CLIENT_SECRET"],
        session=sandbox_session(sfsb.env),
    )
    assert sf.query("SELECT Id FROM User")["totalSize"] == 1
    with pytest.raises(SalesforceAuthenticationFailed) as raised:
        Salesforce(
            username=sfsb.env["SALESFORCE_USERNAME"],
            password=sfsb.env["SALESFORCE_PASSWORD"],  # no token
            consumer_key=sfsb.env["SALESFORCE_CLIENT_ID"],
            consumer_secret=sfsb.env["SALESFORCE_CLIENT_SECRET"],
            session=sandbox_session(sfsb.env),
        )
    assert (raised.value.code, raised.value.auth_message) == ("invalid_grant", "authentication failure")


def test_session_id_and_instance_url_need_no_login_and_cannot_renew(sfsb):
    sf = session_client(sfsb)
    assert sf.auth_type == "direct"
    assert sf.Account.describe()["name"] == "Account"
    sfsb.salesforce_expire_sessions()
    with pytest.raises(SalesforceExpiredSession) as raised:
        sf.Account.describe()
    assert raised.value.status == 401 and raised.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
    assert [r["api"] for r in sfsb.salesforce_requests()] == ["rest", "rest"]


def test_the_login_host_serves_no_data(sfsb):
    minted = sfsb.salesforce_session()
    sf = Salesforce(
        session_id=minted["session_id"],
        instance_url=sfsb.env["SALESFORCE_LOGIN_URL"],
        session=sandbox_session(sfsb.env),
    )
    with pytest.raises(Exception) as raised:
        sf.Account.describe()
    assert raised.value.status == 404


def test_https_is_not_trusted_without_the_sandbox_ca(sfsb):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(sfsb.env["SALESFORCE_INSTANCE_URL"] + "/services/data", timeout=10)
    answer = sandbox_session(sfsb.env).get(sfsb.env["SALESFORCE_INSTANCE_URL"] + "/services/data", timeout=10)
    assert {"version": "59.0", "label": "Winter '24", "url": "/services/data/v59.0"} in answer.json()
