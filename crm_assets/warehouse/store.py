"""The DuckDB warehouse: the one module that writes SQL against the warehouse file.

Writes are idempotent and transactional. Each batch (pages of parents with all their
children) is applied in one transaction with one of three rules:

- ``merge``: upsert by primary key; an incoming row replaces the stored one only when its
  replication key is newer, or equal with different content (so a rerun changes nothing);
- ``replace``: the rows of the given parents (``scope``) become exactly the incoming rows;
- ``snapshot``: the whole table becomes exactly the incoming rows (full-table streams).

Children are replaced only for parents whose incoming version is not older than the stored
one, so a stale page cannot put an old invoice's line items beside its newer header. A snapshot
that would shrink a table by more than the stream's ``max_snapshot_shrink`` share is refused
(an empty answer must not wipe a table) unless the session allows it.

Rows that do not change keep their ``_synced_at``, so running a partition twice leaves the
tables identical. Stream cursors live in ``crm_assets_state`` and only move inside a write
transaction; the asset factory moves a stream's cursor once its whole window is committed, and
records which windows of the replication key the table reflects, so that freshness means "every
change up to this instant is in the table", not "some recent day was loaded".
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import duckdb
import orjson
from dagster_duckdb import DuckDBResource
from filelock import FileLock
from pydantic import Field

from crm_assets.catalog import Column, Stream
from crm_assets.warehouse.checks import CheckQueries
from crm_assets.warehouse.records import COLUMN_TYPES, RecordError
from crm_assets.warehouse.sql import SYNCED_AT, q, table_ref
from crm_assets.warehouse.state import StateQueries
from crm_assets.warehouse.table_write import TableWrite, WriteCounts

if TYPE_CHECKING:
    import pyarrow as pa

_SQL_CASTS = {"DATE": "DATE", "TIMESTAMPTZ": "TIMESTAMPTZ", "JSON": "JSON"}
_CATALOG_TYPES = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ"}


def _extra_column(name: str, data_type: str, comment: str | None) -> Column:
    """A column the API added earlier: its record path is kept in the column's comment."""
    try:
        path = tuple(orjson.loads(comment)) if comment else tuple(name.split("__"))
    except orjson.JSONDecodeError:
        path = tuple(name.split("__"))
    kind = _CATALOG_TYPES.get(data_type, data_type)
    return Column(name, kind if kind in COLUMN_TYPES else "VARCHAR", path)


class SnapshotShrinkError(RuntimeError):
    """A full-table snapshot much smaller than the table: most likely an API answer gone wrong."""


class Warehouse(dg.ConfigurableResource):
    """The DuckDB file every asset reads and writes.

    DuckDB admits one writing process per file, so a session holds an exclusive file lock
    beside the database for its whole life: the project serialises writers itself, whatever
    the Dagster instance's pools say. Sessions are meant to be brief (one write transaction,
    or a few queries), never held across API calls, so that other runs interleave.
    """

    duckdb: DuckDBResource
    lock_timeout_seconds: float = 3600.0
    batch_records: int = Field(
        default=10_000, ge=1, description="Parent records per write transaction (memory vs speed)."
    )
    hold_seconds: float = Field(
        default=20.0,
        gt=0,
        description="Longest a load keeps the file while it writes batch after batch; other runs wait at most about this long.",
    )
    load_memory_limit: str = Field(
        default="64MB",
        description="DuckDB's memory_limit while a load writes: its cache of the table stays bounded, not growing with the table.",
    )
    idle_release_seconds: float = Field(
        default=2.0,
        ge=0,
        description="A load lets go of the file once no batch has come for this long (it waits on the API).",
    )

    def lock(self) -> contextlib.AbstractContextManager:
        """The exclusive lock every process takes before opening the file (dbt's runs included).

        A lock file beside the database, released by the operating system when its holder dies.
        """
        path = self.duckdb.database
        if not path or path == ":memory:" or path.startswith("md:"):
            return contextlib.nullcontext()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return FileLock(f"{path}.lock", timeout=self.lock_timeout_seconds)

    @contextlib.contextmanager
    def session(
        self, columns: dict[str, list[Column]] | None = None, memory_limit: str | None = None
    ) -> Iterator[WarehouseSession]:
        """The file, locked and open, for one brief piece of work.

        `columns` carries the tables' known columns (see :meth:`WarehouseSession.ensure_tables`)
        from one brief session to the next, so a load that opens the file once per write does
        not look them up again; `memory_limit` bounds DuckDB's memory while it is open.
        """
        with self.lock(), self.duckdb.get_connection() as conn:
            conn.execute("SET TimeZone = 'UTC'")
            if memory_limit:
                conn.execute("SET memory_limit = ?", [memory_limit])
            # Checkpoint (compress the WAL into the file) once per large load, not every 16 MB.
            conn.execute("SET checkpoint_threshold = '1GB'")
            yield WarehouseSession(conn, columns)


