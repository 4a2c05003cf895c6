"""JSON over HTTP for every source: retry what can heal, stop at once on what cannot.

Only throttling (429, honouring ``Retry-After``), server errors (5xx), timeouts and broken
connections are retried, with capped exponential backoff. Everything a retry cannot fix raises
:class:`~crm_assets.sources.errors.FatalSourceError` on the first answer, with one message
naming the setting to check: a host that does not resolve or refuses connections, a 200 whose
body is not JSON (a login page, a proxy, the wrong server), a 404 (the wrong base URL) point at
the URL variable; a 401 or 403 points at the credential variables. Every message passes through
the session's redactor, and no exception is chained to a cause whose text was not redacted.

A session pages its listings with a paginator from :mod:`crm_assets.sources.paging`, and can
read ahead: later pages are fetched and parsed in a thread while the caller works on the
current one (:func:`read_ahead`, a bounded hand-over, so memory stays flat). Once reads
overlap, an API's limit on requests in flight (Zoho's concurrency limit) is honoured by a
semaphore around every request (``JsonHttp.max_in_flight``).
"""

from __future__ import annotations

import errno
import logging
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

import orjson
import requests

from crm_assets.sources.errors import FatalSourceError, SourceError
from crm_assets.sources.paging import Page, Paginator
from crm_assets.sources.redaction import Redactor
from crm_assets.warehouse.page_arrow import read_body

MAX_RETRY_AFTER_SECONDS = 900.0
QUOTED_BODY_CHARS = 200
READ_AHEAD_PAGES = 1
log = logging.getLogger("crm_assets.sources.http")


@dataclass(frozen=True)
class Target:
    """A service and the settings its failures point to."""

    url_variable: str
    credential_variables: str
    # Statuses that mean "your credentials": 401 and 403 for an API; a token endpoint adds 400.
    credential_statuses: frozenset[int] = frozenset({401, 403})


@dataclass(frozen=True)
class RetryPolicy:
    timeout_seconds: float = 60.0
    max_retries: int = 6
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0


class Auth(Protocol):
    """Where a request's credentials come from."""

    def headers(self) -> dict[str, str]:
        """Headers for the next request (an OAuth strategy refreshes a token about to expire)."""
        ...

    def renew(self, rejected: dict[str, str]) -> bool:
        """After a 401 for `rejected` headers: True when fresh credentials are worth one more try."""
        ...


@dataclass
class JsonHttp:
    """Sends requests with retries; counts requests and retries for run metadata.

    `max_in_flight` caps the requests this session has open at once, across threads.
    """

    session: requests.Session
    policy: RetryPolicy
    redact: Callable[[object], str]
    error: type[SourceError] = SourceError
    fatal: type[FatalSourceError] = FatalSourceError
    max_in_flight: int | None = None
    requests: int = 0
    retries: int = 0
    _counting: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.max_in_flight) if self.max_in_flight else None

    def request(
        self,
        method: str,
        url: str,
        target: Target,
        *,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        auth: Auth | None = None,
        headers: dict[str, str] | None = None,
        no_data: tuple[str, ...] = (),
        records: str | None = None,
    ) -> dict[str, Any]:
        """The JSON object answered to `method url`, after whatever retries it takes.

        An empty answer (204 No Content, 304 Not Modified) and an error whose body names one
        of the `no_data` codes (a feature the account has switched off) are an empty object.
        With `records`, the key of a listing's records, the body is read by Arrow's JSON
        reader where it can be (:func:`~crm_assets.warehouse.page_arrow.read_body`).
        """
        policy = self.policy
        where = f"{method} {_show(url)}"
        failure, renewed = "", False
        for attempt in range(policy.max_retries + 1):
            with self._counting:
                self.retries += int(attempt > 0)
                self.requests += 1
            sent = {**(headers or {}), **(auth.headers() if auth else {})}
            try:
                resp = self._send(method, url, params, data, sent)
            except requests.RequestException as exc:
                unreachable = _unreachable(exc)
                if unreachable:
                    raise self.failure(f"{where}: {unreachable}; check {target.url_variable}", fatal=True) from None
                failure, wait = type(exc).__name__, self._backoff(attempt)
            else:
                where = f"{method} {_show(resp.url)}"
                status = resp.status_code
                if status in (200, 201):
                    body = self._json(where, resp, target, records)
                    if body is not None:
                        return body
                    failure, wait = f"HTTP {status} with a JSON body cut short", self._backoff(attempt)
                elif status in (204, 304):
                    return {}
                elif no_data and _error_code(resp) in no_data:
                    return {}
                elif status == 401 and auth is not None and not renewed and auth.renew(sent):
                    renewed = True
                    continue
                elif status in target.credential_statuses:
                    raise self.failure(
                        f"{where}: HTTP {status}: {_quote(resp)}; check {target.credential_variables}", status, fatal=True
                    )
                elif status == 404:
                    raise self.failure(f"{where}: HTTP 404: {_quote(resp)}; check {target.url_variable}", status, fatal=True)
                elif status == 429:
                    failure = "HTTP 429 Too Many Requests"
                    wait = retry_after(resp.headers.get("Retry-After"), self._backoff(attempt))
                elif status >= 500:
                    failure, wait = f"HTTP {status}", self._backoff(attempt)
                else:
                    raise self.failure(f"{where}: HTTP {status}: {_quote(resp)}", status)
            if attempt < policy.max_retries:
                log.warning(self.redact(f"{where}: {failure}; retrying in {wait:.1f}s"))
                time.sleep(wait)
        raise self.failure(f"{where}: gave up after {policy.max_retries + 1} attempts; last: {failure}")

    def _send(
        self, method: str, url: str, params: dict[str, Any] | None, data: dict[str, Any] | None, headers: dict[str, str]
    ) -> requests.Response:
        """One HTTP exchange, within the session's limit of requests in flight."""
        timeout = self.policy.timeout_seconds
        if self._slots is None:
            return self.session.request(method, url, params=params, data=data, headers=headers, timeout=timeout)
        with self._slots:
            resp = self.session.request(method, url, params=params, data=data, headers=headers, timeout=timeout)
            resp.content  # read the whole body before the slot is given back
            return resp

    def _json(
        self, where: str, resp: requests.Response, target: Target, records: str | None
    ) -> dict[str, Any] | None:
        """The answer's JSON object (its `records` list read as Arrow where it can be); None when
        a body announced as JSON does not parse (cut short on the way: worth another attempt), a
        failure naming the URL setting when the answer is not JSON at all (an HTML page: not the
        API)."""
        if records and (typed := read_body(resp.content, records)) is not None:
            return typed
        try:
            body = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            kind = resp.headers.get("Content-Type") or "no content type"
            if "json" in kind.lower():
                return None
            raise self.failure(
                f"{where}: HTTP {resp.status_code} answered {kind}, not JSON ({_snippet(resp.text)!r}): "
                f"this is not the API; check {target.url_variable}",
                resp.status_code,
                fatal=True,
            ) from None
        if not isinstance(body, dict):
            raise self.failure(f"{where}: expected a JSON object, got {type(body).__name__}")
        return body

    def failure(self, message: str, status: int | None = None, *, fatal: bool = False) -> SourceError:
        """The error to raise for `message`, redacted; `fatal` when no retry or table can succeed."""
        exc = (self.fatal if fatal else self.error)(self.redact(message))
        exc.status = status  # type: ignore[attr-defined]
        return exc

    def _backoff(self, attempt: int) -> float:
        p = self.policy
        delay = min(p.max_backoff_seconds, p.backoff_seconds * 2**attempt)
        return delay * (0.5 + random.random() / 2)


