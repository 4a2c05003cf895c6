"""The Zoho CRM v8 emulator for the six settings tables, written from ``shared/specs/zoho.md``.

Served under ``/zoho``, which is the ``api_domain`` the accounts emulator (``zoho_accounts``)
hands out with every token; nothing exports an API URL, so a client must use ``api_domain``.
Every route wants ``Authorization: Zoho-oauthtoken <access token>`` (§1.5): no header, another
scheme or a token in the query answers 401 ``AUTHENTICATION_FAILURE``; an unknown, expired or
revoked token 401 ``INVALID_TOKEN`` (``{"code","details":{},"message":"invalid oauth token","status":"error"}``).

``GET <api_domain>/crm/v8`` +

- ``/org/currencies`` → ``{"currencies": [...]}``, unpaged, no ``info``; 403 ``CURRENCIES_NOT_ENABLED``
  when multi-currency is off (admin ``settings``). ``/org/currencies/{id}`` one.
- ``/org`` → ``{"org": [one]}``.
- ``/settings/profiles`` → ``{"profiles", "info": {per_page, count, page, more_records, license_limit}}``;
  ``page``, ``per_page`` (1-200, default 200), ``type``. ``/settings/profiles/{id}`` one.
- ``/settings/roles`` → ``{"roles": [...]}``, unpaged, no ``info``. ``/settings/roles/{id}`` one.
- ``/settings/territories`` → ``{"territories", "info": {per_page, count, page, more_records}}``;
  ``page``, ``per_page`` (1-2000, default 2000), ``ids`` (≤100), ``filters`` (URL-encoded JSON, one
  criterion ``{"field": {"api_name"}, "comparator", "value"}`` or ``{"group_operator", "group"}``:
  ``created_time``/``modified_time`` with ``greater_than`` (strict), ``less_than``, ``less_equal``,
  ``equal``, ``between`` (``[from, to]``, both ends included); ``name`` with text comparators;
  ``id``, ``reporting_to.id``, ``manager.id``, ``permission_type``, ``created_by``, ``modified_by``
  with ``equal``/``not_equal``). 400 ``FEATURE_NOT_ENABLED`` when territories are off (admin).
  ``/settings/territories/{id}`` one.
- ``/users`` → ``{"users", "info": {per_page, count, page, more_records}}``; ``type`` (default
  ``AllUsers``: active and inactive, not deleted), ``page``, ``per_page`` (1-200, default 200),
  ``ids``; header ``If-Modified-Since`` (ISO-8601 with offset, or an HTTP date) keeps users whose
  ``Modified_Time`` is at or after it (inclusive; null ``Modified_Time`` never matches) and answers
  304 with an empty body when none does. ``/users/{id}`` one; ``/users/actions/count?type=`` →
  ``{"count": "<n>"}``.

Lists are in id order. An empty result, or a page past the end, is 204 with an empty body.
``per_page`` out of range, an unknown ``type``, malformed ``filters`` or ``If-Modified-Since`` answer
400 ``INVALID_DATA`` with ``details.param_name`` (or ``header_name``); an unknown id 400
``INVALID_DATA`` "the id given seems to be invalid"; an unknown path 404 ``INVALID_URL_PATTERN``;
other methods 405 ``INVALID_REQUEST_METHOD``; module records (``/settings/fields``, ``/<Module>``,
``/<Module>/upsert``) are ``zoho_records``'s, and every POST/PUT body is kept in the request log; a table named in the admin setting ``scope_missing``
401 ``OAUTH_SCOPE_MISMATCH`` (the token lacks that table's scope, §1.6). All errors are ``{code, details, message, status}``.

Limits come from the shared fault injector under the name ``zoho`` (after authentication):
``--faults zoho:429@0.1,zoho:500@0.05,zoho:rate=N/SECONDS,zoho:concurrency=N``. A 429 is Zoho's
``TOO_MANY_REQUESTS`` body (the credits message; the concurrency message when more than N requests
are in flight), without ``Retry-After`` unless the admin setting ``retry_after_header`` is on; a
500 is ``INTERNAL_ERROR``; 502-504 are gateway HTML pages. The admin API is in ``zoho_admin``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from crm_assets.sandbox import zoho_reference as ref
from crm_assets.sandbox.faults import FaultInjector, fault_response
from crm_assets.sandbox.server import Request, Response, json_response
from crm_assets.sandbox.zoho_accounts import RequestLog, TokenStore, ZohoAccountsEmulator
from crm_assets.sandbox.zoho_admin import ZohoAdmin
from crm_assets.sandbox.zoho_data import Dataset, module_fields
from crm_assets.sandbox.zoho_records import ModuleRecords, owns

Record = dict[str, Any]
PREFIX = f"/crm/{ref.API_VERSION}"
LOGGED_HEADERS = ("If-Modified-Since", "User-Agent", "Content-Type")
ID_SEGMENT = re.compile(r"/\d{1,19}(?=/|$)")
SINGLE = re.compile(r"^(/org/currencies|/settings/profiles|/settings/roles|/settings/territories|/users)/(\d{1,19})$")


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]):
        super().__init__(body.get("message"))
        self.status, self.body = status, body


def invalid(param: str, message: str, header: bool = False) -> ApiError:
    return ApiError(400, ref.error_body("INVALID_DATA", message, **{"header_name" if header else "param_name": param}))


def _user_types(admin_id: str) -> dict[str, Callable[[Record], bool]]:
    def live(u: Record) -> bool:
        return u["status"] != "deleted"

    def admin(u: Record) -> bool:
        return live(u) and u["profile"]["name"] == "Administrator"

    return {
        "AllUsers": live, "ActiveUsers": lambda u: u["status"] == "active", "DeactiveUsers": lambda u: u["status"] == "inactive",
        "ConfirmedUsers": lambda u: live(u) and u["confirm"], "NotConfirmedUsers": lambda u: live(u) and not u["confirm"],
        "DeletedUsers": lambda u: u["status"] == "deleted", "ActiveConfirmedUsers": lambda u: u["status"] == "active" and u["confirm"],
        "AdminUsers": admin, "ActiveConfirmedAdmins": lambda u: admin(u) and u["status"] == "active" and u["confirm"],
        "CurrentUser": lambda u: u["id"] == admin_id,
    }


class ZohoEmulator(ZohoAdmin):
    """Serves ``/zoho/crm/v8/...``; admin API under ``/_sandbox/zoho/...``."""

    name = "zoho"

    def __init__(self, seed: int = 1, scale: float = 1.0, anchor: dt.date | None = None,
                 faults: FaultInjector | None = None, tokens: TokenStore | None = None, log: RequestLog | None = None):
        self.seed, self.scale = seed, scale
        self.anchor = anchor or dt.datetime.now(dt.UTC).date()
        self.faults = faults or FaultInjector(seed)
        self.tokens = tokens or TokenStore()
        self.log = log or RequestLog()
        self.accounts = ZohoAccountsEmulator(self.tokens, self.log, crm_prefix="/" + self.name, faults=self.faults)
        self.lock = threading.RLock()
        self.in_flight = 0
        self.settings: dict[str, Any] = {"multi_currency": True, "territories_enabled": True, "latency": 0.0,
                                         "retry_after_header": False, "scope_missing": []}
        data = Dataset(seed, scale, self.anchor)
        self.start_date = data.start_date
        self.tables: dict[str, list[Record]] = {t: sorted(rows, key=lambda r: int(r["id"])) for t, rows in data.tables.items()}
        self.user_types = _user_types(data.admin["id"])
        self.admin_user = data.admin
        self.records = ModuleRecords(module_fields(), self.tables["users"])
        self.modifications = 0
        errors = [e for table, rows in self.tables.items() for r in rows
                  for e in ref.shape_errors(r, ref.RECORDS[table], f"{table} id={r['id']}")]
        if errors:
            raise RuntimeError("zoho sandbox records do not match the reference:\n" + "\n".join(errors[:20]))

    def env(self, base_url: str) -> dict[str, str]:
        return {"ZOHO_START_DATE": self.start_date}

    # -- the API --

    def handle_api(self, request: Request, path: str) -> Response:
        answer = self._answer(request, path)
        headers = {h: request.headers.get(h) for h in LOGGED_HEADERS if request.headers.get(h) is not None}
        scheme = (request.headers.get("Authorization") or "").partition(" ")[0]
        route = ID_SEGMENT.sub("/{id}", path)
        entry = {"api": "crm", "method": request.method, "path": path, "query": list(request.query),
                 "headers": headers, "auth_scheme": scheme or None, "status": answer.status}
        if request.method in ("POST", "PUT") and request.body:
            try:
                entry["body"] = json.loads(request.body)
            except ValueError:
                entry["body"] = request.body.decode("utf-8", "replace")
        self.log.add(entry, f"crm {request.method} {route}")
        return answer

    def _answer(self, request: Request, path: str) -> Response:
        if not path.startswith(PREFIX + "/"):
            return _not_found()
        path = path[len(PREFIX):]
        table, record_id = self._route(path)
        records_route = table is None and owns(path)
        if table is None and not records_route and path != "/users/actions/count":
            return _not_found()
        if not records_route and request.method not in ("GET", "HEAD"):
            return json_response(405, ref.error_body("INVALID_REQUEST_METHOD", "The http request method type is not a valid one"))
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        if scheme != "Zoho-oauthtoken" or not token.strip():
            return json_response(401, ref.AUTHENTICATION_FAILURE)
        if self.tokens.state(token.strip()) != "live":
            return json_response(401, ref.INVALID_TOKEN)
        fault = self.faults.take(self.name, token.strip())
        if fault is not None and fault.kind == "expire":  # the token dies mid-run
            self.tokens.expire(token.strip())
            return json_response(401, ref.INVALID_TOKEN)
        limit = self.faults.concurrency_limit(self.name)
        with self.lock:
            self.in_flight += 1
            crowded = limit is not None and self.in_flight > limit
        try:
            if self.settings["latency"]:
                time.sleep(float(self.settings["latency"]))
            if crowded or fault is not None:
                return self._fault(fault, crowded)
            with self.lock:
                if records_route:
                    return self.records.serve(request, path)
                if path == "/users/actions/count":
                    return json_response(200, {"count": str(len(self._users(request)))})
                return self._serve(request, table, record_id)
        except ApiError as exc:
            return json_response(exc.status, exc.body)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _route(self, path: str) -> tuple[str | None, str | None]:
        for table, endpoint in ref.ENDPOINTS.items():
            if path == endpoint.path:
                return table, None
        m = SINGLE.match(path)
        if m:
            return next(t for t, e in ref.ENDPOINTS.items() if e.path == m.group(1)), m.group(2)
        return None, None

    def _fault(self, fault: Any, crowded: bool) -> Response:
        status = 429 if crowded else fault.status
        headers = []
        if status == 429:
            retry = None if crowded else fault.retry_after
            if self.settings["retry_after_header"]:
                headers.append(("Retry-After", str(int(retry or 1))))
            message = ref.CONCURRENCY_EXCEEDED if crowded else ref.CREDITS_EXCEEDED
            return json_response(429, ref.error_body("TOO_MANY_REQUESTS", message), headers)
        if status == 500:
            return json_response(500, ref.error_body("INTERNAL_ERROR", "Internal Server Error"))
        return fault_response(fault)

    def _serve(self, request: Request, table: str, record_id: str | None) -> Response:
        endpoint = ref.ENDPOINTS[table]
        if table in self.settings["scope_missing"]:
            raise ApiError(401, ref.OAUTH_SCOPE_MISMATCH)
        if table == "currencies" and not self.settings["multi_currency"]:
            raise ApiError(403, ref.CURRENCIES_NOT_ENABLED)
        if table == "territories" and not self.settings["territories_enabled"]:
            raise ApiError(400, ref.FEATURE_NOT_ENABLED)
        rows = self.tables[table]
        if record_id is not None:
            found = [r for r in rows if r["id"] == record_id]
            if not found:
                raise ApiError(400, ref.error_body("INVALID_DATA", "the id given seems to be invalid", resource_path_index=1))
            return json_response(200, {endpoint.envelope: found})
        if table == "users":
            rows = self._users(request)
            since = request.headers.get("If-Modified-Since")
            if since:
                cutoff = _since(since)
                rows = [u for u in rows if u["Modified_Time"] and ref.parse_time(u["Modified_Time"]) >= cutoff]
                if not rows:
                    return Response(304)
        elif table == "territories":
            rows = [r for r in _with_ids(rows, request.param("ids")) if _territory_filter(request.param("filters"))(r)]
        elif table == "profiles" and request.param("type"):
            rows = [r for r in rows if r["type"] == request.param("type")]
        if endpoint.max_per_page is None:
            return json_response(200, {endpoint.envelope: rows}) if rows else Response(204)
        extra = {"license_limit": 200} if table == "profiles" else {}
        return _page(request, endpoint, rows, extra)

    def _users(self, request: Request) -> list[Record]:
        kind = request.param("type") or "AllUsers"
        rule = self.user_types.get(kind)
        if rule is None:
            raise invalid("type", f"type must be one of {', '.join(ref.USER_TYPES)}")
        return _with_ids([u for u in self.tables["users"] if rule(u)], request.param("ids"))


def _not_found() -> Response:
    return json_response(404, ref.error_body("INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"))


def _page(request: Request, endpoint: ref.Endpoint, rows: list[Record], extra: dict[str, Any]) -> Response:
    assert endpoint.max_per_page is not None
    try:
        per_page = int(request.param("per_page") or endpoint.max_per_page)
        page = int(request.param("page") or 1)
    except ValueError:
        raise invalid("page", "page and per_page must be whole numbers") from None
    if not 1 <= per_page <= endpoint.max_per_page:
        raise invalid("per_page", f"per_page must be between 1 and {endpoint.max_per_page}")
    if page < 1:
        raise invalid("page", "page must be 1 or more")
    chunk = rows[(page - 1) * per_page: page * per_page]
    if not chunk:
        return Response(204)
    info = {"per_page": per_page, "count": len(chunk), "page": page, "more_records": page * per_page < len(rows), **extra}
    return json_response(200, {endpoint.envelope: chunk, "info": info})


def _with_ids(rows: list[Record], ids: str | None) -> list[Record]:
    if not ids:
        return rows
    wanted = [i.strip() for i in ids.split(",") if i.strip()]
    if len(wanted) > 100:
        raise invalid("ids", "at most 100 ids")
    return [r for r in rows if r["id"] in wanted]


def _since(header: str) -> dt.datetime:
    """``If-Modified-Since`` as ISO-8601 with an offset (what Zoho documents) or an HTTP date."""
    try:
        return ref.parse_time(header)
    except ValueError:
        pass
    try:
        value = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        value = None
    if value is None or value.tzinfo is None:
        raise invalid("If-Modified-Since", "give an ISO-8601 time with an offset, e.g. 2019-07-25T15:26:49+05:30", header=True)
    return value


def _territory_filter(text: str | None) -> Callable[[Record], bool]:
    """The predicate of a territories ``filters`` parameter (§2.5)."""
    if not text:
        return lambda r: True
    try:
        return _criterion(json.loads(text))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise invalid("filters", f"invalid filters: {exc}") from None


def _criterion(node: dict[str, Any]) -> Callable[[Record], bool]:
    if "group" in node:
        parts = [_criterion(n) for n in node["group"]]
        if str(node.get("group_operator", "AND")).upper() == "OR":
            return lambda r: any(p(r) for p in parts)
        return lambda r: all(p(r) for p in parts)
    field, comparator, value = node["field"]["api_name"], node["comparator"], node["value"]
    if field in ("created_time", "modified_time"):
        if comparator not in ref.TIME_COMPARATORS:
            raise ValueError(f"{comparator} is not allowed for {field}")
        if comparator == "between":
            low, high = (ref.parse_time(v) for v in value)
            return lambda r: low <= ref.parse_time(r[field]) <= high
        bound = ref.parse_time(value)
        tests = {"greater_than": lambda t: t > bound, "less_than": lambda t: t < bound,
                 "less_equal": lambda t: t <= bound, "equal": lambda t: t == bound}
        test = tests[comparator]
        return lambda r: test(ref.parse_time(r[field]))
    if field == "name":
        text = str(value)
        tests = {"equal": lambda s: s == text, "not_equal": lambda s: s != text, "starts_with": lambda s: s.startswith(text),
                 "ends_with": lambda s: s.endswith(text), "contains": lambda s: text in s, "not_contains": lambda s: text not in s}
        if comparator not in tests:
            raise ValueError(f"{comparator} is not allowed for name")
        name_test = tests[comparator]
        return lambda r: name_test(r["name"])
    path = ref.ID_FILTER_FIELDS.get(field)
    if path is None or comparator not in ("equal", "not_equal"):
        raise ValueError(f"cannot filter on {field} with {comparator}")

    def pick(r: Record) -> Any:
        v: Any = r
        for key in path:
            v = v.get(key) if isinstance(v, dict) else None
        return v

    return (lambda r: pick(r) == str(value)) if comparator == "equal" else (lambda r: pick(r) != str(value))


def zoho_emulators(seed: int, scale: float, anchor: dt.date | None, faults: FaultInjector) -> list[Any]:
    """The accounts server and the CRM, which share tokens and the request log (what ``__main__`` serves)."""
    crm = ZohoEmulator(seed, scale, anchor, faults)
    return [crm.accounts, crm]


__all__ = ["ZohoEmulator", "zoho_emulators"]
