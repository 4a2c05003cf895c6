"""A Zoho module's field metadata: the pre-flight of a sync's columns and each record's shape.

``GET /crm/v8/settings/fields?module=<Module>`` lists every field's API name, ``data_type``,
``read_only`` and ``system_mandatory`` flags and ``unique`` setting (spec §3.5). Whether the
records API rejects an unknown field or silently drops it is not documented (§9), so every
column is checked here before anything is sent: the field exists, can be written, takes the
column's DuckDB type; an upsert key is a duplicate-check field; an insert names every
mandatory field. All misfits are listed in one error.

Values then take the shapes of §3.3: an owner or lookup as ``{"id": ...}``, a datetime as
``yyyy-MM-ddTHH:mm:ss±HH:mm`` (the shared conversion gives UTC with milliseconds and ``Z``),
a multi-select picklist as a JSON array, a Long as a string; a null is sent only when the sync
says ``include_nulls`` (legacy ``newFormat=2``), otherwise the field is left as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crm_assets.destinations.machinery import SyncConfigurationError
from crm_assets.destinations.specs import SyncSpec

RECORD_ID = "id"
LOOKUPS = frozenset({"lookup", "ownerlookup", "userlookup"})
# Which DuckDB type families each Zoho data type takes (§3.3).
ACCEPTS: dict[str, frozenset[str]] = {
    **{kind: frozenset({"text"}) for kind in ("text", "textarea", "email", "phone", "website", "picklist")},
    "integer": frozenset({"integer"}),
    "bigint": frozenset({"integer", "text"}),
    **{kind: frozenset({"integer", "number"}) for kind in ("double", "currency", "decimal", "percent")},
    "boolean": frozenset({"boolean"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"datetime"}),
    **{kind: frozenset({"text", "integer"}) for kind in LOOKUPS},
    "multiselectpicklist": frozenset({"list"}),
}
# §3.2: the system field each module checks for duplicates first (custom modules: Name).
SYSTEM_DUPLICATE_FIELDS = {
    "Leads": "Email", "Contacts": "Email", "Accounts": "Account_Name", "Deals": "Deal_Name",
    "Campaigns": "Campaign_Name", "Cases": "Subject", "Solutions": "Solution_Title",
    "Products": "Product_Name", "Vendors": "Vendor_Name", "Price_Books": "Price_Book_Name",
    "Quotes": "Subject", "Sales_Orders": "Subject", "Purchase_Orders": "Subject", "Invoices": "Subject",
}  # fmt: skip
_INTEGERS = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
}  # fmt: skip


class PreflightError(ValueError, SyncConfigurationError):
    """The query's columns do not fit the module; raised before any record is sent."""


def type_family(duckdb_type: str) -> str:
    """A DuckDB column type reduced to what decides which Zoho fields can take it."""
    kind = duckdb_type.upper()
    if kind.endswith("]") or kind.startswith("LIST"):
        return "list"
    if kind.startswith("VARCHAR") or kind == "UUID":
        return "text"
    if kind in _INTEGERS:
        return "integer"
    if kind in ("FLOAT", "DOUBLE", "REAL") or kind.startswith("DECIMAL"):
        return "number"
    if kind == "BOOLEAN":
        return "boolean"
    if kind == "DATE":
        return "date"
    if kind.startswith("TIMESTAMP"):
        return "datetime"
    return "null" if "NULL" in kind else kind.lower()


@dataclass
class ModuleLayout:
    """The fields a sync writes, by API name, with their Zoho data types."""

    module: str
    kinds: dict[str, str]

    @classmethod
    def check(
        cls,
        spec: SyncSpec,
        operation: str,
        fields: list[dict[str, Any]],
        columns: Sequence[str],
        types: Sequence[str],
    ) -> tuple[ModuleLayout, dict[str, str]]:
        """The layout and each column's field name; raises :class:`PreflightError` listing every misfit."""
        by_name = {str(f.get("api_name", "")).lower(): f for f in fields}
        key = (spec.match_key or "").lower()
        problems: list[str] = []
        mapping: dict[str, str] = {}
        kinds: dict[str, str] = {}
        for column, duckdb_type in zip(columns, types, strict=True):
            if column.lower() == RECORD_ID and operation == "update":
                mapping[column] = RECORD_ID  # the record's own id, which is not a field of the layout
                continue
            field = by_name.get(column.lower())
            if field is None:
                problems.append(f"{column}: no such field on {spec.object}")
                continue
            name, kind = field["api_name"], str(field.get("data_type"))
            mapping[column], kinds[name] = name, kind
            if field.get("read_only") or field.get("field_read_only"):
                problems.append(f"{column}: read-only on {spec.object}")
            family = type_family(duckdb_type)
            if kind not in ACCEPTS:
                problems.append(f"{column}: a {kind} field cannot be written")
            elif family != "null" and family not in ACCEPTS[kind]:
                problems.append(f"{column}: {duckdb_type} does not fit a {kind} field (cast it in the query)")
            if column.lower() == key and operation == "upsert":
                if not field.get("unique") and name != SYSTEM_DUPLICATE_FIELDS.get(spec.object, "Name"):
                    problems.append(
                        f"{column}: not a unique or system duplicate-check field, "
                        "so it cannot be the upsert key"
                    )
        if operation in ("insert", "upsert"):
            given = {name.lower() for name in mapping.values()}
            for field in fields:
                if field.get("system_mandatory") and str(field["api_name"]).lower() not in given:
                    problems.append(f"{field['api_name']}: mandatory on {spec.object} but not in the query")
        if problems:
            listing = "\n".join(f"  - {p}" for p in problems)
            raise PreflightError(
                f"sync {spec.name}: the query's columns do not fit Zoho {spec.object} ({spec.mode} mode); "
                f"nothing was sent:\n{listing}"
            )
        return cls(spec.object, kinds), mapping

    def shape(self, record: dict[str, Any], include_nulls: bool, keep: str | None) -> dict[str, Any]:
        """`record` (already JSON-ready) as the records API takes it; `keep` is never left out."""
        out: dict[str, Any] = {}
        for name, value in record.items():
            if value is None:
                if include_nulls or name == keep:
                    out[name] = None
                continue
            kind = self.kinds.get(name)
            if kind in LOOKUPS:
                value = {"id": str(value)}
            elif kind == "datetime":
                value = zoho_datetime(value)
            elif kind == "multiselectpicklist" and isinstance(value, str):
                value = value.split(";")  # the shared conversion joins lists with ';'
            elif kind == "bigint" or name == RECORD_ID:
                value = str(value)
            out[name] = value
        return out


def zoho_datetime(value: str) -> str:
    """An ISO 8601 instant as Zoho writes datetimes: seconds and a ``±HH:MM`` offset (UTC here)."""
    stamp = datetime.fromisoformat(value)
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "+00:00"
