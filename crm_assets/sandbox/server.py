"""The sandbox's HTTP layer: one threaded server that hosts several API emulators.

Requests are routed by the first path segment: ``/harvest/...`` goes to the emulator named
``harvest`` (later ``/zoho/...``, ``/salesforce/...``), ``/_sandbox/<name>/...`` to that
emulator's admin API, and ``/_sandbox/faults`` to the shared fault injector. The server speaks
HTTP/1.1 and always sends ``Content-Length`` so that clients can keep connections alive, which
matters when a benchmark reads thousands of pages.

An emulator is any object with a ``name``, ``env(base_url) -> dict`` (the ``export`` lines it
contributes), ``handle_api(request, path)`` and ``handle_admin(request, path)``, both returning
a :class:`Response`; ``path`` is the request path below the emulator's prefix.
"""

from __future__ import annotations

import html
import json
import math
import random
import signal
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

try:
    import orjson

    def dumps(obj: Any) -> bytes:
        # orjson hands back an over-allocated buffer shrunk in place; copying it to an
        # exact-size object avoids leaving a ~7 KB heap hole per stored record (1.6 GB of
        # RSS and several seconds of page faults at 200,000 time entries).
        return bytes(memoryview(orjson.dumps(obj)))

except ImportError:  # pragma: no cover - orjson is a project dependency; this keeps the sandbox stdlib-only

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass
class Request:
    """What an emulator needs from an HTTP request, decoupled from ``http.server``."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Message
    body: bytes
    host: str

    def param(self, name: str) -> str | None:
        """The last value of a query parameter (as Rails reads repeated parameters)."""
        value = None
        for key, v in self.query:
            if key == name:
                value = v
        return value

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise BadRequest(f"request body is not JSON: {exc}") from exc

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


class BadRequest(Exception):
    """A malformed admin request; answered with 400 and the message."""


def json_response(status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(status, dumps(obj), headers=list(headers))


def html_response(status: int, title: str, text: str) -> Response:
    body = (
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>"
        f"{title}</title></head>\n<body>\n<h1>{title}</h1>\n<p>{text}</p>\n</body>\n</html>\n"
    )
    return Response(status, body.encode(), content_type="text/html; charset=utf-8")


class Emulator(Protocol):
    name: str

    def env(self, base_url: str) -> dict[str, str]: ...

    def handle_api(self, request: Request, path: str) -> Response: ...

    def handle_admin(self, request: Request, path: str) -> Response: ...


# --- fault injection -------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    status: int
    retry_after: float | None = None


class FaultInjector:
    """Decides, per API request, whether to answer with an error instead.

    Three sources, checked in this order: faults queued through ``POST /_sandbox/faults`` (the
    next ``count`` requests to that API), a sliding-window rate limit, and probabilistic faults
    drawn from a seeded RNG. Emulators call :meth:`take` once per authenticated request.

    The ``--faults`` spec is a comma-separated list of ``api:STATUS@PROBABILITY`` (for example
    ``harvest:429@0.1,harvest:500@0.05``) and ``api:rate=REQUESTS/SECONDS`` (for example
    ``harvest:rate=100/15``, Harvest's documented limit), and ``api:concurrency=N``, which an
    emulator that counts its requests in flight reads through :meth:`concurrency_limit`
    (Zoho's per-app concurrency limit, answered with 429).

    Two kinds answer from the request itself, before the emulator sees it (and before it
    checks credentials), as a misconfigured proxy or a runaway API would:

    - ``echo``: an HTML page (status 200 unless given) quoting the request line and every
      request header, ``Authorization`` included, like a debugging proxy's error page;
    - ``endless``: an empty list page whose ``links.next`` always points one page further, with
      the envelope named after the last path segment, as if the API never reached the end.

    Queue them with ``POST /_sandbox/faults {"api": "harvest", "kind": "echo", "count": 1}``
    (optionally ``"status"``), or draw them at random with ``api:echo@PROBABILITY`` and
    ``api:endless@PROBABILITY`` in the spec.
    """

    def __init__(self, seed: int = 0, spec: str | None = None):
        self._lock = threading.Lock()
        self._rng = random.Random(f"faults:{seed}")
        self._queued: dict[str, deque[Fault]] = {}
        self._random: dict[str, list[tuple[int, float]]] = {}
        self._rates: dict[str, tuple[int, float]] = {}
        self._windows: dict[str, deque[float]] = {}
        self._shaped_queued: dict[str, deque[tuple[str, int]]] = {}
        self._shaped_random: dict[str, list[tuple[str, float]]] = {}
        self._concurrency: dict[str, int] = {}
        if spec:
            self.configure(spec)

    def configure(self, spec: str) -> None:
        for item in filter(None, (part.strip() for part in spec.split(","))):
            api, sep, rule = item.partition(":")
            if not sep or not api:
                raise ValueError(f"fault {item!r}: expected api:STATUS@PROBABILITY or api:rate=N/SECONDS")
            try:
                if rule.startswith("concurrency="):
                    self._concurrency[api] = max(1, int(rule[len("concurrency="):]))
                elif rule.startswith("rate="):
                    count, _, seconds = rule[5:].partition("/")
                    self._rates[api] = (int(count), float(seconds))
                elif rule.partition("@")[0] in SHAPED_FAULTS:
                    kind, _, prob = rule.partition("@")
                    self._shaped_random.setdefault(api, []).append((kind, _probability(prob)))
                else:
                    status, _, prob = rule.partition("@")
                    p = float(prob)
                    if not 0 <= p <= 1:
                        raise ValueError("probability must be within [0, 1]")
                    self._random.setdefault(api, []).append((int(status), p))
            except ValueError as exc:
                raise ValueError(f"fault {item!r}: {exc}") from exc

    def queue(self, api: str, status: int, count: int = 1, retry_after: float | None = None) -> None:
        with self._lock:
            q = self._queued.setdefault(api, deque())
            q.extend(Fault(status, retry_after) for _ in range(count))

    def clear(self, api: str | None = None) -> None:
        with self._lock:
            for table in (self._queued, self._random, self._rates, self._windows, self._shaped_queued, self._shaped_random,
                          self._concurrency):
                if api is None:
                    table.clear()
                else:
                    table.pop(api, None)

    def take(self, api: str) -> Fault | None:
        with self._lock:
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
            for status, p in self._random.get(api, ()):
                if self._rng.random() < p:
                    return Fault(status, 1.0 if status == 429 else None)
        return None

    def concurrency_limit(self, api: str) -> int | None:
        """How many requests to `api` may be in flight at once (None: no limit)."""
        with self._lock:
            return self._concurrency.get(api)

    def queue_shaped(self, api: str, kind: str, count: int = 1, status: int = 200) -> None:
        if kind not in SHAPED_FAULTS:
            raise BadRequest(f"fault kind {kind!r}: expected one of {', '.join(SHAPED_FAULTS)}")
        with self._lock:
            self._shaped_queued.setdefault(api, deque()).extend((kind, status) for _ in range(count))

    def take_shaped(self, api: str, request: Request) -> Response | None:
        """An ``echo`` or ``endless`` answer to `request`, when one is due; the server asks first."""
        with self._lock:
            q = self._shaped_queued.get(api)
            if q:
                kind, status = q.popleft()
            else:
                drawn = [k for k, p in self._shaped_random.get(api, ()) if self._rng.random() < p]
                if not drawn:
                    return None
                kind, status = drawn[0], 200
        return SHAPED_FAULTS[kind](request, status)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "shaped": {api: [{"kind": k, "status": st} for k, st in q] for api, q in self._shaped_queued.items() if q},
                "shaped_random": {api: [{"kind": k, "probability": p} for k, p in rules] for api, rules in self._shaped_random.items()},
                "queued": {api: [vars(f) for f in q] for api, q in self._queued.items() if q},
                "random": {api: [{"status": s, "probability": p} for s, p in rules] for api, rules in self._random.items()},
                "rate_limits": {api: {"requests": n, "seconds": w} for api, (n, w) in self._rates.items()},
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
            api = str(body["api"])
            if "spec" in body:
                self.configure(f"{api}:{body['spec']}")
            elif "kind" in body:
                self.queue_shaped(api, str(body["kind"]), int(body.get("count", 1)), int(body.get("status", 200)))
            else:
                retry = body.get("retry_after")
                self.queue(api, int(body["status"]), int(body.get("count", 1)), None if retry is None else float(retry))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"expected {{api, status, count, retry_after}} or {{api, kind, count}}: {exc}") from exc
        return json_response(200, self.describe())


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


# --- HTTP server -----------------------------------------------------------------------------


class SandboxServer(ThreadingHTTPServer):
    """Threaded HTTP server dispatching to the registered emulators."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulators: Iterable[Emulator], faults: FaultInjector, verbose: bool = False):
        self.emulators = {e.name: e for e in emulators}
        self.faults = faults
        self.verbose = verbose
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for emulator in self.emulators.values():
            out.update(emulator.env(self.url))
        out["CRM_ASSETS_SANDBOX_URL"] = self.url
        return out

    def dispatch(self, request: Request) -> Response:
        path = request.path
        try:
            if path.startswith("/_sandbox/"):
                rest = path[len("/_sandbox/"):]
                if rest == "faults":
                    return self.faults.handle_admin(request)
                if rest == "health":
                    return json_response(200, {"status": "ok", "apis": sorted(self.emulators)})
                name, _, sub = rest.partition("/")
                if name in self.emulators:
                    return self.emulators[name].handle_admin(request, "/" + sub)
                return json_response(404, {"error": f"no sandbox admin route {path}"})
            name, _, sub = path.lstrip("/").partition("/")
            if name in self.emulators:
                return self.faults.take_shaped(name, request) or self.emulators[name].handle_api(request, "/" + sub)
            return html_response(404, "Not Found", f"No emulated API serves {path}.")
        except BadRequest as exc:
            return json_response(400, {"error": str(exc)})
        except Exception as exc:  # an emulator bug must surface in the test, not hang the client
            traceback.print_exc(file=sys.stderr)
            return json_response(500, {"error": "sandbox error", "detail": f"{type(exc).__name__}: {exc}"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "crm-assets-sandbox"
    sys_version = ""
    disable_nagle_algorithm = True
    server: SandboxServer

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        split = urlsplit(self.path)
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        request = Request(self.command, split.path, parse_qsl(split.query, keep_blank_values=True), self.headers, body, host)
        response = self.server.dispatch(request)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


def serve(server: SandboxServer, lifetime: float = 0, on_ready: Callable[[], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT or, when ``lifetime`` > 0, until that many seconds passed.

    ``serve_forever`` runs in a thread so the main thread can wait on signals and the deadline
    and then call ``shutdown`` (which would deadlock if called from the serving thread).
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="sandbox-http", daemon=True)
    thread.start()
    if on_ready is not None:
        on_ready()
    try:
        stop.wait(lifetime if lifetime and lifetime > 0 else None)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
