"""The Salesforce emulator: an org that simple-salesforce 1.12.10 talks to, unchanged, over HTTPS.

It listens on its own TLS socket (``salesforce_tls``; certificate generated at start, its CA
exported as ``SALESFORCE_CA_BUNDLE``) at root-level paths as Salesforce serves them:

- ``POST /services/Soap/u/{version}`` — SOAP ``login`` with username and password + security
  token; a bad login is a 500 SOAP fault ``INVALID_LOGIN`` with ``sf:exceptionCode`` (spec §2.1);
- ``POST /services/oauth2/token`` — ``grant_type=client_credentials`` (HTTP Basic or form
  client id/secret) and ``grant_type=password`` (client id/secret, username, password + token);
  errors ``{"error", "error_description"}`` (spec §2.2);
- ``/services/data/...`` — REST (``salesforce_rest``): versions, describes, sObject rows, SOQL
  queries with ``nextRecordsUrl``, sObject collections, Bulk API 2.0 ingest;
- ``/services/async/{version}/job...`` — Bulk API 1.0 with JSON (``salesforce_bulk``).

Login answers ``https://localhost:PORT`` (``SALESFORCE_LOGIN_URL``); the data APIs are served on
the instance ``https://127.0.0.1:PORT`` (``SALESFORCE_INSTANCE_URL``) that login returns, and
answer 404 on the login host, as ``login.salesforce.com`` serves no data (spec §8). Records live
in :class:`~crm_assets.sandbox.salesforce_org.Org` (objects in ``salesforce_schema``); the org
starts empty.

Faults: the shared injector's kinds (``faults``) under the API name ``salesforce`` for the data
APIs and ``salesforce_login`` for SOAP and OAuth logins (``--faults salesforce:503@0.05``, or
queued through ``POST /_sandbox/faults``). Data API statuses answer as Salesforce would: 401
``INVALID_SESSION_ID``, 403 ``REQUEST_LIMIT_EXCEEDED``, 500 ``UNKNOWN_EXCEPTION``, 502-504 an HTML
gateway page; ``expire`` kills the session the request carries first. Salesforce's own kinds:
``salesforce:lock@P`` (each record fails ``UNABLE_TO_LOCK_ROW`` with probability P),
``salesforce:batch_failed@P`` (a Bulk 1.0 batch ends ``Failed``), ``salesforce:session_expiry=N``
(sessions die after N data requests: REST 401, Bulk 1.0 400 ``InvalidSessionId``). The admin API
(``salesforce_admin``, plain HTTP under ``/_sandbox/salesforce/``) queues them by count too.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from crm_assets.sandbox.salesforce_admin import SalesforceAdmin
from crm_assets.sandbox.salesforce_bulk import BulkV1, bulk_error
from crm_assets.sandbox.salesforce_bulk2 import BulkV2
from crm_assets.sandbox.salesforce_collections import Collections
from crm_assets.sandbox.salesforce_org import USER_ID, USERNAME, Org
from crm_assets.sandbox.salesforce_rest import Rest, rest_error
from crm_assets.sandbox.salesforce_tls import start_https
from crm_assets.sandbox.faults import Fault, FaultInjector, fault_response
from crm_assets.sandbox.server import Request, Response, json_response

ORG_ID = "00D8c0000000001EAA"
PASSWORD = "sandbox&Pass-7Qv"
SECURITY_TOKEN = "sbxSecurityToken42"
CLIENT_ID = "3MVG9sandbox.crm_assets.consumer"
CLIENT_SECRET = "sandbox-consumer-secret-5d1f"
LOGIN_HOST = "localhost"
INSTANCE_HOST = "127.0.0.1"
INVALID_LOGIN = "Invalid username, password, security token; or user locked out."
LOGIN_FAULTS = "salesforce_login"  # the fault injector's name for the login requests
SOAP_NS = 'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'


class SalesforceFaults:
    """Salesforce's own fault kinds: probabilities from ``--faults`` and counts from the admin API."""

    def __init__(self, seed: int, rules: list[str]):
        self.lock = threading.Lock()
        self.rng = random.Random(f"salesforce-faults:{seed}")
        self.probability: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.session_expiry: int | None = None
        for rule in rules:
            kind, sep, value = rule.partition("@")
            if sep:
                self.probability[kind] = float(value)
            else:
                self.session_expiry = int(rule.partition("=")[2])

    def due(self, kind: str) -> bool:
        with self.lock:
            if self.count.get(kind, 0) > 0:
                self.count[kind] -= 1
                return True
            return self.rng.random() < self.probability.get(kind, 0.0)

    def clear(self) -> None:
        with self.lock:
            self.probability.clear()
            self.count.clear()
            self.session_expiry = None

    def describe(self) -> dict[str, Any]:
        with self.lock:
            return {
                "probability": dict(self.probability),
                "count": dict(self.count),
                "session_expiry": self.session_expiry,
            }


