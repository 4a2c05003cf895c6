"""How a client reaches the sandbox's Salesforce: simple-salesforce 1.12.10, unchanged, given a
``requests.Session`` (spec §2.0).

Two things the session does that the library cannot be told otherwise:

- trust ``SALESFORCE_CA_BUNDLE``, forced per request in the adapter, because requests lets
  ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` (set on this machine and in CI) override ``session.verify``;
- send the constructor's fixed login host (``https://{domain}.salesforce.com``) to
  ``SALESFORCE_LOGIN_URL``, since the constructor cannot be given another host.

Everything after login goes where Salesforce's login answer points (the instance URL), untouched.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce

from crm_assets.sandbox import SandboxProcess

MY_DOMAIN = "crm-assets-sandbox.my"  # the constructor refuses client credentials on login/test (spec §8)


class SandboxAdapter(HTTPAdapter):
    """Verifies TLS against one CA file and maps Salesforce login hosts to the sandbox's."""

    def __init__(self, ca_bundle: str, hosts: dict[str, str]):
        super().__init__()
        self.ca_bundle = ca_bundle
        self.hosts = hosts

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        kwargs["verify"] = self.ca_bundle
        parts = urlsplit(request.url)
        if parts.netloc in self.hosts:
            request.url = parts._replace(netloc=self.hosts[parts.netloc]).geturl()
        return super().send(request, **kwargs)


def sandbox_session(env: dict[str, str]) -> requests.Session:
    login = urlsplit(env["SALESFORCE_LOGIN_URL"]).netloc
    session = requests.Session()
    session.mount(
        "https://",
        SandboxAdapter(
            env["SALESFORCE_CA_BUNDLE"],
            {
                "login.salesforce.com": login,
                "test.salesforce.com": login,
                f"{MY_DOMAIN}.salesforce.com": login,
            },
        ),
    )
    return session


def password_client(env: dict[str, str], **kwargs: Any) -> Salesforce:
    """Username + password + security token, SOAP login (the constructor's first variant)."""
    return Salesforce(
        username=env["SALESFORCE_USERNAME"],
        password=env["SALESFORCE_PASSWORD"],
        security_token=env["SALESFORCE_SECURITY_TOKEN"],
        session=sandbox_session(env),
        **kwargs,
    )


def client_credentials_client(env: dict[str, str]) -> Salesforce:
    return Salesforce(
        consumer_key=env["SALESFORCE_CLIENT_ID"],
        consumer_secret=env["SALESFORCE_CLIENT_SECRET"],
        domain=MY_DOMAIN,
        session=sandbox_session(env),
    )


def session_client(sb: SandboxProcess) -> Salesforce:
    """Session id + instance URL: no login at all."""
    minted = sb.salesforce_session()
    return Salesforce(
        session_id=minted["session_id"], instance_url=minted["instance_url"], session=sandbox_session(sb.env)
    )
