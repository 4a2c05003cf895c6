"""Fault injection shared by every emulated API: what ``--faults SPEC`` and ``/_sandbox/faults`` ask for.

API names are the emulators' (``harvest``, ``harvest_id``, ``zoho``, ``zoho_accounts``,
``salesforce``) plus ``harvest_reports`` (the reports' own rate limit) and ``salesforce_login``
(the SOAP and OAuth login requests, which ``salesforce`` faults leave alone). The spec is a
comma-separated list of rules ``api:RULE``:

- ``STATUS@P`` (``harvest:429@0.1``): the emulator answers that status its own way (Zoho's 429
  body, Salesforce's ``INVALID_SESSION_ID`` ...) with probability P; a 429 carries ``Retry-After``
  of ``retry_after=SECONDS`` (whole seconds, default 1);
- ``expire@P``: the emulator expires the credential the request carries (an OAuth access token,
  a Salesforce session) and answers as it answers an expired one: a token dying mid-run, never
  on the credential's first request. A Harvest personal access token never expires, so only
  OAuth tokens are affected;
- ``reset@P``, ``truncate@P``, ``cut@P``, ``slow@P``: the emulator serves the request (its effects
  happen), then the transport spoils the answer: the connection is reset with no answer at all;
  the body stops half way and the connection closes although ``Content-Length`` announced it
  whole; the body is cut in half with a ``Content-Length`` that matches, as a broken proxy sends
  it; or the answer waits ``slow=SECONDS`` (default 2), longer than a client's timeout;
- ``echo@P``, ``endless@P``: the server answers in the emulator's place, before it checks
  credentials: a debugging proxy's HTML page quoting every request header (``Authorization``
  included), or an empty list page whose ``links.next`` always leads one page further;
- ``rate=N/SECONDS`` (a sliding-window limit answered 429) and ``concurrency=N`` (read by an
  emulator that counts its requests in flight, through :meth:`FaultInjector.concurrency_limit`);
- an emulator's own kinds (:data:`NAMED_FAULTS`: Salesforce's ``lock@P``, ``batch_failed@P``,
  ``session_expiry=N``), only checked here and kept in :attr:`FaultInjector.named_rules`.

Tests queue faults for the next requests with ``POST /_sandbox/faults``: ``{"api", "status",
"count", "retry_after"}``, ``{"api", "kind", "count"}`` for any kind above, or ``{"api", "kind":
"respond", "status", "body" | "json", "content_type"}`` to plant a literal answer (an HTML error
page, a page without a record's key ...). Server-side kinds take an optional ``"path"``: only a
request whose path ends with it gets the fault. ``{"api", "spec": "RULE"}`` adds a rule;
``GET`` shows everything, ``DELETE [?api=NAME]`` clears it.
"""

from __future__ import annotations

import html
import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from crm_assets.sandbox.server import BadRequest, Request, Response, dumps, html_response, json_response

DEFAULT_SLOW_SECONDS = 2.0


@dataclass(frozen=True)
class Fault:
    """An answer the emulator owes instead of serving: a status, or (``kind="expire"``) the death
    of the credential the request carries."""

    status: int
    retry_after: float | None = None
    kind: str = "status"


@dataclass(frozen=True)
class Planned:
    """A fault the server itself applies around the emulator (see the module's kinds)."""

    kind: str
    status: int = 200
    path: str = ""
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"


# Kinds the server applies: the first three answer in the emulator's place, the rest spoil its answer.
ANSWERING_KINDS = ("echo", "endless", "respond")
TRANSPORT_KINDS = ("reset", "truncate", "cut", "slow")
SERVER_KINDS = ANSWERING_KINDS + TRANSPORT_KINDS
# Fault kinds an emulator interprets itself, given as api:KIND@PROBABILITY or api:KIND=N.
NAMED_FAULTS: dict[str, tuple[str, ...]] = {"salesforce": ("lock", "batch_failed", "session_expiry")}


