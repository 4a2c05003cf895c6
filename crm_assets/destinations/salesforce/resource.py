"""The Salesforce resource: three ways to log in, a trusted HTTPS session, one renewal.

simple-salesforce's own constructor can only reach ``https://{domain}.salesforce.com``; this
resource logs in through its lower-level helpers instead (SOAP login with ``scratch_url``, the
OAuth token endpoint with ``token_login``), so the login URL may be production, ``test``, a My
Domain or a local sandbox, and then builds the client from the session id and the instance URL
that login returned, which is where data calls go.

- ``SALESFORCE_CA_BUNDLE`` is forced on every request by the session's adapter: requests lets
  ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override ``session.verify``, so setting the
  attribute alone would be ignored on machines that set those variables. The adapter also
  gives every request a timeout (simple-salesforce sets none) and counts the API calls.
- Bulk 1.0 never renews a session. :meth:`SalesforceApi.call` renews once when a call meets an
  expired session and calls again; a session-id login cannot renew, and says which variable
  to refresh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from crm_assets.destinations.machinery import PushFailure, SyncConfigurationError

if TYPE_CHECKING:
    from crm_assets.destinations.salesforce.api import SalesforceApi

DEFAULT_LOGIN_URL = "https://login.salesforce.com"
DEFAULT_API_VERSION = "59.0"


class SalesforceSetupError(PushFailure, SyncConfigurationError):
    """Credentials missing, refused, or a session that cannot be renewed: nothing can be sent."""


class SalesforceResource(dg.ConfigurableResource):
    """Salesforce credentials and connection settings (the contract's SALESFORCE_* variables).

    Set one way to log in: username + password (+ security token), OAuth client credentials
    (client id + secret, with a My Domain login URL), or a session id + instance URL.
    """

    username: str | None = None
    password: str | None = None
    security_token: str | None = None
    login_url: str = DEFAULT_LOGIN_URL
    client_id: str | None = None
    client_secret: str | None = None
    instance_url: str | None = None
    session_id: str | None = None
    api_version: str = DEFAULT_API_VERSION
    ca_bundle: str | None = Field(default=None, description="CA file trusted for Salesforce HTTPS.")
    timeout_seconds: float = Field(default=120.0, gt=0, description="Per request.")
    poll_interval_seconds: float = Field(default=2.0, ge=0, description="Between Bulk batch status checks.")
    poll_timeout_seconds: float = Field(default=3600.0, gt=0, description="Longest wait for a batch.")

    def auth_method(self) -> str:
        if self.username and self.password:
            return "password"
        if self.client_id and self.client_secret:
            return "client_credentials"
        if self.session_id and self.instance_url:
            return "session_id"
        raise SalesforceSetupError(
            "Salesforce credentials are not set: set SALESFORCE_USERNAME, SALESFORCE_PASSWORD and "
            "SALESFORCE_SECURITY_TOKEN; or SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET with a My "
            "Domain SALESFORCE_LOGIN_URL; or SALESFORCE_SESSION_ID and SALESFORCE_INSTANCE_URL"
        )

    def connect(
        self, api_version: str | None = None, retry_initial_delay: float = 1.0, retry_limit: int = 5
    ) -> SalesforceApi:
        """A logged-in API handle for one run (`api_version`: the sync's, else the default).

        Login and reads (describe, queries) that fail transiently are retried after
        `retry_initial_delay` seconds, doubling, `retry_limit` times.
        """
        from crm_assets.destinations.salesforce.api import SalesforceApi  # simple-salesforce loads zeep: slow

        return SalesforceApi(self, api_version or self.api_version, retry_initial_delay, retry_limit)
