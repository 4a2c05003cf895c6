"""The emulated org's records and the DML every API shares (insert, update, upsert, delete, hard delete).

Each operation takes a list of JSON records and answers one result per record, in order:
``{"id", "success", "created", "errors": [{"statusCode", "message", "fields"}]}`` as Bulk 1.0
and sObject collections do. Records fail one by one and are never rolled back:

- a field that is not createable (insert) or updateable (update): ``INVALID_FIELD_FOR_INSERT_UPDATE``;
- a required field missing on insert, or set to null on update: ``REQUIRED_FIELD_MISSING``;
- a unique external id already used by another live record: ``DUPLICATE_VALUE``; the same
  upsert key twice in one call: ``DUPLICATE_EXTERNAL_ID`` for each; no key value: ``MISSING_ARGUMENT``;
- update/delete of an id in the recycle bin: ``ENTITY_IS_DELETED``; of an unknown id:
  ``INVALID_CROSS_REFERENCE_KEY``; a lookup to an unknown record: ``INVALID_CROSS_REFERENCE_KEY``;
- a lookup through an external id (``{"Account": {"Harvest_Client_Id__c": "7"}}``) that matches
  nothing: ``INVALID_FIELD`` "Foreign key external ID: 7 not found ...";
- value errors from :mod:`salesforce_values`; a lock fault (``UNABLE_TO_LOCK_ROW``) when the
  emulator's ``lock_fault()`` says so.

Null (or ``''``) in an update clears the field; a null checkbox becomes false. Unknown fields
are found for the whole call first (:meth:`Org.unknown_fields`), since they fail a Bulk batch or
a REST call as a whole. ``delete`` moves records to the recycle bin (``IsDeleted`` true, still
seen by ``queryAll``); ``hardDelete`` removes them for good.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from crm_assets.sandbox.salesforce_objects import OBJECTS, PREFIXES
from crm_assets.sandbox.salesforce_schema import Field, SObject
from crm_assets.sandbox.salesforce_values import RowError, coerce, make_id, normalize_id, sf_datetime

USER_ID = make_id("005", 1)
USERNAME = "integration@crm-assets.sandbox"
OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")


class Org:
    """Records of every object, unique-value indexes, and the DML on them (thread-safe)."""

    def __init__(self, lock_fault: Callable[[], bool] = lambda: False):
        self.lock = threading.RLock()
        self.lock_fault = lock_fault
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in OBJECTS}
            self.index: dict[str, dict[str, dict[str, str]]] = {
                name: {f.name: {} for f in o.fields if f.unique} for name, o in OBJECTS.items()
            }
            self.counters: Counter[str] = Counter()
            now = sf_datetime(dt.datetime.now(dt.UTC))
            self.records["user"][USER_ID] = {
                "Id": USER_ID,
                "IsDeleted": False,
                "CreatedDate": now,
                "CreatedById": USER_ID,
                "LastModifiedDate": now,
                "LastModifiedById": USER_ID,
                "SystemModstamp": now,
                "Username": USERNAME,
                "Name": "Integration User",
                "Email": USERNAME,
                "IsActive": True,
            }

    # -- reading --

    def get(self, obj: SObject, record_id: str) -> dict[str, Any] | None:
        return self.records[obj.name.lower()].get(record_id)

    def all(self, obj: SObject, deleted: str = "exclude") -> list[dict[str, Any]]:
        """Copies of the records, oldest first; `deleted` is ``exclude``, ``include`` or ``only``."""
        with self.lock:
            rows = list(self.records[obj.name.lower()].values())
        if deleted != "include":
            rows = [r for r in rows if r["IsDeleted"] == (deleted == "only")]
        return [dict(r) for r in rows]

    def find_by(self, obj: SObject, f: Field, value: str) -> str | None:
        """The live record whose unique `f` equals `value` (case-insensitively)."""
        return self.index[obj.name.lower()][f.name].get(str(value).lower())

    # -- writing --

    def unknown_fields(self, obj: SObject, rows: list[Any]) -> list[str]:
        names: dict[str, None] = {}
        for row in rows:
            for key in row if isinstance(row, dict) else ():
                if key != "attributes" and obj.field(key) is None and key.lower() not in obj.by_relationship:
                    names[key] = None
        return list(names)

    def apply(
        self,
        obj: SObject,
        operation: str,
        rows: list[dict[str, Any]],
        key: str | None = None,
        api: str = "bulk",
    ) -> list[dict[str, Any]]:
        """One result per row, in order; `key` is the upsert's external id field."""
        with self.lock:
            repeated = self._repeated_keys(obj, rows, key) if operation == "upsert" else set()
            return [self._one(obj, operation, row, key, api, repeated) for row in rows]

    def _one(
        self, obj: SObject, operation: str, row: Any, key: str | None, api: str, repeated: set[str]
    ) -> dict[str, Any]:
        try:
            if not isinstance(row, dict):
                raise RowError("INVALID_TYPE", "record must be a JSON object")
            created = False
            if operation == "insert":
                record_id, created = self._insert(obj, row, api), True
            elif operation == "update":
                record_id = self._update(obj, self._existing_id(obj, row.get(_key_of(row, "Id"))), row, api)
            elif operation == "upsert":
                record_id, created = self._upsert(obj, row, key or "Id", api, repeated)
            else:
                record_id = self._delete(
                    obj,
                    self._existing_id(
                        obj, row.get(_key_of(row, "Id")), allow_deleted=operation == "hardDelete"
                    ),
                    hard=operation == "hardDelete",
                )
            return {"id": record_id, "success": True, "created": created, "errors": []}
        except RowError as exc:
            return {"id": exc.record_id, "success": False, "created": False, "errors": [exc.as_error()]}

    def _repeated_keys(self, obj: SObject, rows: list[Any], key: str | None) -> set[str]:
        seen = Counter(
            str(r.get(_key_of(r, key or "Id"))).lower()
            for r in rows
            if isinstance(r, dict) and r.get(_key_of(r, key or "Id")) not in (None, "")
        )
        return {value for value, count in seen.items() if count > 1}

    def _existing_id(self, obj: SObject, value: Any, allow_deleted: bool = False) -> str:
        if value in (None, ""):
            raise RowError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        record_id = normalize_id(value)
        if record_id is None or record_id[:3] != obj.key_prefix:
            raise RowError("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {value}", ["Id"])
        record = self.get(obj, record_id)
        if record is None:
            raise RowError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [], record_id)
        if record["IsDeleted"] and not allow_deleted:
            raise RowError("ENTITY_IS_DELETED", "entity is deleted", [], record_id)
        return record_id

    def _upsert(
        self, obj: SObject, row: dict[str, Any], key: str, api: str, repeated: set[str]
    ) -> tuple[str, bool]:
        key_field = obj.field(key)
        assert key_field is not None, "the caller checks the upsert key"
        value = row.get(_key_of(row, key_field.name))
        if value in (None, ""):
            raise RowError("MISSING_ARGUMENT", f"{key_field.name} not specified", [key_field.name])
        if str(value).lower() in repeated:
            raise RowError(
                "DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", [key_field.name]
            )
        if key_field.name == "Id":
            body = {k: v for k, v in row.items() if k.lower() != "id"}
            return self._update(obj, self._existing_id(obj, value), body, api), False
        existing = self.find_by(obj, key_field, str(value))
        if existing is not None:
            return self._update(obj, existing, row, api), False
        return self._insert(obj, row, api), True

    def _insert(self, obj: SObject, row: dict[str, Any], api: str) -> str:
        values = self._values(obj, row, api, creating=True, record_id=None)
        missing = [f.name for f in obj.fields if f.required_on_create and values.get(f.name) is None]
        if missing:
            raise RowError(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )
        self._check_unique(obj, values, None)
        if self.lock_fault():
            raise RowError(
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record or 1 records: "
                f"{obj.key_prefix}000000000000AAA",
            )
        self.counters[obj.name] += 1
        record_id = make_id(obj.key_prefix, self.counters[obj.name])
        now = sf_datetime(dt.datetime.now(dt.UTC))
        record: dict[str, Any] = {f.name: None for f in obj.fields}
        for f in obj.fields:
            if f.type == "boolean":
                record[f.name] = bool(f.default_value)
        record.update(
            Id=record_id,
            CreatedDate=now,
            CreatedById=USER_ID,
            LastModifiedDate=now,
            LastModifiedById=USER_ID,
            SystemModstamp=now,
        )
        if obj.field("OwnerId"):
            record["OwnerId"] = USER_ID
        record.update({k: v for k, v in values.items() if v is not None or obj.field(k).type != "boolean"})
        if obj.custom and record.get("Name") is None:
            record["Name"] = record_id
        self._derive(obj, record)
        self.records[obj.name.lower()][record_id] = record
        self._reindex(obj, record, add=True)
        return record_id

    def _update(self, obj: SObject, record_id: str, row: dict[str, Any], api: str) -> str:
        try:
            values = self._values(obj, row, api, creating=False, record_id=record_id)
            cleared = [
                k
                for k, v in values.items()
                if v is None and not obj.field(k).nillable and obj.field(k).type != "boolean"
            ]
            if cleared:
                raise RowError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(cleared)}]", cleared
                )
            self._check_unique(obj, values, record_id)
            if self.lock_fault():
                raise RowError(
                    "UNABLE_TO_LOCK_ROW",
                    f"unable to obtain exclusive access to this record or 1 records: {record_id}",
                )
        except RowError as exc:
            exc.record_id = record_id
            raise
        record = self.records[obj.name.lower()][record_id]
        self._reindex(obj, record, add=False)
        for name, value in values.items():
            record[name] = False if value is None and obj.field(name).type == "boolean" else value
        now = sf_datetime(dt.datetime.now(dt.UTC))
        record.update(LastModifiedDate=now, SystemModstamp=now, LastModifiedById=USER_ID)
        self._derive(obj, record)
        self._reindex(obj, record, add=True)
        return record_id

    def _delete(self, obj: SObject, record_id: str, hard: bool) -> str:
        if self.lock_fault():
            raise RowError(
                "UNABLE_TO_LOCK_ROW",
                f"unable to obtain exclusive access to this record or 1 records: {record_id}",
                [],
                record_id,
            )
        table = self.records[obj.name.lower()]
        record = table[record_id]
        if not record["IsDeleted"]:
            self._reindex(obj, record, add=False)
        if hard:
            del table[record_id]
        else:
            now = sf_datetime(dt.datetime.now(dt.UTC))
            record.update(IsDeleted=True, LastModifiedDate=now, SystemModstamp=now)
        return record_id

    def _values(
        self, obj: SObject, row: dict[str, Any], api: str, creating: bool, record_id: str | None
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        locked: list[str] = []
        for key, raw in row.items():
            if key == "attributes" or (key.lower() == "id" and not creating):
                continue
            f = obj.field(key)
            if f is None:
                relation = obj.by_relationship.get(key.lower())
                if relation is None:
                    raise RowError(
                        "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [key]
                    )
                f, raw = relation, self._resolve_reference(relation, raw)
            if not (f.createable if creating else f.updateable):
                locked.append(f.name)
                continue
            value = coerce(f, raw, api)
            if f.type == "reference" and value is not None:
                self._check_reference(f, value)
            values[f.name] = value
        if locked:
            if creating and locked == ["Id"]:
                raise RowError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    "Record ID: cannot specify Id in an insert call",
                    ["Id"],
                )
            raise RowError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(locked)}. Please check the security settings of "
                "this field and verify that it is read/write for your profile or permission set.",
                locked,
            )
        return values

    def _resolve_reference(self, f: Field, raw: Any) -> str | None:
        """The id a relationship-by-external-id value (``{"Ext__c": "7"}``) points at."""
        if raw is None:
            return None
        target = OBJECTS[f.reference_to[0].lower()]
        pairs = [(k, v) for k, v in raw.items() if k != "attributes"] if isinstance(raw, dict) else []
        if len(pairs) != 1 or target.field(pairs[0][0]) is None or not target.field(pairs[0][0]).id_lookup:
            raise RowError(
                "INVALID_FIELD",
                f"{f.relationship_name}: expected one external id field of {target.name}",
                [f.name],
            )
        key_field, value = target.field(pairs[0][0]), pairs[0][1]
        found = self.find_by(target, key_field, value) if key_field.unique else None
        if found is None:
            raise RowError(
                "INVALID_FIELD",
                f"Foreign key external ID: {value} not found for field {key_field.name} "
                f"in entity {target.name}",
                [f.name],
            )
        return found

    def _check_reference(self, f: Field, record_id: str) -> None:
        target = PREFIXES.get(record_id[:3])
        record = self.get(target, record_id) if target and target.name in f.reference_to else None
        if record is None or record["IsDeleted"]:
            raise RowError(
                "INVALID_CROSS_REFERENCE_KEY", f"{f.label}: id value of incorrect type: {record_id}", [f.name]
            )

    def _check_unique(self, obj: SObject, values: dict[str, Any], record_id: str | None) -> None:
        for name, index in self.index[obj.name.lower()].items():
            value = values.get(name)
            other = index.get(str(value).lower()) if value is not None else None
            if other is not None and other != record_id:
                raise RowError(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {name} duplicates value on record with id: {other}",
                    [name],
                    record_id,
                )

    def _reindex(self, obj: SObject, record: dict[str, Any], add: bool) -> None:
        for name, index in self.index[obj.name.lower()].items():
            value = record.get(name)
            if value is None:
                continue
            if add:
                index[str(value).lower()] = record["Id"]
            elif index.get(str(value).lower()) == record["Id"]:
                del index[str(value).lower()]

    @staticmethod
    def _derive(obj: SObject, record: dict[str, Any]) -> None:
        """Compound read-only fields computed from their parts (Contact.Name)."""
        if obj.name == "Contact":
            record["Name"] = " ".join(
                p for p in (record.get("Salutation"), record.get("FirstName"), record.get("LastName")) if p
            )

    def load(self, obj: SObject, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Admin seeding: insert without counting API calls (still validated)."""
        with self.lock:
            return [self._one(obj, "insert", row, None, "bulk", set()) for row in rows]


def _key_of(row: dict[str, Any], name: str) -> str:
    """The row's own spelling of field `name` (field names are case-insensitive)."""
    for key in row:
        if key.lower() == name.lower():
            return key
    return name
