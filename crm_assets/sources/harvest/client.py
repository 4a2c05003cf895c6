"""HTTP client for Harvest API v2.

Harvest pages some endpoints by page number and others by opaque cursor, and asks clients to
follow ``links.next`` rather than build page URLs, so the client only ever builds the first
URL of a listing. It sends the three headers Harvest requires and asks for the maximum page
size; retries, fail-fast rules and read-ahead live in :mod:`crm_assets.sources.http`, and the
``links.next`` paginator in :mod:`crm_assets.sources.paging`, configured here with Harvest's
guards: paging stops past the page count the first page announced (plus a margin), and a
page-number listing (time entries, invoices, estimates, expenses), which shifts when a record
of an earlier page is deleted while it is read, is read again from its first URL when it
returns fewer records than its first page announced.

Credentials are a personal access token or OAuth (see :mod:`.oauth`). Every secret the session
holds or obtains is registered with its redactor, and every message and log line it produces
goes through :meth:`HarvestSession.redact`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import dagster as dg
import requests
from pydantic import Field

from crm_assets.sources.errors import FatalSourceError, SourceError
from crm_assets.sources.harvest.oauth import DEFAULT_ID_URL, OAUTH_VARIABLES, HarvestOAuth
from crm_assets.sources.http import JsonHttp, RetryPolicy, SourceSession, Target
from crm_assets.sources.paging import NextLink, Page
from crm_assets.sources.redaction import Redactor

DEFAULT_API_URL = "https://api.harvestapp.com/v2"
MAX_PER_PAGE = 2000
# Passes over a page-number listing before a persistent shortfall is an error.
MAX_LISTING_PASSES = 3
# Pages tolerated beyond the first page's total_pages (records added while reading).
EXTRA_PAGES = 2
PAT_VARIABLES = "HARVEST_ACCESS_TOKEN and HARVEST_ACCOUNT_ID"
OAUTH_API_VARIABLES = "HARVEST_CLIENT_ID, HARVEST_CLIENT_SECRET, HARVEST_REFRESH_TOKEN and HARVEST_ACCOUNT_ID"
MISSING_CREDENTIALS = (
    "Harvest credentials are missing: set HARVEST_ACCESS_TOKEN (personal token) or "
    f"{OAUTH_VARIABLES} (OAuth)"
)


class HarvestApiError(SourceError):
    """The Harvest API refused a request, sent something unusable, or kept failing after retries."""

    status: int | None = None


class HarvestFatalError(HarvestApiError, FatalSourceError):
    """A Harvest failure no retry can fix: wrong URL, credentials or permissions."""


class HarvestClient(dg.ConfigurableResource):
    """Credentials and HTTP behaviour for one Harvest account: a personal token, or OAuth."""

    access_token: str | None = Field(default=None, description="Personal access token (HARVEST_ACCESS_TOKEN).")
    account_id: str | None = Field(
        default=None, description="Harvest account id (HARVEST_ACCOUNT_ID); with OAuth, found when unset."
    )
    client_id: str | None = Field(default=None, description="OAuth app client id (HARVEST_CLIENT_ID).")
    client_secret: str | None = Field(default=None, description="OAuth app client secret (HARVEST_CLIENT_SECRET).")
    refresh_token: str | None = Field(default=None, description="OAuth refresh token (HARVEST_REFRESH_TOKEN).")
    id_url: str = Field(default=DEFAULT_ID_URL, description="Harvest ID, for OAuth tokens (HARVEST_ID_URL).")
    token_state_path: str | None = Field(
        default=None, description="File that keeps a rotated OAuth refresh token for the next run (mode 0600)."
    )
    api_url: str = Field(default=DEFAULT_API_URL, description="API base, e.g. the sandbox's.")
    user_agent: str = Field(
        default="crm_assets (https://github.com/crm-assets/crm_assets)",
        description="Harvest requires an application name and contact in User-Agent.",
    )
    per_page: int = Field(default=MAX_PER_PAGE, ge=1, le=MAX_PER_PAGE)
    timeout_seconds: float = Field(default=60.0, description="Connect and read timeout per call.")
    max_retries: int = Field(default=6, ge=0)
    backoff_seconds: float = Field(default=1.0, description="First retry delay; doubles each time.")
    max_backoff_seconds: float = 60.0

    def open(self) -> HarvestSession:
        return HarvestSession(self)


class _PersonalToken:
    """The Auth strategy of a personal access token: one header, nothing to renew."""

    def __init__(self, token: str):
        self._headers = {"Authorization": f"Bearer {token}"}

    def headers(self) -> dict[str, str]:
        return self._headers

    def renew(self, rejected: dict[str, str]) -> bool:
        return False


class HarvestSession(SourceSession):
    """One keep-alive HTTP session, with counters for run metadata."""

    def __init__(self, config: HarvestClient):
        self.config = config
        self.redactor = Redactor(config.access_token, config.client_secret, config.refresh_token)
        self.base = config.api_url.rstrip("/")
        self.http = requests.Session()
        self.http.headers.update({"User-Agent": config.user_agent, "Accept": "application/json"})
        self.transport = JsonHttp(
            self.http,
            RetryPolicy(config.timeout_seconds, config.max_retries, config.backoff_seconds, config.max_backoff_seconds),
            self.redactor.redact,
            error=HarvestApiError,
            fatal=HarvestFatalError,
        )
        self.oauth: HarvestOAuth | None = None
        try:
            self.auth, self.target = self._credentials(config)
            account_id = config.account_id or (self.oauth.account_id() if self.oauth else None)
        except BaseException:
            self.http.close()
            raise
        self.http.headers["Harvest-Account-Id"] = str(account_id)

    def _credentials(self, config: HarvestClient) -> tuple[Any, Target]:
        if config.access_token:
            if not config.account_id:
                raise HarvestFatalError("HARVEST_ACCOUNT_ID is not set: a personal access token needs its account id")
            return _PersonalToken(config.access_token), Target("HARVEST_API_URL", PAT_VARIABLES)
        oauth = {"HARVEST_CLIENT_ID": config.client_id, "HARVEST_CLIENT_SECRET": config.client_secret,
                 "HARVEST_REFRESH_TOKEN": config.refresh_token}
        if not any(oauth.values()):
            raise HarvestFatalError(MISSING_CREDENTIALS)
        missing = [name for name, value in oauth.items() if not value]
        if missing:
            raise HarvestFatalError(f"OAuth needs {OAUTH_VARIABLES}: {' and '.join(missing)} not set")
        self.oauth = HarvestOAuth(
            self.transport,
            self.redactor,
            id_url=config.id_url,
            client_id=str(config.client_id),
            client_secret=str(config.client_secret),
            refresh_token=str(config.refresh_token),
            state_path=config.token_state_path,
        )
        return self.oauth, Target("HARVEST_API_URL", OAUTH_API_VARIABLES)


    def get(self, url: str, params: dict[str, Any] | None = None, records: str | None = None) -> dict[str, Any]:
        """GET a JSON object from the API, retrying what is worth retrying; `records` names a
        listing's records, read as Arrow where they can be."""
        return self.transport.request("GET", url, self.target, params=params, auth=self.auth, records=records)

    def pages(
        self,
        path: str,
        envelope: str,
        params: dict[str, Any] | None = None,
        read_ahead: bool = False,
        pagination: str = "cursor",
    ) -> Iterator[Page]:
        """Every page of a listing: the first URL built from `params`, then `links.next`.

        `pagination` is the endpoint's mode, ``"cursor"`` or ``"page"``; a page-number listing
        that returns fewer records than its first page announced is read again (every pass's
        pages are yielded; writes are idempotent upserts). With `read_ahead`, later pages are
        fetched and parsed in a thread while the caller works on the current ones.
        """
        if pagination not in ("cursor", "page"):
            raise ValueError(f"pagination must be 'cursor' or 'page', not {pagination!r}")
        paginator = NextLink(
            envelope, self.config.per_page, reread_on_shortfall=pagination == "page",
            max_passes=MAX_LISTING_PASSES, extra_pages=EXTRA_PAGES,
        )
        fetch = functools.partial(self.get, records=envelope) if read_ahead else self.get
        return self.paged(paginator, self.base + path, fetch, params, f"GET {path}", read_ahead)
