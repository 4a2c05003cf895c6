"""HTTP client for Harvest API v2.

Harvest pages some endpoints by page number and others by opaque cursor, and asks clients to
follow ``links.next`` rather than build page URLs, so the client only ever builds the first
URL of a listing. It sends the three headers Harvest requires and asks for the maximum page
size; retries and fail-fast rules live in :mod:`crm_assets.sources.http`. Pages are yielded
one at a time, so memory does not grow with the size of a table.

Two guards keep a listing honest. Paging stops with an error once it runs past the page count
the first page announced (plus a margin), so an API that keeps handing out ``links.next`` cannot
keep a run busy forever. And a page-number listing (time entries, invoices, estimates,
expenses) shifts when a record of an earlier page is deleted while it is read, so that a record
of a later page is never seen: the records read are counted against the first page's
``total_entries`` and, on a shortfall, the listing is read again from its first URL.

Credentials are a personal access token or OAuth (see :mod:`.oauth`). Every secret the session
holds or obtains is registered with its redactor, and every message and log line it produces
goes through :meth:`HarvestSession.redact`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import requests
from pydantic import Field

from crm_assets.sources.errors import FatalSourceError, SourceError
from crm_assets.sources.harvest.oauth import DEFAULT_ID_URL, OAUTH_VARIABLES, HarvestOAuth
from crm_assets.sources.http import JsonHttp, RetryPolicy, SourceSession, Target
from crm_assets.sources.redaction import Redactor

DEFAULT_API_URL = "https://api.harvestapp.com/v2"
MAX_PER_PAGE = 2000
READ_AHEAD_PAGES = 1
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
log = logging.getLogger("crm_assets.sources.harvest")


class HarvestApiError(SourceError):
    """The Harvest API refused a request, sent something unusable, or kept failing after retries."""

    status: int | None = None


class HarvestFatalError(HarvestApiError, FatalSourceError):
    """A Harvest failure no retry can fix: wrong URL, credentials or permissions."""


@dataclass
class Page:
    records: list[Any]
    total_entries: int | None
    # 1 for the first read of a listing; 2 and up when a page-number listing is read again.
    pass_number: int = 1


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


    def get(self, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a JSON object from the API, retrying what is worth retrying."""
        return self.transport.request("GET", url, self.target, params=params, auth=self.auth)

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
        fetched and parsed in a thread while the caller works on the current ones; at most
        `READ_AHEAD_PAGES` wait, so memory stays flat.
        """
        if pagination not in ("cursor", "page"):
            raise ValueError(f"pagination must be 'cursor' or 'page', not {pagination!r}")
        listing = self._listing(path, envelope, params, pagination)
        return _read_ahead(listing) if read_ahead else listing

    def _listing(self, path: str, envelope: str, params: dict[str, Any] | None, pagination: str) -> Iterator[Page]:
        query = {**(params or {}), "per_page": self.config.per_page}
        announced: int | None = None
        read = 0
        for number in range(1, MAX_LISTING_PASSES + 1):
            announced, read = yield from self._pass(path, envelope, query, number, count=pagination == "page")
            if pagination != "page" or announced is None or read >= announced:
                return
            log.warning(self.redact(
                f"GET {path}: read {read} of the {announced} records announced; records moved "
                f"between pages while they were read, reading the listing again"
            ))
        raise HarvestApiError(self.redact(
            f"GET {path}: {MAX_LISTING_PASSES} passes each read fewer records than the listing announced "
            f"(last: {read} of {announced}); records keep moving between pages"
        ))

    def _pass(
        self, path: str, envelope: str, query: dict[str, Any], number: int, count: bool
    ) -> Generator[Page, None, tuple[int | None, int]]:
        """One read of a listing from its first URL; returns (announced total, distinct records read)."""
        url: str | None = self.base + path
        params: dict[str, Any] | None = query
        seen_urls: set[str] = set()
        ids: set[Any] = set()
        read = 0
        announced: int | None = None
        announced_pages: int | None = None
        pages = 0
        while url:
            body = self.get(url, params)
            records = body.get(envelope)
            if not isinstance(records, list):
                raise HarvestApiError(self.redact(
                    f"GET {path}: the response has no {envelope!r} list (keys: {sorted(body)[:10]})"
                ))
            pages += 1
            if pages == 1:
                announced = _int_or_none(body.get("total_entries"))
                announced_pages = _announced_pages(body, self.config.per_page)
            if count:
                for r in records:
                    key = r.get("id") if isinstance(r, dict) else None
                    if key is None:
                        read += 1
                    elif key not in ids:
                        ids.add(key)
                        read += 1
            yield Page(records, _int_or_none(body.get("total_entries")), number)
            url = (body.get("links") or {}).get("next")
            params = None
            if url and announced_pages is not None and pages >= announced_pages + EXTRA_PAGES:
                raise HarvestApiError(self.redact(
                    f"GET {path}: links.next still points further after {pages} pages, although the "
                    f"first page announced {announced_pages}; stopped"
                ))
            if url in seen_urls:
                raise HarvestApiError(self.redact(f"GET {path}: links.next repeats a page already read"))
            if url:
                seen_urls.add(url)
        return announced, read


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _announced_pages(first: dict[str, Any], per_page: int) -> int | None:
    """The page count a listing's first page announces (derived from its total when not given)."""
    total_pages = _int_or_none(first.get("total_pages"))
    if total_pages is None:
        total = _int_or_none(first.get("total_entries"))
        if total is None:
            return None
        total_pages = -(-total // (_int_or_none(first.get("per_page")) or per_page))
    return max(total_pages, 1)


_DONE = object()


def _read_ahead(pages: Iterator[Page]) -> Iterator[Page]:
    slot: queue.Queue[Any] = queue.Queue(maxsize=READ_AHEAD_PAGES)
    stop = threading.Event()

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                slot.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not hand_over(page):
                    return
            hand_over(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            hand_over(exc)

    worker = threading.Thread(target=produce, name="harvest-read-ahead", daemon=True)
    worker.start()
    try:
        while (item := slot.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
