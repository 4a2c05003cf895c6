"""HTTP client for Harvest API v2.

Harvest pages some endpoints by page number and others by opaque cursor, and asks clients to
follow ``links.next`` rather than build page URLs, so the client only ever builds the first
URL of a listing. It sends the three headers Harvest requires, asks for the maximum page
size, honours ``Retry-After`` on 429, retries 5xx, broken connections and unreadable bodies
with capped exponential backoff, and puts a timeout on every call. Pages are yielded one at a
time, so memory does not grow with the size of a table. The token is only ever sent in a
header and never appears in an error or log line.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import orjson
import requests
from pydantic import Field

DEFAULT_API_URL = "https://api.harvestapp.com/v2"
MAX_PER_PAGE = 2000
MAX_RETRY_AFTER_SECONDS = 900.0
READ_AHEAD_PAGES = 1


class HarvestApiError(RuntimeError):
    """The Harvest API refused a request, or kept failing after every retry."""


@dataclass
class Page:
    records: list[Any]
    total_entries: int | None


class HarvestClient(dg.ConfigurableResource):
    """Credentials and HTTP behaviour for one Harvest account (a personal access token)."""

    access_token: str = Field(description="Personal access token (HARVEST_ACCESS_TOKEN).")
    account_id: str = Field(description="Harvest account id (HARVEST_ACCOUNT_ID).")
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


class HarvestSession:
    """One keep-alive HTTP session, with counters for run metadata."""

    def __init__(self, config: HarvestClient):
        if not config.access_token or not config.account_id:
            raise HarvestApiError(
                "Harvest credentials are missing: set HARVEST_ACCESS_TOKEN and HARVEST_ACCOUNT_ID"
            )
        self.config = config
        self.base = config.api_url.rstrip("/")
        self.http = requests.Session()
        self.http.headers.update(
            {
                "Authorization": f"Bearer {config.access_token}",
                "Harvest-Account-Id": str(config.account_id),
                "User-Agent": config.user_agent,
                "Accept": "application/json",
            }
        )
        self.requests = 0
        self.retries = 0
        self._counting = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> HarvestSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pages(
        self, path: str, envelope: str, params: dict[str, Any] | None = None, read_ahead: bool = False
    ) -> Iterator[Page]:
        """Every page of a listing: the first URL built from `params`, then `links.next`.

        With `read_ahead`, later pages are fetched and parsed in a thread while the caller
        works on the current ones; at most `READ_AHEAD_PAGES` wait, so memory stays flat.
        """
        listing = self._listing(path, envelope, params)
        return _read_ahead(listing) if read_ahead else listing

    def _listing(self, path: str, envelope: str, params: dict[str, Any] | None) -> Iterator[Page]:
        url: str | None = self.base + path
        query: dict[str, Any] | None = {**(params or {}), "per_page": self.config.per_page}
        seen: set[str] = set()
        while url:
            body = self.get(url, query)
            records = body.get(envelope)
            if not isinstance(records, list):
                raise HarvestApiError(
                    f"GET {_show(url)}: the response has no {envelope!r} list "
                    f"(keys: {sorted(body)[:10]})"
                )
            yield Page(records, body.get("total_entries"))
            url = (body.get("links") or {}).get("next")
            query = None
            if url in seen:
                raise HarvestApiError(f"GET {_show(url)}: links.next repeats a page already read")
            if url:
                seen.add(url)

    def get(self, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a JSON object, retrying what is worth retrying."""
        cfg = self.config
        failure = ""
        for attempt in range(cfg.max_retries + 1):
            with self._counting:
                self.retries += int(attempt > 0)
                self.requests += 1
            try:
                resp = self.http.get(url, params=params, timeout=cfg.timeout_seconds)
            except requests.RequestException as exc:
                failure = f"{type(exc).__name__}"
                wait = self._backoff(attempt)
            else:
                status = resp.status_code
                if status == 200:
                    try:
                        body = orjson.loads(resp.content)
                    except orjson.JSONDecodeError:
                        failure = f"unreadable JSON body: {resp.content[:120]!r}"
                        wait = self._backoff(attempt)
                    else:
                        if isinstance(body, dict):
                            return body
                        raise HarvestApiError(f"GET {_show(resp.url)}: expected a JSON object")
                elif status == 429:
                    failure = "HTTP 429 Too Many Requests"
                    wait = _retry_after(resp.headers.get("Retry-After"), self._backoff(attempt))
                elif status >= 500:
                    failure = f"HTTP {status}"
                    wait = self._backoff(attempt)
                else:
                    raise HarvestApiError(
                        f"GET {_show(resp.url)}: HTTP {status}: {_message(resp)}"
                        + (" (check HARVEST_ACCESS_TOKEN and HARVEST_ACCOUNT_ID)" if status == 401 else "")
                    )
            if attempt < cfg.max_retries:
                time.sleep(wait)
        raise HarvestApiError(
            f"GET {_show(url)}: gave up after {cfg.max_retries + 1} attempts; last: {failure}"
        )

    def _backoff(self, attempt: int) -> float:
        cfg = self.config
        delay = min(cfg.max_backoff_seconds, cfg.backoff_seconds * 2**attempt)
        return delay * (0.5 + random.random() / 2)


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


def _retry_after(header: str | None, fallback: float) -> float:
    if not header:
        return fallback
    try:
        seconds = float(header)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(header).timestamp() - time.time()
        except (TypeError, ValueError):
            return fallback
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _message(resp: requests.Response) -> str:
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return resp.text[:200].strip()
    if isinstance(body, dict):
        return str(body.get("error_description") or body.get("message") or body.get("error") or body)[:300]
    return str(body)[:300]


def _show(url: str) -> str:
    """A URL fit for an error message: path and query only (no host credentials)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
