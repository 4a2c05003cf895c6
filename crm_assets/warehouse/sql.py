"""What every warehouse module shares: identifier quoting and a connection that drains results."""

from __future__ import annotations

import duckdb

from crm_assets.catalog import Stream

STATE_SCHEMA = "crm_assets_state"
SYNCED_AT = "_synced_at"


def q(name: str) -> str:
    """Quote an identifier."""
    return '"' + name.replace('"', '""') + '"'


def table_ref(stream: Stream) -> str:
    return f"{q(stream.source)}.{q(stream.name)}"


class Connection:
    """A DuckDB connection with small helpers that always fetch what they execute."""

    def __init__(self, conn: duckdb.DuckDBPyConnection):
        self.conn = conn

    def _run(self, sql: str, params: list | None = None) -> list[tuple]:
        """Execute and drain: DuckDB 2 refuses new work on a connection with an open result."""
        return self.conn.execute(sql, params or []).fetchall()

    def _one(self, sql: str, params: list | None = None) -> tuple | None:
        rows = self._run(sql, params)
        return rows[0] if rows else None

    def _count(self, sql: str, params: list | None = None) -> int:
        row = self._one(sql, params)
        return int(row[0]) if row else 0

    def _table_columns(self, s: Stream) -> list[tuple[str, str, str | None]]:
        """(name, type, comment) of each stored column, in table order."""
        return self._run(
            """SELECT column_name, data_type, comment FROM duckdb_columns()
               WHERE schema_name = ? AND table_name = ? ORDER BY column_index""",
            [s.source, s.name],
        )

    def table_exists(self, stream: Stream) -> bool:
        return bool(self._table_columns(stream))
