"""REST routes of the Salesforce emulator under ``/services/data`` (spec §1.4, §1.5, §2.3-§2.7).

- ``GET /services/data`` (versions 20.0-66.0), ``GET /vXX.X`` (resources), ``GET /vXX.X/limits``;
- ``GET /vXX.X/sobjects`` (global describe), ``GET .../sobjects/{Object}`` and ``.../describe``;
- ``POST .../sobjects/{Object}`` (201 ``{"id", "success", "errors"}``), ``GET|PATCH|DELETE
  .../sobjects/{Object}/{Id}`` (PATCH and DELETE answer 204), ``GET|PATCH
  .../sobjects/{Object}/{ExternalIdField}/{value}`` (upsert: 201 with ``created: true``, else
  200 with ``created: false``);
- ``GET .../query?q=`` and ``.../queryAll?q=`` (``salesforce_soql``), 2,000 records a page or the
  ``batchSize`` of ``Sforce-Query-Options``, then ``GET .../query/{locator}-{offset}`` through
  ``nextRecordsUrl``;
- sObject collections ``POST|PATCH|DELETE .../composite/sobjects`` and ``PATCH
  .../composite/sobjects/{Object}/{ExternalIdField}`` (200 records at most, ``allOrNone`` honoured
  by refusing the call when any record would fail);
- Bulk API 2.0 ingest under ``.../jobs/ingest`` (``salesforce_bulk2``).

Errors are JSON lists ``[{"message", "errorCode"[, "fields"]}]``; every answer carries
``Sforce-Limit-Info: api-usage=N/100000``.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any
from urllib.parse import unquote

from crm_assets.sandbox.salesforce_objects import find_object, global_describe
from crm_assets.sandbox.salesforce_schema import SObject
from crm_assets.sandbox.salesforce_soql import SoqlError, matches, parse
from crm_assets.sandbox.salesforce_values import make_id, normalize_id
from crm_assets.sandbox.server import Request, Response, json_response

VERSIONS = [f"{v}.0" for v in range(20, 67)]
SEASONS = ("Winter", "Spring", "Summer")
DAILY_API_REQUESTS = 100_000
PAGE_SIZE = 2000


def rest_error(status: int, code: str, message: str, fields: list[str] | None = None) -> Response:
    error: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        error["fields"] = fields
    return json_response(status, [error])


def _label(version: str) -> str:
    step = int(float(version)) - 59  # 59.0 is Winter '24
    return f"{SEASONS[step % 3]} '{24 + step // 3:02d}"


class Rest:
    def __init__(self, emulator: Any):
        self.emulator = emulator
        self.org = emulator.org
        self.lock = threading.Lock()
        self.cursors: dict[str, tuple[list[dict[str, Any]], int]] = {}
        self._locators = itertools.count(1)
        self.calls = 0

    @staticmethod
    def known_version(version: str) -> bool:
        return version in VERSIONS

    def versions(self) -> Response:
        return json_response(
            200, [{"label": _label(v), "url": f"/services/data/v{v}", "version": v} for v in VERSIONS]
        )

    def handle(self, request: Request, entry: dict[str, Any]) -> Response:
        parts = [unquote(p) for p in request.path.split("/")[3:] if p]
        version = parts[0][1:] if parts and parts[0].startswith("v") else ""
        if version not in VERSIONS:
            return rest_error(404, "NOT_FOUND", "The requested resource does not exist")
        with self.lock:
            self.calls += 1
            used = self.calls
        response = self._route(request, version, parts[1:], entry)
        response.headers.append(("Sforce-Limit-Info", f"api-usage={used}/{DAILY_API_REQUESTS}"))
        return response

    def _route(self, request: Request, version: str, parts: list[str], entry: dict[str, Any]) -> Response:
        method = request.method
        if not parts:
            base = f"/services/data/v{version}"
            return json_response(
                200,
                {
                    name: f"{base}/{name}"
                    for name in ("sobjects", "query", "queryAll", "limits", "composite", "jobs")
                },
            )
        head = parts[0]
        if head == "limits" and method == "GET":
            return json_response(
                200,
                {
                    "DailyApiRequests": {
                        "Max": DAILY_API_REQUESTS,
                        "Remaining": DAILY_API_REQUESTS - self.calls,
                    },
                    "DailyBulkApiBatches": {
                        "Max": 15000,
                        "Remaining": 15000 - len(self.emulator.bulk.batches),
                    },
                },
            )
        if head in ("query", "queryAll") and method == "GET":
            if len(parts) > 1:
                return self._more(version, parts[1])
            return self._query(request, version, include_deleted=head == "queryAll")
        if head == "sobjects":
            return self._sobjects(request, version, parts[1:], entry)
        if head == "composite" and parts[1:2] == ["sobjects"] and self.emulator.collections:
            return self.emulator.collections.handle(request, version, parts[2:], entry)
        if head == "jobs" and parts[1:2] == ["ingest"] and self.emulator.bulk2:
            return self.emulator.bulk2.handle(request, version, parts[2:], entry)
        return rest_error(404, "NOT_FOUND", "The requested resource does not exist")

    # -- sObjects --

    def _sobjects(self, request: Request, version: str, parts: list[str], entry: dict[str, Any]) -> Response:
        method = request.method
        if not parts:
            return (
                json_response(200, global_describe(version))
                if method == "GET"
                else _method_not_allowed(method)
            )
        obj = find_object(parts[0])
        if obj is None:
            return rest_error(404, "NOT_FOUND", "The requested resource does not exist")
        entry["object"] = obj.name
        if len(parts) == 1:
            if method == "GET":
                return json_response(200, {"objectDescribe": obj.summary(version), "recentItems": []})
            if method == "POST":
                return self._write(request, obj, "insert", None, version)
            return _method_not_allowed(method)
        if len(parts) == 2 and parts[1] == "describe" and method == "GET":
            return json_response(200, obj.describe(version))
        if len(parts) == 2:
            record_id = normalize_id(parts[1])
            if method == "GET":
                return self._get(request, obj, record_id, version)
            if method == "PATCH":
                if record_id is None:
                    return rest_error(
                        404,
                        "NOT_FOUND",
                        f"Provided external ID field does not exist or is not accessible: {parts[1]}",
                    )
                return self._write(request, obj, "update", record_id, version)
            if method == "DELETE":
                return self._write(request, obj, "delete", record_id or parts[1], version)
            return _method_not_allowed(method)
        if len(parts) == 3:
            key = obj.field(parts[1])
            if key is None or not (key.external_id or key.name == "Id"):
                return rest_error(
                    404,
                    "NOT_FOUND",
                    f"Provided external ID field does not exist or is not accessible: {parts[1]}",
                )
            if method == "GET":
                found = self.org.find_by(obj, key, parts[2]) if key.unique else normalize_id(parts[2])
                return self._get(request, obj, found, version)
            if method == "PATCH":
                return self._write(request, obj, "upsert", (key.name, parts[2]), version)
            return _method_not_allowed(method)
        return rest_error(404, "NOT_FOUND", "The requested resource does not exist")

    def _get(self, request: Request, obj: SObject, record_id: str | None, version: str) -> Response:
        record = self.org.get(obj, record_id) if record_id else None
        if record is None or record["IsDeleted"]:
            return rest_error(404, "NOT_FOUND", "The requested resource does not exist")
        wanted = request.param("fields")
        names = (
            [obj.field(n).name for n in wanted.split(",") if obj.field(n)]
            if wanted
            else [f.name for f in obj.fields]
        )
        return json_response(200, render(obj, record, names, version))

    def _write(self, request: Request, obj: SObject, operation: str, target: Any, version: str) -> Response:
        body = request.json() if operation != "delete" else {}
        if not isinstance(body, dict):
            return rest_error(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        unknown = self.org.unknown_fields(obj, [body])
        if unknown:
            return rest_error(
                400, "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type {obj.name}"
            )
        key = None
        if operation == "upsert":
            key, value = target
            body = {**{k: v for k, v in body.items() if k.lower() != key.lower()}, key: value}
        elif operation in ("update", "delete"):
            body = {**body, "Id": target}
        if obj.name == "User":
            return rest_error(
                400, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id"
            )
        [result] = self.org.apply(obj, operation, [body], key, api="rest")
        if not result["success"]:
            [error] = result["errors"]
            status = (
                404
                if error["statusCode"] in ("INVALID_CROSS_REFERENCE_KEY", "ENTITY_IS_DELETED")
                and operation in ("update", "delete")
                else 400
            )
            if status == 404 and error["statusCode"] == "INVALID_CROSS_REFERENCE_KEY":
                return rest_error(404, "NOT_FOUND", "The requested resource does not exist")
            return rest_error(status, error["statusCode"], error["message"], error["fields"])
        if operation == "insert":
            return json_response(201, {"id": result["id"], "success": True, "errors": []})
        if operation == "upsert":
            answer = {"id": result["id"], "success": True, "errors": [], "created": result["created"]}
            if result["created"]:
                return json_response(201, answer)
            return json_response(200, answer) if float(version) >= 46 else Response(204)
        return Response(204)

    # -- queries --

    def _query(self, request: Request, version: str, include_deleted: bool) -> Response:
        text = request.param("q")
        if not text:
            return rest_error(400, "MALFORMED_QUERY", "A query string must be provided (q=)")
        try:
            records, count = run_query(self.org, text, include_deleted, version)
        except SoqlError as exc:
            return rest_error(400, exc.code, exc.message)
        if records is None:
            return json_response(200, {"totalSize": count, "done": True, "records": []})
        return self._page(version, records, 0, _batch_size(request.headers.get("Sforce-Query-Options")))

    def _page(self, version: str, records: list[dict[str, Any]], offset: int, size: int) -> Response:
        page = records[offset : offset + size]
        answer: dict[str, Any] = {
            "totalSize": len(records),
            "done": offset + size >= len(records),
            "records": page,
        }
        if not answer["done"]:
            with self.lock:
                locator = make_id("01g", next(self._locators))
                self.cursors[locator] = (records, size)
            answer["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{offset + size}"
        return json_response(200, answer)

    def _more(self, version: str, token: str) -> Response:
        locator, _, offset = token.partition("-")
        with self.lock:
            cursor = self.cursors.pop(locator, None)
        if cursor is None or not offset.isdigit():
            return rest_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        records, size = cursor
        return self._page(version, records, int(offset), size)


def render(
    obj: SObject, record: dict[str, Any], names: list[str], version: str, org: Any = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "attributes": {
            "type": obj.name,
            "url": f"/services/data/v{version}/sobjects/{obj.name}/{record['Id']}",
        }
    }
    for name in names:
        head, _, tail = name.partition(".")
        if not tail:
            out[name] = record.get(name)
            continue
        relation = obj.by_relationship[head.lower()]
        target = find_object(relation.reference_to[0])
        related = org.get(target, record[relation.name]) if org and record.get(relation.name) else None
        if related is None:
            out[head] = None
        else:
            nested = out.get(head) or render(target, related, [], version)
            nested[tail] = related.get(tail)
            out[head] = nested
    return out


def run_query(
    org: Any, text: str, include_deleted: bool, version: str
) -> tuple[list[dict[str, Any]] | None, int]:
    """The rendered records a SOQL query selects (None for ``COUNT()``) and their number."""
    query = parse(text)
    obj = query.obj

    def reader(record: dict[str, Any]) -> Any:
        def read(path: str) -> Any:
            head, _, tail = path.partition(".")
            if not tail:
                return record.get(head)
            relation = obj.by_relationship[head.lower()]
            related = org.get(find_object(relation.reference_to[0]), record.get(relation.name) or "")
            return related.get(tail) if related else None

        return read

    rows = [
        r
        for r in org.all(obj, "include" if include_deleted else "exclude")
        if matches(query.where, reader(r))
    ]
    for path, descending in reversed(query.order):
        rows.sort(key=lambda r, p=path: (reader(r)(p) is None, _sort_key(reader(r)(p))), reverse=descending)
    rows = rows[query.offset :]
    if query.limit is not None:
        rows = rows[: query.limit]
    if not query.fields:
        return None, len(rows)
    return [render(obj, r, query.fields, version, org) for r in rows], len(rows)


def _sort_key(value: Any) -> Any:
    if isinstance(value, str):
        return (1, value.lower())
    if isinstance(value, bool):
        return (0, int(value))
    return (0, value if value is not None else 0)


def _batch_size(header: str | None) -> int:
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "batchSize" and value.isdigit():
            return max(200, min(PAGE_SIZE, int(value)))
    return PAGE_SIZE


def _method_not_allowed(method: str) -> Response:
    return rest_error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.")
