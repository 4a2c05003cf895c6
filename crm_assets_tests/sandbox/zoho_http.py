"""A few lines of Zoho HTTP for the sandbox tests: a token grant, and GETs with the token."""

from __future__ import annotations

from datetime import datetime

import requests


def grant(sb, **overrides) -> requests.Response:
    """``POST {ZOHO_ACCOUNTS_URL}/oauth/v2/token`` with the refresh-token grant, as a form."""
    form = {"grant_type": "refresh_token", "client_id": sb.env["ZOHO_CLIENT_ID"],
            "client_secret": sb.env["ZOHO_CLIENT_SECRET"], "refresh_token": sb.env["ZOHO_REFRESH_TOKEN"], **overrides}
    return requests.post(sb.env["ZOHO_ACCOUNTS_URL"] + "/oauth/v2/token", data=form, timeout=10)


def token(sb) -> tuple[str, str]:
    """A fresh access token and the api_domain it names."""
    body = grant(sb).json()
    return body["access_token"], body["api_domain"]


def crm_get(sb, path: str, access_token: str | None = None, api_domain: str | None = None,
            headers: dict | None = None, **params) -> requests.Response:
    """``GET <api_domain>/crm/v8<path>`` with ``Authorization: Zoho-oauthtoken``."""
    if access_token is None:
        access_token, api_domain = token(sb)
    auth = {"Authorization": f"Zoho-oauthtoken {access_token}", **(headers or {})}
    return requests.get(f"{api_domain}/crm/v8{path}", params=params, headers=auth, timeout=30)


def when(text: str) -> datetime:
    """A Zoho timestamp (``Z`` or ``±HH:MM``) as an aware datetime."""
    return datetime.fromisoformat(text)
