"""The queries behind the asset checks and the per-partition row counts."""

from __future__ import annotations

from datetime import datetime

from crm_assets.catalog import Stream
from crm_assets.warehouse.sql import Connection, q, table_ref


class CheckQueries(Connection):
    """Read-only questions about a table's rows."""

    def row_count(self, stream: Stream, since: datetime | None = None) -> int:
        """All rows, or those whose replication key is at or after `since`."""
        if since is None or not stream.replication_key:
            return self._count(f"SELECT count(*) FROM {table_ref(stream)}")
        return self._count(
            f"SELECT count(*) FROM {table_ref(stream)} WHERE {q(stream.replication_key)} >= ?", [since]
        )

    def rows_in_window(self, stream: Stream, root: Stream, start: datetime | None, end: datetime) -> int | None:
        """Rows of `stream` whose root record's replication key is in [start, end): what one
        daily partition holds. A full-table stream holds everything in every partition; None
        when a child's root table is not loaded, so the rows cannot be placed."""
        rk = root.replication_key
        if not rk:
            return self._count(f"SELECT count(*) FROM {table_ref(stream)}")
        # The first partition (no start) also holds the rows whose key the API left null.
        bounds = f"(r.{q(rk)} < ? OR r.{q(rk)} IS NULL)" if start is None else f"r.{q(rk)} < ? AND r.{q(rk)} >= ?"
        params = [end] if start is None else [end, start]
        if stream == root:
            return self._count(f"SELECT count(*) FROM {table_ref(root)} AS r WHERE {bounds}", params)
        if not self.table_exists(root):
            return None
        return self._count(
            f"""SELECT count(*) FROM {table_ref(stream)} AS c JOIN {table_ref(root)} AS r
                ON c.{q(stream.parent_key)} = r.{q(root.primary_key[0])} WHERE {bounds}""",
            params,
        )

    def primary_key_problems(self, stream: Stream) -> tuple[int, int, list]:
        """(rows with a null key part, keys held by more than one row, a few such keys)."""
        pk = [q(k) for k in stream.primary_key]
        nulls = self._count(
            f"SELECT count(*) FROM {table_ref(stream)} WHERE " + " OR ".join(f"{k} IS NULL" for k in pk)
        )
        dupes = self._run(
            f"SELECT {', '.join(pk)} FROM {table_ref(stream)} GROUP BY ALL HAVING count(*) > 1"
        )
        return nulls, len(dupes), [list(d) for d in dupes[:10]]

    def dangling_references(self, stream: Stream, column: str, target: Stream | None) -> tuple[int, list]:
        """Distinct values of `column` absent from `target`'s first key column (all of them when
        the target table does not exist), and a few of them."""
        absent = "TRUE"
        if target is not None:
            key = q(target.primary_key[0])
            absent = f"NOT EXISTS (SELECT 1 FROM {table_ref(target)} AS t WHERE t.{key} = s.{q(column)})"
        rows = self._run(
            f"""SELECT DISTINCT s.{q(column)} FROM {table_ref(stream)} AS s
                WHERE s.{q(column)} IS NOT NULL AND {absent}"""
        )
        return len(rows), [r[0] for r in rows[:10]]
