"""Zoho CRM v8 module records for the emulator, written from ``shared/specs/zoho.md`` §3 and §5.

Routes below ``<api_domain>/crm/v8`` (authentication, faults and the request log are the CRM
emulator's; every POST/PUT body is logged whole):

- ``GET /settings/fields?module=<Module>`` → ``{"fields": [...]}`` (``api_name``, ``data_type``,
  ``json_type``, ``length``, ``system_mandatory``, ``read_only``, ``unique``, ``lookup``).
- ``GET /<Module>?fields=A,B`` (required, ≤50) with ``page``, ``per_page`` (≤200), ``sort_by``
  (``id``, ``Created_Time``, ``Modified_Time``), ``sort_order`` (default ``desc``); records beyond
  the first 2000 answer ``DISCRETE_PAGINATION_LIMIT_EXCEEDED``; nothing to list is 204.
- ``POST /<Module>`` (insert), ``PUT /<Module>`` (update, each item carries ``id``) and
  ``POST /<Module>/upsert`` (``duplicate_check_fields``, default: the module's system duplicate
  field, then its unique fields): ``{"data": [≤100], "trigger": [...]}``. One result per item,
  in order: ``SUCCESS`` (upsert adds ``action`` and ``duplicate_field``), or ``INVALID_DATA``
  (unknown field, read-only field, wrong type with ``expected_data_type``, text over
  ``maximum_length``, unknown record or user id), ``MANDATORY_NOT_FOUND``, ``DUPLICATE_DATA``
  (a unique field's value held by another record), each with ``api_name`` and ``json_path``.
  HTTP 201 (insert) or 200 when every item succeeded, 207 when some did, 400 when none did.
  ``trigger`` omitted runs workflows, approvals and blueprints; ``[]`` runs none (§3.2); what ran
  is kept per record (admin ``automations``).

Admin (``/_sandbox/zoho/modules...``): ``GET /<Module>`` every record exactly as stored,
``GET /automations``, ``POST /reset`` (every module empty, no faults), ``POST /faults``
``{status: 429|5xx, count, retry_after?}``: the next record writes (not reads) answer that error,
Zoho's ``TOO_MANY_REQUESTS`` or ``INTERNAL_ERROR`` body, to test a writer's retries alone.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from typing import Any

from crm_assets.sandbox import zoho_reference as ref
from crm_assets.sandbox.server import Request, Response, json_response
from crm_assets.sandbox.zoho_data import ID_BASE, stamp

Record = dict[str, Any]
MAX_RECORDS = 100
MAX_FIELDS = 50
DISCRETE_LIMIT = 2000
TRIGGERS = ("approval", "workflow", "blueprint", "pathfinder", "orchestration")
TRIGGERS_WHEN_OMITTED = ["approval", "workflow", "blueprint"]
# §3.2: each module's system duplicate-check field, checked first by upsert.
SYSTEM_DUPLICATE_FIELDS = {"Leads": "Email", "Contacts": "Email", "Accounts": "Account_Name", "Deals": "Deal_Name"}
# What names a record when another record's lookup shows it.
DISPLAY_FIELDS = {"Leads": "Last_Name", "Contacts": "Last_Name", "Accounts": "Account_Name", "Deals": "Deal_Name"}
ORG_OFFSET = "+05:30"
_MODULE_PATH = re.compile(r"^/([A-Za-z][A-Za-z0-9_]*)(/upsert)?$")
_DATE = re.compile(r"^\d{4}-\d\d-\d\d$")
_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TEXT_TYPES = {"text", "textarea", "email", "phone", "website", "picklist", "autonumber"}
_NUMBER_TYPES = {"double", "currency", "decimal", "percent"}
_LOOKUPS = {"lookup", "ownerlookup", "userlookup"}
_SETTINGS_PATHS = ("/org", "/settings/", "/users", "/coql")


class Refused(Exception):
    """A request-level error: the whole call is answered with it."""

    def __init__(self, status: int, body: Record):
        super().__init__(body.get("message"))
        self.status, self.body = status, body


class RowError(Exception):
    """One item's error, answered in its place of the ``data`` list."""

    def __init__(self, code: str, message: str, **details: Any):
        super().__init__(message)
        self.body = {"code": code, "details": details, "message": message, "status": "error"}


