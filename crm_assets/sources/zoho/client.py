"""HTTP client for Zoho CRM v8: the resource, its session and Zoho's paging.

Every call carries ``Authorization: Zoho-oauthtoken ...`` from :mod:`.oauth` and goes to the
token's ``api_domain`` (or ``ZOHO_API_URL``), so any data centre works from its accounts server
alone. Retries of 429 (Zoho's credit and concurrency limits), 5xx, timeouts and resets, and the
fail-fast rules, are the shared ones of :mod:`crm_assets.sources.http`; Zoho's error bodies
(``code``, ``message``, ``details``) are quoted in its errors. Paged lists follow
``info.more_records`` with ``page`` (or ``info.next_page_token`` when the API hands one out),
the shared :class:`~crm_assets.sources.paging.MoreRecords` paginator; 204 and 304 answer
"nothing here". Listings read one page ahead, so the session keeps at most
``max_concurrent_requests`` calls in flight (Zoho answers 429 beyond its concurrency limit). Every secret the session holds or obtains is registered with
its redactor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import requests
from pydantic import Field

from crm_assets.catalog import Stream
from crm_assets.sources.errors import FatalSourceError
from crm_assets.sources.http import JsonHttp, RetryPolicy, SourceSession, Target
from crm_assets.sources.paging import MoreRecords
from crm_assets.sources.redaction import Redactor
from crm_assets.sources.zoho.oauth import DEFAULT_ACCOUNTS_URL, OAUTH_VARIABLES, ZohoOAuth

MAX_PER_PAGE = 200
# A listing that still says more_records after this many pages is not ending.
MAX_PAGES = 1000
API_TARGET = Target("ZOHO_API_URL", OAUTH_VARIABLES)


class ZohoClient(dg.ConfigurableResource):
    """Credentials and HTTP behaviour for one Zoho CRM organization (a self client's refresh token)."""

    client_id: str | None = Field(default=None, description="OAuth client id (ZOHO_CLIENT_ID).")
    client_secret: str | None = Field(default=None, description="OAuth client secret (ZOHO_CLIENT_SECRET).")
    refresh_token: str | None = Field(default=None, description="OAuth refresh token (ZOHO_REFRESH_TOKEN).")
    accounts_url: str = Field(
        default=DEFAULT_ACCOUNTS_URL, description="Accounts server of the data centre (ZOHO_ACCOUNTS_URL)."
    )
    api_url: str | None = Field(
        default=None, description="API domain (ZOHO_API_URL); by default the api_domain of the token answer."
    )
    per_page: int = Field(default=MAX_PER_PAGE, ge=1, le=MAX_PER_PAGE)
    timeout_seconds: float = Field(default=60.0, description="Connect and read timeout per call.")
    max_retries: int = Field(default=6, ge=0)
    backoff_seconds: float = Field(default=1.0, description="First retry delay; doubles each time.")
    max_backoff_seconds: float = 60.0
    max_concurrent_requests: int = Field(
        default=5,
        ge=1,
        description="Requests in flight at once: Zoho's per-app concurrency limit (Free 5 ... Ultimate 25).",
    )

    def open(self) -> ZohoSession:
        return ZohoSession(self)


class ZohoSession(SourceSession):
    """One keep-alive HTTP session, with counters for run metadata."""

    def __init__(self, config: ZohoClient):
        self.config = config
        self.redactor = Redactor(config.client_secret, config.refresh_token)
        credentials = {
            "ZOHO_CLIENT_ID": config.client_id,
            "ZOHO_CLIENT_SECRET": config.client_secret,
            "ZOHO_REFRESH_TOKEN": config.refresh_token,
        }
        missing = [name for name, value in credentials.items() if not value]
        if missing:
            raise FatalSourceError(
                f"Zoho credentials are missing: set {OAUTH_VARIABLES} ({', '.join(missing)} not set)"
            )
        self.http = requests.Session()
        self.http.headers["Accept"] = "application/json"
        self.transport = JsonHttp(
            self.http,
            RetryPolicy(
                config.timeout_seconds, config.max_retries, config.backoff_seconds, config.max_backoff_seconds
            ),
            self.redactor.redact,
            max_in_flight=config.max_concurrent_requests,
        )
        self.oauth = ZohoOAuth(
            self.transport,
            self.redactor,
            config.accounts_url,
            str(config.client_id),
            str(config.client_secret),
            str(config.refresh_token),
        )

    @property
    def base(self) -> str:
        """The API domain: ZOHO_API_URL, else the one the token answer names (fetching a token)."""
        if self.config.api_url:
            return self.config.api_url.rstrip("/")
        if self.oauth.api_domain is None:
            self.oauth.headers()
        if self.oauth.api_domain is None:
            raise FatalSourceError("Zoho Accounts named no api_domain with the token: set ZOHO_API_URL")
        return self.oauth.api_domain


    def get(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        no_data: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """GET a JSON object from the API ({} for an empty answer or a `no_data` error)."""
        return self.transport.request(
            "GET",
            self.base + path,
            API_TARGET,
            params=params,
            auth=self.oauth,
            headers=headers,
            no_data=no_data,
        )

    def pages(
        self,
        stream: Stream,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        read_ahead: bool = False,
    ) -> Iterator[list[Any]]:
        """Every page of `stream`'s list, with its catalog parameters and headers added; with
        `read_ahead`, the next page is fetched while the caller works on this one."""
        sent = {**stream.headers, **(headers or {})}

        def fetch(url: str, query: dict[str, Any] | None) -> dict[str, Any]:
            return self.transport.request(
                "GET", url, API_TARGET, params=query, auth=self.oauth, headers=sent, no_data=stream.no_data_errors,
                records=str(stream.envelope) if read_ahead else None,
            )

        paginator = MoreRecords(str(stream.envelope), self.config.per_page, paged=stream.pagination == "page",
                                max_pages=MAX_PAGES)
        query = {**stream.params, **(params or {})}
        for page in self.paged(paginator, self.base + str(stream.endpoint), fetch, query,
                               f"GET {stream.endpoint}", read_ahead):
            yield page.records