class FaultInjector:
    """Decides, per API request, whether and how it fails (the kinds are in the module's docstring).

    Emulators call :meth:`take` once per authenticated request; the servers wrap every API
    request in :meth:`serve`. Queued faults come first, then the rate limit, then draws from
    one RNG seeded by the sandbox's seed, in the order the spec lists the rules.
    """

    def __init__(self, seed: int = 0, spec: str | None = None):
        self._lock = threading.Lock()
        self._rng = random.Random(f"faults:{seed}")
        self._queued: dict[str, deque[Fault]] = {}
        self._planned: dict[str, list[Planned]] = {}
        self._random: dict[str, list[tuple[str, int, float]]] = {}  # (kind, status, probability)
        self._rates: dict[str, tuple[int, float]] = {}
        self._windows: dict[str, deque[float]] = {}
        self._slow_seconds: dict[str, float] = {}
        self._retry_after: dict[str, float] = {}
        self._concurrency: dict[str, int] = {}
        self._used: set[str] = set()  # credentials seen, so that an expiry never strikes a fresh one
        self.named_rules: dict[str, list[str]] = {}  # an emulator's own kinds (NAMED_FAULTS), read at its start
        if spec:
            self.configure(spec)

    def configure(self, spec: str) -> None:
        for item in filter(None, (part.strip() for part in spec.split(","))):
            api, sep, rule = item.partition(":")
            if not sep or not api:
                raise ValueError(f"fault {item!r}: expected api:STATUS@PROBABILITY, api:KIND@PROBABILITY or api:rate=N/SECONDS")
            try:
                self._add_rule(api, rule)
            except ValueError as exc:
                raise ValueError(f"fault {item!r}: {exc}") from exc

    def _add_rule(self, api: str, rule: str) -> None:
        name, _, probability = rule.partition("@")
        if name.partition("=")[0] in NAMED_FAULTS.get(api, ()):
            _check_named_rule(rule)
            self.named_rules.setdefault(api, []).append(rule)
        elif rule.startswith("concurrency="):
            self._concurrency[api] = max(1, int(rule[len("concurrency="):]))
        elif rule.startswith("rate="):
            count, _, seconds = rule[len("rate="):].partition("/")
            self._rates[api] = (int(count), float(seconds))
        elif rule.startswith("retry_after="):
            self._retry_after[api] = max(0.0, float(rule[len("retry_after="):]))
        elif rule.startswith("slow="):
            self._slow_seconds[api] = max(0.0, float(rule[len("slow="):]))
        elif name == "respond":
            raise ValueError("respond needs a body: queue it through POST /_sandbox/faults")
        elif name in SERVER_KINDS or name == "expire":
            self._random.setdefault(api, []).append((name, 0, _probability(probability)))
        else:
            self._random.setdefault(api, []).append(("status", int(name), _probability(probability)))

    def queue(self, api: str, status: int, count: int = 1, retry_after: float | None = None, kind: str = "status") -> None:
        with self._lock:
            self._queued.setdefault(api, deque()).extend(Fault(status, retry_after, kind) for _ in range(count))

    def plan(self, api: str, planned: Planned, count: int = 1) -> None:
        if planned.kind not in SERVER_KINDS:
            raise BadRequest(f"fault kind {planned.kind!r}: expected expire or one of {', '.join(SERVER_KINDS)}")
        with self._lock:
            self._planned.setdefault(api, []).extend([planned] * count)

    def clear(self, api: str | None = None) -> None:
        with self._lock:
            for table in (self._queued, self._planned, self._random, self._rates, self._windows,
                          self._slow_seconds, self._retry_after, self._concurrency):
                if api is None:
                    table.clear()
                else:
                    table.pop(api, None)

    def take(self, api: str, credential: str | None = None) -> Fault | None:
        """The status or credential expiry due for this request to `api`, if any.

        A random expiry never strikes the first request made with a `credential`: a real token
        dies after some use, not as it is handed out (and a client may fairly take a fresh
        token refused at once for a configuration error).
        """
        with self._lock:
            fresh = credential is not None and credential not in self._used
            if fresh:
                self._used.add(credential)
            q = self._queued.get(api)
            if q:
                return q.popleft()
            rate = self._rates.get(api)
            if rate is not None:
                limit, window = rate
                now = time.monotonic()
                hits = self._windows.setdefault(api, deque())
                while hits and hits[0] <= now - window:
                    hits.popleft()
                if len(hits) >= limit:
                    return Fault(429, max(1.0, math.ceil(hits[0] + window - now)))
                hits.append(now)
            for kind, status, p in self._random.get(api, ()):
                if kind in ("status", "expire") and self._rng.random() < p:
                    if kind == "status":
                        return Fault(status, self._retry_after.get(api, 1.0) if status == 429 else None)
                    if not fresh:
                        return Fault(401, None, "expire")
        return None

    def concurrency_limit(self, api: str) -> int | None:
        """How many requests to `api` may be in flight at once (None: no limit)."""
        with self._lock:
            return self._concurrency.get(api)

    def serve(self, api: str, request: Request, answer: Callable[[], Response]) -> Response:
        """`answer()` for `request`, unless a server-side fault replaces or spoils it."""
        planned = self._next_planned(api, request)
        if planned is None:
            return answer()
        if planned.kind == "respond":
            return Response(planned.status, planned.body, planned.content_type)
        if planned.kind in ANSWERING_KINDS:
            return SHAPED_FAULTS[planned.kind](request, planned.status)
        response = answer()
        with self._lock:
            delay = self._slow_seconds.get(api, DEFAULT_SLOW_SECONDS) if planned.kind == "slow" else 0.0
        return replace(response, transport=planned.kind, delay=delay)

    def _next_planned(self, api: str, request: Request) -> Planned | None:
        with self._lock:
            planned = self._planned.get(api, [])
            for i, p in enumerate(planned):
                if request.path.endswith(p.path):
                    return planned.pop(i)
            for kind, _, p in self._random.get(api, ()):
                if kind in SERVER_KINDS and self._rng.random() < p:
                    return Planned(kind)
        return None

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "queued": {api: [vars(f) for f in q] for api, q in self._queued.items() if q},
                "planned": {api: [{"kind": p.kind, "status": p.status, "path": p.path} for p in q]
                            for api, q in self._planned.items() if q},
                "random": {api: [{"status": s, "probability": p} if k == "status" else {"kind": k, "probability": p}
                                 for k, s, p in rules] for api, rules in self._random.items()},
                "rate_limits": {api: {"requests": n, "seconds": w} for api, (n, w) in self._rates.items()},
                "slow_seconds": dict(self._slow_seconds),
                "retry_after": dict(self._retry_after),
                "concurrency": dict(self._concurrency),
            }

    def handle_admin(self, request: Request) -> Response:
        """``POST /_sandbox/faults`` queues faults; ``GET`` shows them; ``DELETE`` clears them."""
        if request.method == "GET":
            return json_response(200, self.describe())
        if request.method == "DELETE":
            self.clear(request.param("api"))
            return json_response(200, self.describe())
        if request.method != "POST":
            return json_response(405, {"error": "use GET, POST or DELETE"})
        body = request.json()
        try:
            api, count = str(body["api"]), int(body.get("count", 1))
            if "spec" in body:
                self.configure(f"{api}:{body['spec']}")
            elif body.get("kind") == "expire":
                self.queue(api, 401, count, kind="expire")
            elif "kind" in body:
                self.plan(api, _planned_from(body), count)
            else:
                retry = body.get("retry_after")
                self.queue(api, int(body["status"]), count, None if retry is None else float(retry))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"expected {{api, status, count, retry_after}}, {{api, kind, count, path}} or {{api, spec}}: {exc}") from exc
        return json_response(200, self.describe())