class SalesforceEmulator:
    name = "salesforce"

    def __init__(self, faults: FaultInjector, seed: int = 1):
        self.faults = faults
        self.sf_faults = SalesforceFaults(seed, faults.named_rules.get(self.name, []))
        self.org = Org(lock_fault=lambda: self.sf_faults.due("lock"))
        self.bulk = BulkV1(self.org)
        self.bulk.fail_batch = lambda: self.sf_faults.due("batch_failed")
        self.rest = Rest(self)
        self.collections = Collections(self.org)
        self.bulk2 = BulkV2(self.org)
        self.admin = SalesforceAdmin(self)
        self.lock = threading.Lock()
        self.sessions: dict[str, int | None] = {}
        self.requests: deque[dict[str, Any]] = deque(maxlen=200_000)  # the latest ones; `received` counts all
        self.received = 0
        self.port = 0
        self.ca_bundle = ""

    # -- process wiring --

    def listen(self, host: str) -> None:
        """Start the HTTPS listener (a daemon thread) on a free port of `host`."""
        server, ca = start_https(host, self.handle_https)
        self.port, self.ca_bundle = server.server_address[1], str(ca)

    @property
    def login_url(self) -> str:
        return f"https://{LOGIN_HOST}:{self.port}"

    @property
    def instance_url(self) -> str:
        return f"https://{INSTANCE_HOST}:{self.port}"

    def env(self, base_url: str) -> dict[str, str]:
        return {
            "SALESFORCE_LOGIN_URL": self.login_url,
            "SALESFORCE_INSTANCE_URL": self.instance_url,
            "SALESFORCE_USERNAME": USERNAME,
            "SALESFORCE_PASSWORD": PASSWORD,
            "SALESFORCE_SECURITY_TOKEN": SECURITY_TOKEN,
            "SALESFORCE_CLIENT_ID": CLIENT_ID,
            "SALESFORCE_CLIENT_SECRET": CLIENT_SECRET,
            "SALESFORCE_CA_BUNDLE": self.ca_bundle,
        }

    def handle_api(self, request: Request, path: str) -> Response:
        return rest_error(
            404, "NOT_FOUND", f"Salesforce is served over HTTPS at {self.instance_url} (root-level paths)"
        )

    def handle_admin(self, request: Request, path: str) -> Response:
        return self.admin.handle(request, path)

    # -- sessions --

    def new_session(self) -> str:
        session = f"{ORG_ID[:15]}!{secrets.token_urlsafe(36)}"
        with self.lock:
            self.sessions[session] = self.sf_faults.session_expiry
        return session

    def use_session(self, session: str | None) -> bool:
        """Whether `session` is live; counts one use against its expiry."""
        with self.lock:
            if not session or session not in self.sessions:
                return False
            left = self.sessions[session]
            if left is not None:
                if left <= 0:
                    return False
                self.sessions[session] = left - 1
            return True

    def kill_session(self, session: str | None) -> None:
        with self.lock:
            if session in self.sessions:
                self.sessions[session] = 0

    def expire_sessions(self, after: int | None = 0) -> int:
        """Every live session gets `after` more requests (0: dies now; None: never dies)."""
        with self.lock:
            for session in self.sessions:
                self.sessions[session] = after
            return len(self.sessions)

    # -- HTTPS entry point --

    def handle_https(self, request: Request) -> Response:
        began = time.monotonic()
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "host": request.host,
            "time": dt.datetime.now(dt.UTC).isoformat(),
        }
        path = request.path
        login = path.startswith("/services/Soap/u/") or path.rstrip("/") == "/services/oauth2/token"
        api = LOGIN_FAULTS if login else self.name
        response = self.faults.serve(api, request, lambda: self._route(request, entry))
        if response.transport:
            entry["fault"] = response.transport
        entry.update(status=response.status, ms=round((time.monotonic() - began) * 1000, 1))
        with self.lock:
            self.received += 1
            entry["seq"] = self.received
            self.requests.append(entry)
        return response

    def _route(self, request: Request, entry: dict[str, Any]) -> Response:
        path = request.path
        if path.startswith("/services/Soap/u/") or path.rstrip("/") == "/services/oauth2/token":
            entry["api"] = "soap" if path.startswith("/services/Soap/u/") else "oauth"
            fault = self.faults.take(LOGIN_FAULTS)
            if fault is not None:
                entry["fault"] = fault.status
                return fault_response(fault)
            return self._soap_login(request, path, entry) if entry["api"] == "soap" else self._oauth(request, entry)
        bulk = path.startswith("/services/async/")
        if not (bulk or path.startswith("/services/data")):
            return rest_error(404, "NOT_FOUND", "The requested resource does not exist")
        entry["api"] = "bulk" if bulk else "rest"
        if request.host.rsplit(":", 1)[0] == LOGIN_HOST:
            return rest_error(
                404,
                "NOT_FOUND",
                f"The login host serves no data API; use the instance URL {self.instance_url}",
            )
        session = request.headers.get("X-SFDC-Session") if bulk else _bearer(request)
        fault = self.faults.take(self.name, session)
        if fault is not None and fault.kind == "expire":  # the session dies mid-run
            entry["fault"] = "expire"
            self.kill_session(session)
            fault = Fault(401)
        if fault is not None:
            entry["fault"] = entry.get("fault", fault.status)
            return self._fault(fault, bulk)
        if path.rstrip("/") == "/services/data":
            return self.rest.versions()
        if bulk:
            if not self.use_session(request.headers.get("X-SFDC-Session")):
                return bulk_error("InvalidSessionId", "Invalid session id")
            parts = [p for p in path.split("/")[3:] if p]
            version = parts[0] if parts else ""
            if not self.rest.known_version(version):
                return bulk_error("InvalidUrl", f"unsupported API version: {version}", 404)
            _summarize_body(request, entry)
            return self.bulk.handle(request.method, parts[1:], request.body, version)
        if not self.use_session(_bearer(request)):
            return rest_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        _summarize_body(request, entry)
        return self.rest.handle(request, entry)

    def _fault(self, fault: Fault, bulk: bool) -> Response:
        if fault.status == 401:
            return (
                bulk_error("InvalidSessionId", "Invalid session id")
                if bulk
                else rest_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            )
        if fault.status == 403:
            return (
                bulk_error("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", 403)
                if bulk
                else rest_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            )
        if fault.status == 500:
            message = "An unexpected error occurred. Please include this ErrorId if you contact support: 0-0"
            return (
                bulk_error("Unknown", message, 500) if bulk else rest_error(500, "UNKNOWN_EXCEPTION", message)
            )
        return fault_response(fault)

    # -- login --

    def _soap_login(self, request: Request, path: str, entry: dict[str, Any]) -> Response:
        version = path[len("/services/Soap/u/") :].strip("/").split("/")[0]
        try:
            root = ET.fromstring(request.body)
            values = {el.tag.rpartition("}")[2]: (el.text or "") for el in root.iter()}
        except ET.ParseError:
            return _soap_fault("INVALID_LOGIN", "the login request is not well-formed XML")
        entry["body"] = {"username": values.get("username")}
        if not self.rest.known_version(version):
            return _soap_fault(
                "UNSUPPORTED_API_VERSION",
                f"Invalid Api version specified on URL: {version}",
            )
        if values.get("username") != USERNAME or values.get("password") != PASSWORD + SECURITY_TOKEN:
            return _soap_fault("INVALID_LOGIN", INVALID_LOGIN)
        session = self.new_session()
        server = f"{self.instance_url}/services/Soap/u/{version}/{ORG_ID[:15]}"
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope {SOAP_NS} '
            'xmlns="urn:partner.soap.sforce.com" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result>'
            f"<metadataServerUrl>{self.instance_url}/services/Soap/m/{version}/{ORG_ID[:15]}</metadataServerUrl>"
            f"<passwordExpired>false</passwordExpired><sandbox>true</sandbox><serverUrl>{server}</serverUrl>"
            f"<sessionId>{session}</sessionId><userId>{USER_ID}</userId><userInfo><organizationId>{ORG_ID}"
            f"</organizationId><userEmail>{escape(USERNAME)}</userEmail><userName>{escape(USERNAME)}</userName>"
            "</userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"
        )
        return Response(200, body.encode(), content_type="text/xml; charset=utf-8")

    def _oauth(self, request: Request, entry: dict[str, Any]) -> Response:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        grant = form.get("grant_type")
        entry["body"] = {
            "grant_type": grant,
            **({"username": form["username"]} if "username" in form else {}),
        }
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            try:
                client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                client_id = client_secret = None
        if request.method != "POST":
            return json_response(405, {"error": "invalid_request", "error_description": "must use HTTP POST"})
        if grant not in ("client_credentials", "password"):
            return json_response(
                400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}
            )
        if client_id != CLIENT_ID:
            return json_response(
                400, {"error": "invalid_client_id", "error_description": "client identifier invalid"}
            )
        if client_secret != CLIENT_SECRET:
            return json_response(
                400, {"error": "invalid_client", "error_description": "invalid client credentials"}
            )
        if grant == "password" and (
            form.get("username") != USERNAME or form.get("password") != PASSWORD + SECURITY_TOKEN
        ):
            return json_response(
                400, {"error": "invalid_grant", "error_description": "authentication failure"}
            )
        issued = str(int(time.time() * 1000))
        return json_response(
            200,
            {
                "access_token": self.new_session(),
                "instance_url": self.instance_url,
                "id": f"{self.login_url}/id/{ORG_ID}/{USER_ID}",
                "token_type": "Bearer",
                "issued_at": issued,
                "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
                "scope": "api",
            },
        )


