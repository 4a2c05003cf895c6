"""OAuth 2.0 for Zoho CRM: access tokens from a self client's refresh token (spec §1).

``POST {ZOHO_ACCOUNTS_URL}/oauth/v2/token`` with ``grant_type=refresh_token`` answers an access
token, its ``expires_in`` and the ``api_domain`` of the organization's data centre, where every
API call goes (unless ``ZOHO_API_URL`` overrides it). Zoho Accounts reports failures with
HTTP 200 and a one-key body (``{"error": "invalid_code"}``), so an answer counts as a token only
when it carries ``access_token``; each error names the variable to fix. A token is reused until
shortly before it expires (a refresh token may mint only a few per ten minutes), and renewed
once when the API answers 401 ``INVALID_TOKEN`` anyway (expired early or revoked).
"""

from __future__ import annotations

import threading
import time

from crm_assets.sources.errors import FatalSourceError, SourceError
from crm_assets.sources.http import JsonHttp, Target
from crm_assets.sources.redaction import Redactor

DEFAULT_ACCOUNTS_URL = "https://accounts.zoho.com"
OAUTH_VARIABLES = "ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET and ZOHO_REFRESH_TOKEN"
EARLY_SECONDS = 60.0
TOKEN_TARGET = Target("ZOHO_ACCOUNTS_URL", OAUTH_VARIABLES)
# What each error of the token endpoint means for the operator (spec §1.6).
TOKEN_ERRORS = {
    "invalid_code": "the refresh token is wrong or revoked: set a fresh ZOHO_REFRESH_TOKEN",
    "invalid_client": (
        "the client is unknown: check ZOHO_CLIENT_ID, and that ZOHO_ACCOUNTS_URL is the data centre "
        "the client was created in"
    ),
    "invalid_client_secret": "the client secret is wrong: check ZOHO_CLIENT_SECRET",
}


class ZohoOAuth:
    """The Auth strategy of :class:`~crm_assets.sources.http.JsonHttp` for Zoho's API."""

    def __init__(
        self,
        transport: JsonHttp,
        redactor: Redactor,
        accounts_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
    ):
        self.transport = transport
        self.redactor = redactor
        self.token_url = accounts_url.rstrip("/") + "/oauth/v2/token"
        self._form = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
        }
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.api_domain: str | None = None
        self.refreshes = 0

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._refresh()
            return {"Authorization": f"Zoho-oauthtoken {self._token}"}

    def renew(self, rejected: dict[str, str]) -> bool:
        """Drop the rejected token (unless another thread already replaced it); worth one retry."""
        with self._lock:
            if rejected.get("Authorization") == f"Zoho-oauthtoken {self._token}":
                self._token = None
        return True

    def _refresh(self) -> None:
        try:
            body = self.transport.request("POST", self.token_url, TOKEN_TARGET, data=self._form)
        except SourceError as exc:
            # Zoho Accounts throttles minting with 400 "Access Denied" for the rest of a
            # ten-minute window (§1.4, §1.6): no retry within a run can succeed.
            if getattr(exc, "status", None) == 400 and "Access Denied" in str(exc):
                raise FatalSourceError(
                    f"{exc}; Zoho Accounts limits how many access tokens a refresh token mints: "
                    "wait ten minutes, and do not share ZOHO_REFRESH_TOKEN between many processes"
                ) from None
            raise
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            error = str(body.get("error") or "no access_token in the answer")
            meaning = TOKEN_ERRORS.get(error, f"check {OAUTH_VARIABLES} and ZOHO_ACCOUNTS_URL")
            raise FatalSourceError(
                self.redactor.redact(f"Zoho Accounts refused the refresh token ({error}): {meaning}")
            )
        self.redactor.add(token)
        self.refreshes += 1
        self._token = token
        # Older answers carried `expires_in_sec`, and then `expires_in` was in milliseconds (§1.2).
        lifetime = body.get("expires_in_sec") or body.get("expires_in") or 3600
        try:
            seconds = float(lifetime)
        except (TypeError, ValueError):
            seconds = 3600.0
        self._expires_at = time.monotonic() + max(seconds - EARLY_SECONDS, seconds / 2)
        domain = body.get("api_domain")
        if isinstance(domain, str) and domain:
            self.api_domain = domain.rstrip("/")