def _planned_from(body: dict[str, Any]) -> Planned:
    kind = str(body["kind"])
    if kind != "respond":
        return Planned(kind, int(body.get("status", 200)), str(body.get("path", "")))
    if "json" in body:
        payload, content_type = dumps(body["json"]), "application/json; charset=utf-8"
    else:
        payload, content_type = str(body["body"]).encode(), "text/html; charset=utf-8"
    return Planned(kind, int(body.get("status", 200)), str(body.get("path", "")), payload,
                   str(body.get("content_type", content_type)))


def _check_named_rule(rule: str) -> None:
    kind, sep, value = rule.partition("@")
    if sep:
        _probability(value)
    elif int(rule.partition("=")[2]) < 1:
        raise ValueError(f"{kind}=N needs N >= 1")


def _probability(text: str) -> float:
    p = float(text)
    if not 0 <= p <= 1:
        raise ValueError("probability must be within [0, 1]")
    return p


def echo_page(request: Request, status: int) -> Response:
    """A debugging proxy's bare page quoting the request line and headers, credentials first."""
    headers = sorted(request.headers.items(), key=lambda item: item[0].lower() != "authorization")
    lines = [f"{request.method} {request.path}"] + [f"{name}: {value}" for name, value in headers]
    body = "<html><body><pre>" + html.escape("\n".join(lines)) + "</pre></body></html>\n"
    return Response(status, body.encode(), content_type="text/html; charset=utf-8")


def endless_page(request: Request, status: int) -> Response:
    """An empty list page whose ``links.next`` always leads one page further."""
    page = 1
    try:
        page = max(1, int(request.param("page") or 1))
    except ValueError:
        pass
    per_page = request.param("per_page") or "2000"
    base = f"{request.base_url}{request.path}"

    def link(number: int) -> str:
        return f"{base}?{urlencode({'page': number, 'per_page': per_page, 'nonce': uuid.uuid4().hex})}"

    envelope = request.path.rstrip("/").rpartition("/")[2] or "records"
    return json_response(status, {
        envelope: [], "per_page": int(per_page) if per_page.isdigit() else per_page, "total_pages": 1,
        "total_entries": 0, "next_page": page + 1, "previous_page": page - 1 or None, "page": page,
        "links": {"first": link(1), "next": link(page + 1), "previous": link(page - 1) if page > 1 else None,
                  "last": link(1)},
    })


SHAPED_FAULTS: dict[str, Callable[[Request, int], Response]] = {"echo": echo_page, "endless": endless_page}


def fault_response(fault: Fault) -> Response:
    """A generic error answer: JSON for 4xx and 500, an HTML gateway page for 502-504."""
    reason = HTTPStatus(fault.status).phrase if fault.status in HTTPStatus._value2member_map_ else "Error"
    headers = []
    if fault.retry_after is not None or fault.status == 429:
        headers.append(("Retry-After", str(int(math.ceil(fault.retry_after if fault.retry_after is not None else 1)))))
    if fault.status in (502, 503, 504):
        resp = html_response(fault.status, f"{fault.status} {reason}", "The server is temporarily unable to service your request.")
        resp.headers = headers
        return resp
    return json_response(fault.status, {"status": fault.status, "error": reason}, headers)

