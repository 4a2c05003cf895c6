"""A logged-in Salesforce connection for one run: login, trusted HTTPS, renewal, redaction.

Loaded only when a run connects (simple-salesforce imports zeep, which is slow), so that the
definitions stay quick to load. See :mod:`.resource` for why logins go through the library's
lower-level helpers and why the CA bundle is forced in the adapter.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
)
from simple_salesforce.login import SalesforceLogin, token_login

from crm_assets.destinations.salesforce.resource import SalesforceResource, SalesforceSetupError
from crm_assets.sources.redaction import Redactor

_SHARED_LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")
# Row-level and request-level error codes that another attempt can clear.
TRANSIENT_CODES = {
    "UNABLE_TO_LOCK_ROW",
    "REQUEST_LIMIT_EXCEEDED",
    "TooManyLockFailure",
    "Timeout",
    "ServerUnavailable",
}
T = TypeVar("T")


class _TrustedAdapter(HTTPAdapter):
    """Forces the CA bundle and a timeout on each request, and counts requests."""

    def __init__(self, ca_bundle: str | None, timeout: float):
        super().__init__()
        self.ca_bundle, self.timeout, self.requests = ca_bundle, timeout, 0

    def send(self, request, **kwargs):
        if self.ca_bundle:
            kwargs["verify"] = self.ca_bundle
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        self.requests += 1
        return super().send(request, **kwargs)


def is_transient(exc: BaseException) -> bool:
    """5xx and 429 answers, connection resets and timeouts, lock and request-limit refusals."""
    if isinstance(exc, requests.RequestException):
        return True
    if isinstance(exc, SalesforceAuthenticationFailed):
        return isinstance(exc.code, int) and (exc.code >= 500 or exc.code == 429)
    if isinstance(exc, SalesforceGeneralError) and ((exc.status or 0) >= 500 or exc.status == 429):
        return True
    if isinstance(exc, SalesforceError):
        content = exc.content
        codes = [content.get("exceptionCode")] if isinstance(content, dict) else []
        if isinstance(content, list):
            codes = [e.get("errorCode") for e in content if isinstance(e, dict)]
        return any(code in TRANSIENT_CODES for code in codes)
    return False


def is_expired_session(exc: BaseException) -> bool:
    """REST answers 401; Bulk 1.0 answers 400 with ``exceptionCode: InvalidSessionId``."""
    if isinstance(exc, SalesforceExpiredSession):
        return True
    if isinstance(exc, SalesforceMalformedRequest) and isinstance(exc.content, dict):
        return exc.content.get("exceptionCode") == "InvalidSessionId"
    return False


class SalesforceApi:
    """One run's connection: the simple-salesforce client, renewal and redaction."""

    def __init__(
        self, resource: SalesforceResource, api_version: str, retry_delay: float = 1.0, retry_limit: int = 5
    ):
        self.resource = resource
        self.api_version = api_version
        self.retry_delay, self.retry_limit = retry_delay, retry_limit
        self.method = resource.auth_method()
        self.redactor = Redactor(
            resource.password, resource.security_token, resource.client_secret, resource.session_id
        )
        self.http = requests.Session()
        self.adapter = _TrustedAdapter(resource.ca_bundle, resource.timeout_seconds)
        self.http.mount("https://", self.adapter)
        self.renewals = 0
        self.client: Salesforce = self._retrying(self._login)

    @property
    def api_calls(self) -> int:
        return self.adapter.requests

    def redact(self, text: object) -> str:
        return self.redactor.redact(text)

    def _login(self) -> Salesforce:
        r = self.resource
        try:
            if self.method == "password":
                session_id, instance = SalesforceLogin(
                    username=r.username,
                    password=r.password,
                    security_token=r.security_token or "",
                    sf_version=self.api_version,
                    session=self.http,
                    scratch_url=r.login_url.rstrip("/"),
                )
            elif self.method == "client_credentials":
                if any(host in r.login_url for host in _SHARED_LOGIN_HOSTS):
                    raise SalesforceSetupError(
                        "OAuth client credentials need your My Domain URL in SALESFORCE_LOGIN_URL "
                        f"(such as https://acme.my.salesforce.com), not {r.login_url}"
                    )
                basic = base64.b64encode(f"{r.client_id}:{r.client_secret}".encode()).decode()
                session_id, instance = token_login(
                    f"{r.login_url.rstrip('/')}/services/oauth2/token",
                    {"grant_type": "client_credentials"},
                    "",
                    r.client_id,
                    {"Authorization": f"Basic {basic}"},
                    None,
                    self.http,
                )
            else:
                session_id, instance = r.session_id, r.instance_url.split("://", 1)[-1].rstrip("/")
        except SalesforceAuthenticationFailed as exc:
            if is_transient(exc):
                raise  # the login server is unwell or busy, not the credentials: worth another attempt
            raise SalesforceSetupError(
                f"Salesforce login refused ({self.method}): {self.redact(exc)}"
            ) from None
        self.redactor.add(session_id)
        return Salesforce(
            session_id=session_id, instance=instance, version=self.api_version, session=self.http
        )

    def renew(self) -> None:
        """Log in again after the session expired (once per expiry)."""
        if self.method == "session_id":
            raise SalesforceSetupError(
                "the Salesforce session expired and a session-id login cannot renew it: set a fresh "
                "SALESFORCE_SESSION_ID (or log in with a username and password, or client credentials)"
            )
        self.renewals += 1
        self.client = self._retrying(self._login)

    def call(self, fn: Callable[[Salesforce], T]) -> T:
        """`fn(client)`, renewing the session once if it has expired."""
        try:
            return fn(self.client)
        except SalesforceError as exc:
            if not is_expired_session(exc):
                raise
        self.renew()
        try:
            return fn(self.client)
        except SalesforceError as exc:
            if is_expired_session(exc):
                raise SalesforceSetupError("the renewed Salesforce session was refused at once") from None
            raise

    def _retrying(self, fn: Callable[[], T]) -> T:
        """`fn()`, again after transient failures (only for calls that are safe to repeat)."""
        delay = self.retry_delay
        for attempt in range(self.retry_limit + 1):
            try:
                return fn()
            except (SalesforceError, requests.RequestException) as exc:
                if attempt == self.retry_limit or not is_transient(exc):
                    raise
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def read(self, fn: Callable[[Salesforce], T]) -> T:
        """A call that changes nothing, renewed and retried as needed."""
        return self._retrying(lambda: self.call(fn))

    def describe(self, object_name: str) -> dict[str, Any]:
        return self.read(lambda sf: sf.restful(f"sobjects/{object_name}/describe"))
