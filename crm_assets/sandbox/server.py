"""The sandbox's HTTP layer: one threaded server that hosts several API emulators.

Requests are routed by the first path segment: ``/harvest/...`` goes to the emulator named
``harvest``, ``/_sandbox/<name>/...`` to that emulator's admin API, and ``/_sandbox/faults`` to
the shared fault injector (``faults``), which also wraps every API request. The server speaks
HTTP/1.1 and always sends ``Content-Length`` so that clients can keep connections alive, which
matters when a benchmark reads thousands of pages.

An emulator is any object with a ``name``, ``env(base_url) -> dict`` (the ``export`` lines it
contributes), ``handle_api(request, path)`` and ``handle_admin(request, path)``, both returning
a :class:`Response`; ``path`` is the request path below the emulator's prefix. Salesforce
is the exception: its API is served over HTTPS on its own port at root-level paths
(``salesforce_tls``), and only its admin routes are here.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from crm_assets.sandbox.faults import FaultInjector

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
    # How the transport spoils the answer (a fault kind of `faults.TRANSPORT_KINDS`) and how long
    # it waits before sending anything.
    transport: str | None = None
    delay: float = 0.0


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
                emulator = self.emulators[name]
                return self.faults.serve(name, request, lambda: emulator.handle_api(request, "/" + sub))
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
        try:
            self._send(response)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout) first
            self.close_connection = True

    def _send(self, response: Response) -> None:
        """Send `response`, spoiled as its ``transport`` fault says."""
        if response.delay:
            time.sleep(response.delay)
        if response.transport == "reset":  # a reset instead of any answer: linger 0 makes close send RST
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        body = response.body
        sent = body[: len(body) // 2] if response.transport in ("truncate", "cut") else body
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(body if response.transport == "truncate" else sent)))
        for name, value in response.headers:
            self.send_header(name, value)
        if response.transport == "truncate":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(sent)

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
