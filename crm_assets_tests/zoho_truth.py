"""Expected Zoho rows, built by the tests' own small code from the sandbox's raw JSON.

Independent of crm_assets: nothing here imports the catalog or the warehouse code. Stored
values are turned back into the API's terms by their DuckDB type alone: instants compare as
instants (Zoho writes them with `Z` or `±HH:MM` offsets, the warehouse in UTC), dates as ISO text.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import duckdb

TABLES = ["currencies", "organization", "profiles", "roles", "territories", "users"]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def lookup(record: dict, column: str) -> Any:
    """A flattened column's value in a raw record: `a__b` is `record["a"]["b"]`, unless the
    API's own key holds `__` (`created_by__s`, `type__s`)."""
    if column in record:
        return record[column]
    head, sep, rest = column.partition("__")
    while sep:
        if head in record:
            value = record[head]
            return lookup(value, rest) if isinstance(value, dict) else None
        more, sep, rest = rest.partition("__")
        head = f"{head}__{more}"
    return None


def leaf_names(record: dict, prefix: str = "") -> set[str]:
    """Every API field as a flattened column name (nested objects joined with `__`)."""
    out: set[str] = set()
    for key, value in record.items():
        if isinstance(value, dict) and value:
            out |= leaf_names(value, f"{prefix}{key}__")
        else:
            out.add(f"{prefix}{key}")
    return out


def stored_rows(conn: duckdb.DuckDBPyConnection, table: str) -> tuple[dict[str, str], dict[str, dict]]:
    """Column types, and every row of `zoho.<table>` by id (without `_synced_at`)."""
    types = dict(
        conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'zoho' AND table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
    )
    types.pop("_synced_at", None)
    cols = list(types)
    quoted = ", ".join(f'"{c}"' for c in cols)
    rows = [dict(zip(cols, row)) for row in conn.execute(f"SELECT {quoted} FROM zoho.{table}").fetchall()]
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == len(rows), f"zoho.{table}: duplicate ids"
    return types, by_id


def same(stored: Any, raw: Any, column_type: str) -> bool:
    if stored is None or raw is None:
        return stored is None and raw is None
    if column_type == "JSON":
        return json.loads(stored) == raw
    if isinstance(stored, datetime):
        return stored.tzinfo is not None and stored == instant(raw)
    if isinstance(stored, date):
        return stored.isoformat() == raw
    return stored == raw


def assert_table_matches(conn: duckdb.DuckDBPyConnection, table: str, expected: list[dict]) -> None:
    """Row by row and column by column; ids are text, and no API field may be missing."""
    types, stored = stored_rows(conn, table)
    assert types["id"] == "VARCHAR"
    wanted = {r["id"]: r for r in expected}
    missing, extra = sorted(set(wanted) - set(stored))[:5], sorted(set(stored) - set(wanted))[:5]
    assert not missing and not extra, f"zoho.{table}: missing ids {missing}, unexpected ids {extra}"
    for key, record in wanted.items():
        dropped = {
            name
            for name in leaf_names(record)
            if name not in types
            and not (lookup(record, name) is None and any(t.startswith(f"{name}__") for t in types))
        }
        assert not dropped, f"zoho.{table} {key}: API fields not stored: {sorted(dropped)}"
        row = stored[key]
        for column, column_type in types.items():
            want, got = lookup(record, column), row[column]
            assert same(got, want, column_type), (
                f"zoho.{table} {key}.{column}: stored {got!r}, API says {want!r}"
            )