def _bearer(request: Request) -> str | None:
    """The session id of a REST request's ``Authorization: Bearer|OAuth`` header."""
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    return token.strip() or None if scheme in ("Bearer", "OAuth") else None


def _soap_fault(code: str, message: str) -> Response:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope {SOAP_NS} '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body><soapenv:Fault><faultcode>{code}</faultcode>"
        f"<faultstring>{code}: {escape(message)}"
        '</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault">'
        f"<sf:exceptionCode>{code}</sf:exceptionCode><sf:exceptionMessage>{escape(message)}</sf:exceptionMessage>"
        "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return Response(500, body.encode(), content_type="text/xml; charset=utf-8")


def _summarize_body(request: Request, entry: dict[str, Any]) -> None:
    """What the request log keeps of a body: record counts and small JSON objects, never secrets."""
    if request.query:
        entry["query"] = dict(request.query)
    if not request.body:
        return
    entry["bytes"] = len(request.body)
    content_type = request.headers.get("Content-Type") or ""
    if "json" not in content_type:
        entry["lines"] = request.body.count(b"\n")
        return
    try:
        body = json.loads(request.body)
    except ValueError:
        return
    if isinstance(body, list):
        entry["records"] = len(body)
    elif isinstance(body, dict):
        if isinstance(body.get("records"), list):
            entry["records"] = len(body["records"])
        entry["body"] = {k: v for k, v in body.items() if not isinstance(v, (list, dict))}