def owns(path: str) -> bool:
    """Whether `path` (below ``/crm/v8``) is a module-records route."""
    return path == "/settings/fields" or (_MODULE_PATH.match(path) is not None and not path.startswith(_SETTINGS_PATHS))


class ModuleRecords:
    """Every module's records and field metadata; the caller holds the emulator's lock."""

    def __init__(self, fields: dict[str, list[Record]], users: list[Record]):
        self.fields = fields
        self.by_name = {m: {f["api_name"]: f for f in fs} for m, fs in fields.items()}
        self.users = {u["id"]: u for u in users}
        self.admin_user = users[0]
        self.records: dict[str, dict[str, Record]] = {m: {} for m in fields}
        # (module, field) -> folded value -> ids holding it: a lookup by a unique or duplicate-
        # check field costs the same however many records the module holds, as in Zoho.
        self.index: dict[tuple[str, str], dict[Any, set[str]]] = {}
        self.automations: list[Record] = []
        self.write_faults: list[tuple[int, int | None]] = []  # (status, Retry-After) for the next writes
        self.serial = 0
        self.lock = threading.RLock()

    # -- routes --

    def serve(self, request: Request, path: str) -> Response:
        try:
            if path == "/settings/fields":
                if request.method != "GET":
                    raise _method()
                return json_response(200, {"fields": self.fields[self._module(request.param("module"), param=True)]})
            m = _MODULE_PATH.match(path)
            assert m is not None
            module, upsert = self._module(m.group(1)), bool(m.group(2))
            if request.method == "GET" and not upsert:
                return self._list(module, request)
            operation = {("POST", False): "insert", ("PUT", False): "update", ("POST", True): "upsert"}.get(
                (request.method, upsert))
            if operation is None:
                raise _method()
            return self._write(module, operation, request)
        except Refused as exc:
            return json_response(exc.status, exc.body)

    def admin(self, request: Request, path: str) -> Response:
        with self.lock:
            if path == "/reset" and request.method == "POST":
                self.records = {m: {} for m in self.fields}
                self.index = {}
                self.automations, self.write_faults = [], []
                return json_response(200, {"modules": sorted(self.records)})
            if path == "/faults" and request.method == "POST":
                body = request.json()
                fault = (int(body.get("status", 429)), body.get("retry_after"))
                self.write_faults.extend([fault] * int(body.get("count", 1)))
                return json_response(200, {"queued": len(self.write_faults)})
            if path == "/automations" and request.method == "GET":
                return json_response(200, {"automations": list(self.automations)})
            module = path.strip("/")
            if request.method == "GET" and module in self.records:
                return json_response(200, {"records": list(self.records[module].values())})
        return json_response(404, {"error": f"no zoho modules admin route {request.method} {path}",
                                   "modules": sorted(self.records)})

    def _module(self, name: str | None, param: bool = False) -> str:
        if not name:
            raise Refused(400, ref.error_body("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                                              param_name="module"))
        if name not in self.fields:
            where = {"param_name": "module"} if param else {"resource_path_index": 0}
            raise Refused(400, ref.error_body("INVALID_MODULE", "the module name given seems to be invalid", **where))
        return name

    # -- listing (§5.1) --

    def _list(self, module: str, request: Request) -> Response:
        names = [n.strip() for n in (request.param("fields") or "").split(",") if n.strip()]
        if not names:
            raise Refused(400, ref.error_body("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                                              param_name="fields"))
        if len(names) > MAX_FIELDS:
            raise Refused(400, ref.error_body("LIMIT_EXCEEDED", "fields limit exceeded", limit=MAX_FIELDS,
                                              param_name="fields"))
        unknown = [n for n in names if n != "id" and n not in self.by_name[module]]
        if unknown:
            raise Refused(400, ref.error_body("INVALID_DATA", f"invalid field {unknown[0]}", param_name="fields"))
        try:
            page, per_page = int(request.param("page") or 1), int(request.param("per_page") or 200)
        except ValueError:
            raise Refused(400, ref.error_body("INVALID_DATA", "page and per_page must be numbers",
                                              param_name="page")) from None
        if not 1 <= per_page <= 200 or page < 1:
            raise Refused(400, ref.error_body("INVALID_DATA", "per_page must be 1 to 200, page 1 or more",
                                              param_name="per_page"))
        if page * per_page > DISCRETE_LIMIT:
            raise Refused(400, ref.error_body("DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                                              "You can only get the first 2000 records without using page_token param",
                                              limit=DISCRETE_LIMIT))
        sort_by, order = request.param("sort_by") or "id", request.param("sort_order") or "desc"
        if sort_by not in ("id", "Created_Time", "Modified_Time") or order not in ("asc", "desc"):
            raise Refused(400, ref.error_body("INVALID_DATA", "invalid sort_by or sort_order", param_name="sort_by"))
        with self.lock:
            rows = list(self.records[module].values())

        def order_key(r: Record) -> Any:
            return int(r["id"]) if sort_by == "id" else (ref.parse_time(r[sort_by]), int(r["id"]))

        rows.sort(key=order_key, reverse=order == "desc")
        chunk = rows[(page - 1) * per_page: page * per_page]
        if not chunk:
            return Response(204)
        data = [{"id": r["id"], **{n: r.get(n) for n in names if n != "id"}} for r in chunk]
        info = {"per_page": per_page, "count": len(data), "page": page, "sort_by": sort_by, "sort_order": order,
                "more_records": page * per_page < len(rows)}
        return json_response(200, {"data": data, "info": info})

    # -- writing (§3.1-§3.4) --

    def _write(self, module: str, operation: str, request: Request) -> Response:
        with self.lock:
            fault = self.write_faults.pop(0) if self.write_faults else None
        if fault is not None:
            status, retry_after = fault
            if status == 429:
                headers = [("Retry-After", str(retry_after))] if retry_after is not None else []
                return json_response(429, ref.error_body("TOO_MANY_REQUESTS", ref.CREDITS_EXCEEDED), headers)
            return json_response(status, ref.error_body("INTERNAL_ERROR", "Internal Server Error"))
        try:
            body = request.json()
        except Exception:  # noqa: BLE001 - the sandbox answers a malformed body as Zoho does
            raise Refused(400, ref.error_body("INVALID_DATA", "body is not valid JSON", param_name="body")) from None
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise Refused(400, ref.error_body("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                                              param_name="data"))
        if len(items) > MAX_RECORDS:
            raise Refused(400, ref.error_body("LIMIT_EXCEEDED", f"at most {MAX_RECORDS} records per call",
                                              limit=MAX_RECORDS, param_name="data"))
        ran = self._triggers(body)
        duplicate_fields = self._duplicate_fields(module, body) if operation == "upsert" else []
        results = []
        with self.lock:
            for index, item in enumerate(items):
                try:
                    results.append(self._one(module, operation, index, item, duplicate_fields, ran))
                except RowError as exc:
                    results.append(exc.body)
        good = sum(r["status"] == "success" for r in results)
        status = (201 if operation == "insert" else 200) if good == len(results) else 207 if good else 400
        return json_response(status, {"data": results})

    def _triggers(self, body: Record) -> list[str]:
        if "trigger" not in body:
            return list(TRIGGERS_WHEN_OMITTED)
        given = body["trigger"]
        if not isinstance(given, list) or any(t not in TRIGGERS for t in given):
            raise Refused(400, ref.error_body("INVALID_DATA", f"trigger must be a list of {', '.join(TRIGGERS)}",
                                              param_name="trigger"))
        return list(given)

    def _duplicate_fields(self, module: str, body: Record) -> list[str]:
        unique = [f["api_name"] for f in self.fields[module] if f["unique"]]
        system = [SYSTEM_DUPLICATE_FIELDS[module]] if module in SYSTEM_DUPLICATE_FIELDS else []
        given = body.get("duplicate_check_fields")
        if given is None:
            return system + unique
        if not isinstance(given, list) or any(f not in (*system, *unique) for f in given):
            raise Refused(400, ref.error_body("INVALID_DATA", "duplicate_check_fields must name unique fields",
                                              param_name="duplicate_check_fields"))
        return list(given)

    def _one(self, module: str, operation: str, index: int, item: Any, duplicate_fields: list[str],
             ran: list[str]) -> Record:
        path = f"$.data[{index}]"
        if not isinstance(item, dict):
            raise RowError("INVALID_DATA", "invalid data", json_path=path)
        values = {k: v for k, v in item.items() if k != "id" and not k.startswith("$")}
        for name, value in values.items():
            self._check(module, name, value, f"{path}.{name}")
        existing: Record | None = None
        matched_on: str | None = None
        if "id" in item and operation != "insert":
            existing = self.records[module].get(str(item["id"]))
            if existing is None:
                raise RowError("INVALID_DATA", "the id given seems to be invalid", api_name="id", json_path=f"{path}.id")
        elif "id" in item:
            raise RowError("INVALID_DATA", "the id cannot be given for a new record", api_name="id",
                           json_path=f"{path}.id")
        elif operation == "update":
            raise RowError("MANDATORY_NOT_FOUND", "required field not found", api_name="id", json_path=f"{path}.id")
        elif operation == "upsert":
            for name in duplicate_fields:
                if values.get(name) is not None:
                    existing = self._find(module, name, values[name])
                    if existing is not None:
                        matched_on = name
                        break
        for field in self.fields[module]:
            name = field["api_name"]
            missing = values.get(name) is None if existing is None else (name in values and values[name] is None)
            if field["system_mandatory"] and missing:
                raise RowError("MANDATORY_NOT_FOUND", "required field not found", api_name=name,
                               json_path=f"{path}.{name}")
        for name, value in values.items():
            if value is not None and self.by_name[module][name]["unique"]:
                other = self._find(module, name, value)
                if other is not None and other is not existing:
                    raise RowError("DUPLICATE_DATA", "duplicate data", api_name=name, json_path=f"{path}.{name}",
                                   duplicate_record={"id": other["id"], "module": {"api_name": module},
                                                     "Owner": other["Owner"]})
        record = self._store(module, existing, values)
        if ran:
            self.automations.append({"module": module, "id": record["id"], "ran": ran})
        details = {key: record[key] for key in ("id", "Modified_Time", "Modified_By", "Created_Time", "Created_By")}
        added = existing is None
        answer = {"code": "SUCCESS", "details": details, "message": "record added" if added else "record updated",
                  "status": "success"}
        if operation == "upsert":
            answer.update(action="insert" if added else "update", duplicate_field=matched_on)
        return answer

    def _find(self, module: str, name: str, value: Any) -> Record | None:
        """The first-created record whose `name` equals `value` (text compared without case)."""
        ids = self._indexed(module, name).get(_folded(value))
        return self.records[module][min(ids, key=int)] if ids else None

    def _indexed(self, module: str, name: str) -> dict[Any, set[str]]:
        key = (module, name)
        if key not in self.index:
            built: dict[Any, set[str]] = {}
            for record in self.records[module].values():
                if record.get(name) is not None:
                    built.setdefault(_folded(record[name]), set()).add(record["id"])
            self.index[key] = built
        return self.index[key]

    def _reindex(self, module: str, record: Record, before: Record) -> None:
        for (indexed_module, name), values in self.index.items():
            if indexed_module != module or before.get(name) == record.get(name):
                continue
            if before.get(name) is not None:
                values.get(_folded(before[name]), set()).discard(record["id"])
            if record.get(name) is not None:
                values.setdefault(_folded(record[name]), set()).add(record["id"])

    def _store(self, module: str, existing: Record | None, values: Record) -> Record:
        now = stamp(int(time.time()), ORG_OFFSET)
        admin = {"name": self.admin_user["full_name"], "id": self.admin_user["id"], "email": self.admin_user["email"]}
        if existing is None:
            self.serial += 1
            record: Record = {"id": str(ID_BASE + 800_000_000_000 + self.serial)}
            record.update({f["api_name"]: None for f in self.fields[module]})
            record.update(Owner=dict(admin), Created_By=dict(admin), Created_Time=now)
            self.records[module][record["id"]] = record
        else:
            record = existing
        before = dict(record) if existing is not None else {}
        for name, value in values.items():
            record[name] = self._stored_value(module, name, value)
        record.update(Modified_By=dict(admin), Modified_Time=now)
        self._reindex(module, record, before)
        return record

    def _stored_value(self, module: str, name: str, value: Any) -> Any:
        field = self.by_name[module][name]
        if value is None or field["data_type"] not in _LOOKUPS:
            return value
        if field["data_type"] == "lookup":
            target_module = field["lookup"]["module"]["api_name"]
            target = self.records[target_module][str(value["id"])]
            return {"name": target.get(DISPLAY_FIELDS.get(target_module, "Name")), "id": target["id"]}
        user = self.users[str(value["id"])]
        return {"name": user["full_name"], "id": user["id"], "email": user["email"]}

    # -- validation (§3.3) --

    def _check(self, module: str, name: str, value: Any, path: str) -> None:
        field = self.by_name[module].get(name)
        if field is None:
            raise RowError("INVALID_DATA", f"invalid field {name}", api_name=name, json_path=path)
        if field["read_only"]:
            raise RowError("INVALID_DATA", f"the field {name} is read only", api_name=name, json_path=path)
        if value is None:
            return
        kind = field["data_type"]
        ok = _type_ok(kind, value)
        if ok and kind in _LOOKUPS:
            ok = self._known_id(field, value)
            if not ok:
                raise RowError("INVALID_DATA", "the id given seems to be invalid", api_name=name, json_path=path)
        if not ok:
            raise RowError("INVALID_DATA", "invalid data", api_name=name, json_path=path,
                           expected_data_type=kind)
        if kind in _TEXT_TYPES and field["length"] and len(value) > field["length"]:
            raise RowError("INVALID_DATA", f"the field value given for {name} is too long", api_name=name,
                           json_path=path, maximum_length=field["length"])
        if kind == "email" and not _EMAIL.match(value):
            raise RowError("INVALID_DATA", "invalid data", api_name=name, json_path=path, regex=_EMAIL.pattern)

    def _known_id(self, field: Record, value: Record) -> bool:
        if field["data_type"] == "lookup":
            return str(value["id"]) in self.records[field["lookup"]["module"]["api_name"]]
        user = self.users.get(str(value["id"]))
        return user is not None and user["status"] == "active"


def _folded(value: Any) -> Any:
    """A value as lookups compare it: text without case; dicts and lists (lookups, multi-select
    picklists) by their JSON text."""
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def _type_ok(kind: str, value: Any) -> bool:
    if kind in _TEXT_TYPES:
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**9
    if kind == "bigint":
        return (isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value) is not None) or (
            isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**18)
    if kind in _NUMBER_TYPES:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "date":
        return isinstance(value, str) and _DATE.match(value) is not None and _parses(dt.date.fromisoformat, value)
    if kind == "datetime":
        return isinstance(value, str) and _DATETIME.match(value) is not None and _parses(ref.parse_time, value)
    if kind in _LOOKUPS:
        return isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"].isdigit()
    if kind == "multiselectpicklist":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return False


def _parses(parse: Any, value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


def _method() -> Refused:
    return Refused(405, ref.error_body("INVALID_REQUEST_METHOD", "The http request method type is not a valid one"))


__all__ = ["ModuleRecords", "owns"]