class WarehouseSession(StateQueries, CheckQueries):
    """One open connection: DDL from the catalog, batch writes, state and check queries."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, columns: dict[str, list[Column]] | None = None):
        super().__init__(conn)
        self._columns: dict[str, list[Column]] = {} if columns is None else columns
        self._tmp = 0
        # An operator may accept a snapshot that shrinks a table a lot (records really deleted).
        self.allow_snapshot_shrink = False

    # ---- schema -----------------------------------------------------------------------

    def ensure_tables(self, streams: Sequence[Stream]) -> None:
        """Create schemas and tables from the catalog, adding columns the catalog gained."""
        self.ensure_state_tables()
        for s in streams:
            self._run(f"CREATE SCHEMA IF NOT EXISTS {q(s.source)}")
            defs = ", ".join(f"{q(c.name)} {c.type}" for c in s.columns)
            self._run(
                f"CREATE TABLE IF NOT EXISTS {table_ref(s)} ({defs}, {q(SYNCED_AT)} TIMESTAMPTZ)"
            )
            existing = self._table_columns(s)
            names = {name for name, _, _ in existing}
            for c in s.columns:
                if c.name not in names:
                    self._run(f"ALTER TABLE {table_ref(s)} ADD COLUMN {q(c.name)} {c.type}")
            declared = set(s.column_names) | {SYNCED_AT}
            self._columns[s.table] = [
                *s.columns,
                *(_extra_column(*row) for row in existing if row[0] not in declared),
            ]

    def columns(self, stream: Stream) -> list[Column]:
        """The table's columns: the catalog's plus any the API added since."""
        return self._columns[stream.table]

    def table_schema(self, stream: Stream) -> dg.TableSchema:
        """The table's columns as stored, for the `dagster/column_schema` metadata."""
        described = {c.name: c.description for c in stream.columns}
        described[SYNCED_AT] = "When this row version was written"
        return dg.TableSchema(
            columns=[
                dg.TableColumn(name, typ.lower(), description=described.get(name, "A field the API sent that the catalog does not declare yet"))
                for name, typ, _ in self._table_columns(stream)
            ]
        )

    # ---- writes -----------------------------------------------------------------------

    def write_batch(
        self, writes: Sequence[TableWrite], cursors: dict[Stream, datetime] | None = None
    ) -> dict[str, WriteCounts]:
        """Apply every table's rows of one batch, and move cursors, in one transaction."""
        prepared: list[tuple[TableWrite, list[Column], tuple[str, list[str], int]]] = []
        counts: dict[str, WriteCounts] = {}
        try:
            # Conversion and staging come first, outside the transaction: a bad value fails
            # here with an error naming its record, and nothing has been written yet.
            for w in writes:
                rows = w.arrow(self.columns(w.stream))
                missing = self._missing_columns(w.stream, rows.columns)
                prepared.append((w, missing, self._stage(w.stream, rows.table, rows.columns)))
            self._run("BEGIN TRANSACTION")
            try:
                for w, missing, stage in prepared:
                    for c in missing:
                        self._run(f"ALTER TABLE {table_ref(w.stream)} ADD COLUMN {q(c.name)} {c.type}")
                        path = orjson.dumps(list(c.path)).decode().replace("'", "''")
                        self._run(f"COMMENT ON COLUMN {table_ref(w.stream)}.{q(c.name)} IS '{path}'")
                    counts[w.stream.name] = self._apply(w, *stage)
                for stream, value in (cursors or {}).items():
                    self._advance_cursor(stream, value)
                self._run("COMMIT")
            except BaseException:
                self._run("ROLLBACK")
                raise
        finally:
            for _, _, (relation, _, _) in prepared:
                self._drop(relation)
        return counts

    def _missing_columns(self, stream: Stream, columns: list[Column]) -> list[Column]:
        """The columns of a write that the stored table lacks (the API sent new fields)."""
        declared = set(stream.column_names)
        if all(c.name in declared for c in columns):
            return []
        stored = {name for name, _, _ in self._table_columns(stream)}
        return [c for c in columns if c.name not in stored]

    def _stage(self, stream: Stream, arrow: pa.Table, columns: list[Column]) -> tuple[str, list[str], int]:
        """A typed relation of the batch: the Arrow table itself when it needs no work, or a
        temp table that casts leftover text columns (errors name record and field) and keeps
        one row per key (the newest)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        self._tmp += 1
        src, stage = f"_batch_{self._tmp}", f"_stage_{self._tmp}"
        self.conn.register(src, arrow)
        types = {c.name: c.type for c in columns}
        names = list(arrow.column_names)
        casts = {
            n: _SQL_CASTS[types[n]]
            for n in names
            if types.get(n) in _SQL_CASTS and pa.types.is_string(arrow.schema.field(n).type)
        }
        pk = stream.primary_key
        if len(pk) == 1:
            unique = pc.count_distinct(arrow.column(pk[0])).as_py() == arrow.num_rows
        else:
            unique = arrow.group_by(list(pk)).aggregate([]).num_rows == arrow.num_rows
        if not casts and unique:
            return src, names, arrow.num_rows
        exprs = [f"CAST({q(n)} AS {casts[n]}) AS {q(n)}" if n in casts else q(n) for n in names]
        rk = stream.replication_key
        order = ""
        if rk:
            newest = f"CAST({q(rk)} AS {casts[rk]})" if rk in casts else q(rk)
            order = f"ORDER BY {newest} DESC NULLS LAST"
        dedupe = "" if unique else f"QUALIFY row_number() OVER (PARTITION BY {', '.join(map(q, pk))} {order}) = 1"
        try:
            self._run(
                f"CREATE OR REPLACE TEMP TABLE {stage} AS SELECT {', '.join(exprs)} FROM {src} {dedupe}"
            )
        except duckdb.ConversionException as exc:
            raise self._cast_error(stream, src, casts) from exc
        finally:
            self.conn.unregister(src)
        return stage, names, self._count(f"SELECT count(*) FROM {stage}")

    def _cast_error(self, stream: Stream, src: str, casts: dict[str, str]) -> RecordError:
        key = stream.primary_key[0]
        for n, cast in casts.items():
            bad = self._one(
                f"SELECT {q(key)}, {q(n)} FROM {src} "
                f"WHERE {q(n)} IS NOT NULL AND TRY_CAST({q(n)} AS {cast}) IS NULL LIMIT 1"
            )
            if bad:
                return RecordError(
                    f"{stream.table}: record {key}={bad[0]}: field {n!r} should be {cast}, got {bad[1]!r}"
                )
        return RecordError(f"{stream.table}: a value could not be converted")

    def _apply(self, w: TableWrite, stage: str, names: list[str], staged: int) -> WriteCounts:
        if w.mode == "merge":
            return self._merge(w.stream, stage, names, staged)
        if w.mode == "snapshot":
            self._refuse_large_shrink(w.stream, staged)
            return self._replace(w.stream, stage, names, staged, None)
        return self._replace(w.stream, stage, names, staged, self._live_scope(w))

    def _refuse_large_shrink(self, s: Stream, staged: int) -> None:
        stored = self._count(f"SELECT count(*) FROM {table_ref(s)}")
        if self.allow_snapshot_shrink or not stored or stored - staged <= s.max_snapshot_shrink * stored:
            return
        raise SnapshotShrinkError(
            f"{s.table}: the API's snapshot has {staged} rows where the table holds {stored}, "
            f"a drop of more than {s.max_snapshot_shrink:.0%}; the table is kept as it was. If the "
            "records were really deleted, rerun with the run config allow_snapshot_shrink: true"
        )

    def _live_scope(self, w: TableWrite) -> list[Any]:
        """The scoped parents whose incoming version is not older than the stored root row:
        only their children are replaced (all in the same transaction as the root's merge)."""
        import pyarrow as pa

        root = w.root
        scope = w.scope or []
        if root is None or w.scope_versions is None or not root.replication_key or not scope:
            return scope
        if not self.table_exists(root):
            return scope
        self._tmp += 1
        incoming = f"_versions_{self._tmp}"
        key, rk = q(root.primary_key[0]), q(root.replication_key)
        self.conn.register(incoming, pa.table({"id": pa.array(scope), "version": pa.array(w.scope_versions)}))
        try:
            stale = {
                row[0]
                for row in self._run(
                    f"""SELECT i.id FROM {incoming} AS i JOIN {table_ref(root)} AS t ON t.{key} = i.id
                        WHERE t.{rk} > CAST(i.version AS TIMESTAMPTZ)"""
                )
            }
        finally:
            self.conn.unregister(incoming)
        return [p for p in scope if p not in stale] if stale else scope

    def _drop(self, relation: str) -> None:
        if relation.startswith("_batch_"):
            self.conn.unregister(relation)
        else:
            self._run(f"DROP TABLE IF EXISTS {relation}")

    def _merge(self, s: Stream, stage: str, names: list[str], staged: int) -> WriteCounts:
        t = table_ref(s)
        on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in s.primary_key)
        rest = [n for n in names if n not in s.primary_key]
        differs = " OR ".join(f"t.{q(n)} IS DISTINCT FROM s.{q(n)}" for n in rest) or "FALSE"
        rk = q(s.replication_key) if s.replication_key else None
        newer = (
            f"s.{rk} > t.{rk} OR (t.{rk} IS NULL AND s.{rk} IS NOT NULL) "
            f"OR (s.{rk} IS NOT DISTINCT FROM t.{rk} AND ({differs}))"
            if rk
            else differs
        )
        sets = ", ".join([*(f"{q(n)} = s.{q(n)}" for n in rest), f"{q(SYNCED_AT)} = now()"])
        updated = self._count(f"UPDATE {t} AS t SET {sets} FROM {stage} AS s WHERE {on} AND ({newer})")
        cols = ", ".join(q(n) for n in names)
        inserted = self._count(
            f"""INSERT INTO {t} ({cols}, {q(SYNCED_AT)})
                SELECT {cols}, now() FROM {stage} AS s
                WHERE NOT EXISTS (SELECT 1 FROM {t} AS t WHERE {on})"""
        )
        return WriteCounts(inserted=inserted, updated=updated, unchanged=staged - inserted - updated)

    def _replace(
        self, s: Stream, stage: str, names: list[str], staged: int, scope: list | None
    ) -> WriteCounts:
        """Make the scoped part of the table (or all of it) equal to the stage, row by row."""
        import pyarrow as pa

        t = table_ref(s)
        in_scope = incoming_in_scope = "TRUE"
        if scope is not None and not scope:  # every parent in the batch was stale
            return WriteCounts(unchanged=staged)
        if scope is not None:
            self._tmp += 1
            scope_table = f"_scope_{self._tmp}"
            self.conn.register(scope_table, pa.table({"id": pa.array(scope)}))
            in_scope = f"t.{q(s.parent_key)} IN (SELECT id FROM {scope_table})"
            incoming_in_scope = f"s.{q(s.parent_key)} IN (SELECT id FROM {scope_table})"
        same = " AND ".join(f"t.{q(n)} IS NOT DISTINCT FROM s.{q(n)}" for n in names)
        try:
            deleted = self._count(
                f"DELETE FROM {t} AS t WHERE {in_scope} "
                f"AND NOT EXISTS (SELECT 1 FROM {stage} AS s WHERE {same})"
            )
            cols = ", ".join(q(n) for n in names)
            inserted = self._count(
                f"""INSERT INTO {t} ({cols}, {q(SYNCED_AT)})
                    SELECT {cols}, now() FROM {stage} AS s
                    WHERE {incoming_in_scope}
                      AND NOT EXISTS (SELECT 1 FROM {t} AS t WHERE {in_scope} AND {same})"""
            )
        finally:
            if scope is not None:
                self.conn.unregister(scope_table)
        return WriteCounts(inserted=inserted, deleted=deleted, unchanged=staged - inserted)
