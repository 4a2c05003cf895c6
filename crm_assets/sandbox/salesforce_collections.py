"""sObject collections under ``/services/data/vXX.X/composite/sobjects`` (spec §1.5, §2.7).

Reached with ``sf.restful('composite/sobjects', method=..., json=...)``:

- ``POST`` ``{"allOrNone", "records": [{"attributes": {"type": "Account"}, ...}]}`` creates (types may mix);
- ``PATCH`` the same with ``Id`` in each record updates;
- ``PATCH composite/sobjects/{Object}/{ExternalIdField}`` upserts (API 46.0 and later), results
  carry ``created``;
- ``DELETE composite/sobjects?ids=a,b[&allOrNone=true]`` moves records to the recycle bin.

At most 200 records a call (API 42.0 and later); the answer is 200 with one
``{"id", "success", "errors"}`` per record in request order, even when every record failed. An
unknown field fails the whole call (400 ``INVALID_FIELD``), as Salesforce fails to read the body.
With ``allOrNone`` true, one failure rolls the call back: the other records answer
``ALL_OR_NONE_OPERATION_ROLLED_BACK`` and nothing changes.
"""

from __future__ import annotations

import copy
from typing import Any

from crm_assets.sandbox.salesforce_objects import PREFIXES, find_object
from crm_assets.sandbox.salesforce_rest import rest_error
from crm_assets.sandbox.server import Request, Response, json_response

MAX_RECORDS = 200
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "fields": [],
    "message": "Record rolled back because not all records were valid and the request was using AllOrNone "
    "header",
}


class Collections:
    def __init__(self, org: Any):
        self.org = org

    def handle(self, request: Request, version: str, parts: list[str], entry: dict[str, Any]) -> Response:
        if float(version) < 42:
            return rest_error(404, "NOT_FOUND", "The requested resource does not exist")
        method = request.method
        if method == "DELETE" and not parts:
            ids = [i for i in (request.param("ids") or "").split(",") if i]
            entry["records"] = len(ids)
            return self._run(
                [("delete", None, {"Id": i}, None) for i in ids],
                (request.param("allOrNone") or "false").lower() == "true",
                created=False,
            )
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            return rest_error(400, "JSON_PARSER_ERROR", 'expected {"allOrNone": ..., "records": [...]}')
        all_or_none = bool(body.get("allOrNone"))
        records = body["records"]
        if method == "PATCH" and len(parts) == 2:
            obj, key = find_object(parts[0]), parts[1]
            if float(version) < 46 or obj is None:
                return rest_error(404, "NOT_FOUND", "The requested resource does not exist")
            key_field = obj.field(key)
            if key_field is None or not (key_field.external_id or key_field.name == "Id"):
                return rest_error(
                    404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {key}"
                )
            return self._run(
                [("upsert", obj.name, r, key_field.name) for r in records], all_or_none, created=True
            )
        if parts:
            return rest_error(404, "NOT_FOUND", "The requested resource does not exist")
        if method == "POST":
            return self._run([("insert", _type(r), r, None) for r in records], all_or_none, created=False)
        if method == "PATCH":
            return self._run([("update", _type(r), r, None) for r in records], all_or_none, created=False)
        return rest_error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.")

    def _run(
        self, items: list[tuple[str, str | None, Any, str | None]], all_or_none: bool, created: bool
    ) -> Response:
        if len(items) > MAX_RECORDS:
            return rest_error(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call",
            )
        for operation, type_name, record, _ in items:
            obj = find_object(type_name or "") if type_name else None
            if obj is not None and operation != "delete":
                unknown = self.org.unknown_fields(obj, [record])
                if unknown:
                    return rest_error(
                        400, "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type {obj.name}"
                    )
        with self.org.lock:
            saved = (
                copy.deepcopy((self.org.records, self.org.index, self.org.counters)) if all_or_none else None
            )
            results = [self._one(*item) for item in items]
            if saved is not None and not all(r["success"] for r in results):
                self.org.records, self.org.index, self.org.counters = saved
                results = [
                    r if not r["success"] else {**r, "id": None, "success": False, "errors": [ROLLED_BACK]}
                    for r in results
                ]
        if not created:
            results = [{k: v for k, v in r.items() if k != "created"} for r in results]
        return json_response(200, results)

    def _one(self, operation: str, type_name: str | None, record: Any, key: str | None) -> dict[str, Any]:
        if operation == "delete":
            obj = _object_of_id(record["Id"])
            if obj is None:
                return _failure("MALFORMED_ID", f"malformed id {record['Id']}")
            [result] = self.org.apply(obj, "delete", [record], api="rest")
            return result
        obj = find_object(type_name or "")
        if obj is None or not obj.writable:
            return _failure(
                "INVALID_TYPE",
                f"sObject type '{type_name}' is not supported."
                if type_name
                else "Each record needs attributes.type",
            )
        body = {k: v for k, v in record.items() if k != "attributes"} if isinstance(record, dict) else record
        [result] = self.org.apply(obj, operation, [body], key, api="rest")
        return result


def _type(record: Any) -> str | None:
    attributes = record.get("attributes") if isinstance(record, dict) else None
    return attributes.get("type") if isinstance(attributes, dict) else None


def _object_of_id(record_id: str) -> Any:
    return PREFIXES.get(record_id[:3])


def _failure(code: str, message: str) -> dict[str, Any]:
    return {
        "id": None,
        "success": False,
        "created": False,
        "errors": [{"statusCode": code, "message": message, "fields": []}],
    }
