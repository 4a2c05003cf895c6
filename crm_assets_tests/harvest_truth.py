"""Expected warehouse rows, built by the tests' own small code from the sandbox's raw JSON.

Deliberately independent of crm_assets: nothing here imports the catalog or the warehouse
code, so a bug shared by the two would not pass unseen.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import duckdb

ROOTS = [
    "clients", "contacts", "estimate_item_categories", "estimates", "expense_categories",
    "expenses", "invoice_item_categories", "invoices", "projects", "project_tasks",
    "project_users", "roles", "tasks", "time_entries", "users",
]
PER_PARENT = {  # table -> column holding the parent's id
    "invoice_messages": "invoice_id",
    "invoice_payments": "invoice_id",
    "estimate_messages": "estimate_id",
    "user_projects": "user_id",
}
CONSUMED = {"invoices": {"line_items"}, "estimates": {"line_items"}, "user_projects": {"task_assignments"}}
KEYS = {
    "user_roles": ("user_id", "role_id"),
    "time_entry_external_reference": ("time_entry_id", "external_reference_id"),
    "user_project_tasks": ("user_id", "project_task_id"),
}
ALL_TABLES = sorted([*ROOTS, *PER_PARENT, "invoice_line_items", "estimate_line_items", *KEYS])


PARENTS = {
    "invoice_messages": "invoices", "invoice_payments": "invoices", "estimate_messages": "estimates",
    "user_projects": "users", "user_project_tasks": "users", "invoice_line_items": "invoices",
    "estimate_line_items": "estimates", "time_entry_external_reference": "time_entries",
}
FULL_TABLE = {"roles", "user_roles"}


def expected_rows(sandbox, table: str, since: str | None = None) -> list[dict[str, Any]]:
    """The rows `harvest.<table>` must hold after loading every day from `since` (YYYY-MM-DD,
    default: all days) to today, as raw JSON objects. Children follow their parent's
    `updated_at`, and a user's project assignments are also re-read for every user one of
    whose user assignments changed in those days; roles and their pairs are read whole."""
    if since is None or table in FULL_TABLE:
        return _all_rows(sandbox, table)
    if table in ROOTS:
        return [r for r in _all_rows(sandbox, table) if r["updated_at"][:10] >= since]
    parent = PARENTS[table]
    kept = {r["id"] for r in sandbox.harvest_records(parent, ["id", "updated_at"]) if r["updated_at"][:10] >= since}
    if parent == "users":
        assignments = sandbox.harvest_records("project_users", ["user", "updated_at"])
        kept |= {a["user"]["id"] for a in assignments if a["updated_at"][:10] >= since}
    parent_key = {"users": "user_id", "invoices": "invoice_id", "estimates": "estimate_id", "time_entries": "time_entry_id"}
    return [r for r in _all_rows(sandbox, table) if r[parent_key[parent]] in kept]


def _all_rows(sandbox, table: str) -> list[dict[str, Any]]:
    if table in ROOTS:
        return [_drop(r, CONSUMED.get(table, set())) for r in sandbox.harvest_records(table)]
    if table in PER_PARENT:
        return [
            {**_drop(item["record"], CONSUMED.get(table, set())), PER_PARENT[table]: item["parent_id"]}
            for item in sandbox.harvest_records(table)
        ]
    if table in ("invoice_line_items", "estimate_line_items"):
        parent = table.split("_")[0] + "s"
        return [
            {**item, f"{parent[:-1]}_id": p["id"]}
            for p in sandbox.harvest_records(parent)
            for item in p.get("line_items") or []
        ]
    if table == "user_roles":
        return [{"user_id": u, "role_id": r["id"]} for r in sandbox.harvest_records("roles") for u in r["user_ids"]]
    if table == "time_entry_external_reference":
        return [
            {"time_entry_id": t["id"], "external_reference_id": t["external_reference"]["id"]}
            for t in sandbox.harvest_records("time_entries")
            if t.get("external_reference")
        ]
    if table == "user_project_tasks":
        return [
            {"user_id": item["parent_id"], "project_task_id": ta["id"]}
            for item in sandbox.harvest_records("user_projects")
            for ta in item["record"].get("task_assignments") or []
        ]
    raise KeyError(table)


def _drop(record: dict, keys: set[str]) -> dict:
    return {k: v for k, v in record.items() if k not in keys}


def leaves(record: dict, prefix: str = "") -> dict[str, Any]:
    """Flatten nested objects into `a__b` keys; lists and scalars are leaves."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(leaves(value, f"{name}__"))
        else:
            out[name] = value
    return out


def lookup(record: dict, column: str) -> Any:
    value: Any = record
    for part in column.split("__"):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def normalise(value: Any, column_type: str) -> Any:
    """A stored value in the API's JSON form."""
    if value is None:
        return None
    if column_type == "JSON":
        return json.loads(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def table_rows(conn: duckdb.DuckDBPyConnection, table: str) -> tuple[dict[str, str], list[dict]]:
    """Column types and every row of `harvest.<table>`, without `_synced_at`."""
    types = dict(
        conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'harvest' AND table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
    )
    types.pop("_synced_at", None)
    cols = list(types)
    quoted = ", ".join(f'"{c}"' for c in cols)
    rows = [
        {c: normalise(v, types[c]) for c, v in zip(cols, row)}
        for row in conn.execute(f"SELECT {quoted} FROM harvest.{table}").fetchall()
    ]
    return types, rows


def assert_table_matches(conn: duckdb.DuckDBPyConnection, table: str, expected: list[dict]) -> None:
    """Row by row and column by column; no API field may be missing from the table."""
    types, rows = table_rows(conn, table)
    key = KEYS.get(table, ("id",))
    stored = {tuple(r[k] for k in key): r for r in rows}
    assert len(stored) == len(rows), f"harvest.{table}: duplicate keys"
    wanted = {tuple(lookup(e, k) for k in key): e for e in expected}
    missing = sorted(set(wanted) - set(stored))[:5]
    extra = sorted(set(stored) - set(wanted))[:5]
    assert not missing and not extra, f"harvest.{table}: missing keys {missing}, unexpected keys {extra}"
    for k, record in wanted.items():
        dropped = {  # a null object is stored as null leaf columns
            k for k, v in leaves(record).items()
            if k not in types and not (v is None and any(t.startswith(f"{k}__") for t in types))
        }
        assert not dropped, f"harvest.{table} {k}: API fields not stored: {sorted(dropped)}"
        row = stored[k]
        for column in types:
            want, got = lookup(record, column), row[column]
            assert got == want, f"harvest.{table} {k}.{column}: stored {got!r}, API says {want!r}"