class SourceSession:
    """What every source's session shares: a keep-alive HTTP session, its transport's counters
    for run metadata, and the one redaction path for everything it logs or raises."""

    http: requests.Session
    transport: JsonHttp
    redactor: Redactor

    def redact(self, text: object) -> str:
        """`text` with every secret this session holds or obtained masked."""
        return self.redactor.redact(text)

    @property
    def requests(self) -> int:
        return self.transport.requests

    @property
    def retries(self) -> int:
        return self.transport.retries

    def paged(
        self,
        paginator: Paginator,
        url: str,
        fetch: Callable[[str, dict[str, Any] | None], dict[str, Any]],
        params: dict[str, Any] | None = None,
        where: str = "",
        read_ahead: bool = False,
    ) -> Iterator[Page]:
        """The pages of a listing whose first request is `url` with `params`, each fetched by
        `fetch`; with `read_ahead`, fetched one page ahead in a thread."""
        listing = paginator.pages(fetch, url, params or {}, where or f"GET {url}", self.transport)
        return read_ahead_pages(listing) if read_ahead else listing

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DONE = object()


def read_ahead_pages(pages: Iterator[Page]) -> Iterator[Page]:
    """`pages`, produced in a thread at most `READ_AHEAD_PAGES` ahead of the consumer; an
    error of the producer is raised in the consumer, and closing the consumer stops it."""
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

    worker = threading.Thread(target=produce, name="source-read-ahead", daemon=True)
    worker.start()
    try:
        while (item := slot.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _unreachable(exc: BaseException) -> str | None:
    """Why no connection can be made, when no retry would change it; None for transient failures."""
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)):
        return "the URL is not valid"
    if not isinstance(exc, requests.exceptions.ConnectionError) or isinstance(exc, requests.exceptions.Timeout):
        return None
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        e = stack.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError":
            return "the host name does not resolve"
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED:
            return "the connection was refused (nothing listens there)"
        stack.extend([*e.args, getattr(e, "reason", None), e.__cause__, e.__context__])
    return None


def retry_after(header: str | None, fallback: float, cap: float = MAX_RETRY_AFTER_SECONDS) -> float:
    """Seconds a ``Retry-After`` header asks for (seconds or an HTTP date), at most `cap`;
    `fallback` when there is none or it cannot be read."""
    if not header:
        return fallback
    try:
        seconds = float(header)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(header).timestamp() - time.time()
        except (TypeError, ValueError):
            return fallback
    return min(max(seconds, 0.0), cap)


def _error_code(resp: requests.Response) -> str | None:
    """The `code` of an error body such as Zoho's ``{code, message, details, status}``."""
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def _quote(resp: requests.Response) -> str:
    """What an error answer says: OAuth's error pair, Zoho's code and message (and details),
    Harvest's message, or the start of the body."""
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return _snippet(resp.text)
    if isinstance(body, dict):
        if isinstance(body.get("code"), str) and body.get("message"):
            details = f" {orjson.dumps(body['details']).decode()}" if body.get("details") else ""
            return f"{body['code']}: {body['message']}{details}"[:QUOTED_BODY_CHARS]
        if body.get("error") and body.get("error_description"):
            return f"{body['error']}: {body['error_description']}"[:QUOTED_BODY_CHARS]
        return str(body.get("message") or body.get("error") or body)[:QUOTED_BODY_CHARS]
    return str(body)[:QUOTED_BODY_CHARS]


def _snippet(text: str) -> str:
    return " ".join(text.split())[:QUOTED_BODY_CHARS]


def _show(url: str) -> str:
    """A URL fit for a message: host, path and query, never userinfo."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return host + parts.path + (f"?{parts.query}" if parts.query else "")
