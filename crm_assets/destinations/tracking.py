"""Change tracking and rejections for reverse-ETL syncs, in the warehouse file.

A sync runs in three short visits to DuckDB, so that the writer lock is never held while a
destination API is called ("one writer, briefly"):

1. :meth:`SyncTracking.read_changes` runs the query once into a temporary table, compares each
   row's hash with the hash stored at its last successful push, and streams the rows to send
   into an Arrow spool file beside the process (memory stays flat however big the result);
2. the destination writer pushes the spool (no DuckDB connection open);
3. :meth:`SyncTracking.record_outcomes` stores, in one transaction, the new hashes of the rows
   that succeeded and the rejections of those that did not.

A row's key is the sync's key column as text (the row's hash when an append has no key). A
rejected row loses its stored hash, so it is sent again next run whatever its content; its
rejection is cleared when it succeeds or leaves the query's result.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from crm_assets.destinations.specs import SyncSpec
from crm_assets.warehouse.sql import STATE_SCHEMA, Connection, q

if TYPE_CHECKING:
    import pyarrow as pa

REJECTIONS = "reverse_etl.rejections"
SYNC_ROWS = f"{STATE_SCHEMA}.sync_rows"
KEY_COLUMN = "__crm_row_key"
HASH_COLUMN = "__crm_row_hash"
NULL_KEY = "NULL_KEY"
_RESULT = "_sync_result"


@cache
def _outcome_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("row_key", pa.string()),
            ("row_hash", pa.string()),
            ("success", pa.bool_()),
            ("record_id", pa.string()),
            ("error_code", pa.string()),
            ("message", pa.string()),
            ("record", pa.string()),
        ]
    )


def __getattr__(name: str) -> Any:
    """`OUTCOME_SCHEMA`, the Arrow schema of a push's outcome rows, built on first use: the code
    location imports this module, and only a process that pushes needs pyarrow."""
    if name == "OUTCOME_SCHEMA":
        return _outcome_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SyncQueryError(ValueError):
    """The sync's query result cannot be pushed as it is (duplicate columns or keys)."""


@dataclass
class ReadResult:
    """What the read visit found: the result's columns and how many rows are to be sent."""

    columns: list[str]
    types: list[str]
    selected: int
    to_send: int
    null_keys: int

    @property
    def unchanged(self) -> int:
        return self.selected - self.to_send - self.null_keys


class SyncTracking(Connection):
    """The SQL of change tracking and rejections, on an open warehouse connection."""

    def ensure_sync_tables(self) -> None:
        self._run(f"CREATE SCHEMA IF NOT EXISTS {q(STATE_SCHEMA)}")
        self._run("CREATE SCHEMA IF NOT EXISTS reverse_etl")
        self._run(
            f"""CREATE TABLE IF NOT EXISTS {SYNC_ROWS} (
                sync VARCHAR, row_key VARCHAR, row_hash VARCHAR, record_id VARCHAR,
                pushed_at TIMESTAMPTZ, PRIMARY KEY (sync, row_key))"""
        )
        self._run(
            f"""CREATE TABLE IF NOT EXISTS {REJECTIONS} (
                sync VARCHAR, run_id VARCHAR, key VARCHAR, record JSON, error_code VARCHAR,
                message VARCHAR, rejected_at TIMESTAMPTZ)"""
        )

    def read_changes(self, spec: SyncSpec, run_id: str, spool: Path, rows_per_batch: int) -> ReadResult:
        """Write the rows to send into `spool` (an Arrow IPC file) and count the result.

        Every row is sent in truncate mode; otherwise only rows whose hash differs from the
        stored one. Rows of an update without a key value cannot be matched: they are
        rejected here, without a request.
        """
        self.ensure_sync_tables()
        try:
            relation = self.conn.sql(spec.query)
        except duckdb.Error as exc:
            raise SyncQueryError(f"sync {spec.name}: the query fails: {exc}") from None
        columns, types = list(relation.columns), [str(t) for t in relation.types]
        _check_columns(spec, columns)
        key = spec.row_key
        content_hash = "md5(CAST(to_json(r) AS VARCHAR))"
        key_expr = f"CAST(r.{q(key)} AS VARCHAR)" if key else content_hash
        self._run(
            f"""CREATE OR REPLACE TEMP TABLE {_RESULT} AS
                SELECT r.*, {key_expr} AS {KEY_COLUMN}, {content_hash} AS {HASH_COLUMN}
                FROM ({spec.query}) AS r"""
        )
        try:
            return self._spool_changes(spec, run_id, spool, rows_per_batch, columns, types)
        finally:
            self._run(f"DROP TABLE IF EXISTS {_RESULT}")

    def _spool_changes(self, spec, run_id, spool, rows_per_batch, columns, types) -> ReadResult:
        import pyarrow as pa

        selected = self._count(f"SELECT count(*) FROM {_RESULT}")
        duplicate = self._one(
            f"""SELECT {KEY_COLUMN}, count(*) FROM {_RESULT} WHERE {KEY_COLUMN} IS NOT NULL
                GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1 LIMIT 1"""
        )
        if duplicate and spec.row_key:
            raise SyncQueryError(
                f"sync {spec.name}: the query returns {spec.row_key} = {duplicate[0]!r} in {duplicate[1]} "
                "rows; the key must identify one record. Nothing was sent."
            )
        null_keys = self._record_null_keys(spec, run_id) if spec.match_key else 0
        self._forget_departed_rows(spec)
        changed = (
            f"SELECT * FROM {_RESULT} WHERE {KEY_COLUMN} IS NOT NULL"
            if spec.mode == "truncate"
            else f"""SELECT r.* FROM {_RESULT} AS r
                     LEFT JOIN {SYNC_ROWS} AS s ON s.sync = ? AND s.row_key = r.{KEY_COLUMN}
                     WHERE r.{KEY_COLUMN} IS NOT NULL AND s.row_hash IS DISTINCT FROM r.{HASH_COLUMN}"""
        )
        params = [] if spec.mode == "truncate" else [spec.name]
        reader = self.conn.sql(changed, params=params).to_arrow_reader(rows_per_batch)
        to_send = 0
        with pa.OSFile(str(spool), "wb") as sink, pa.ipc.new_file(sink, reader.schema) as writer:
            for batch in reader:
                to_send += batch.num_rows
                writer.write_batch(batch)
        return ReadResult(columns, types, selected, to_send, null_keys)

    def _record_null_keys(self, spec: SyncSpec, run_id: str) -> int:
        """Reject the rows whose match key is null (again each run, as the result is now)."""
        self._run(f"DELETE FROM {REJECTIONS} WHERE sync = ? AND error_code = ?", [spec.name, NULL_KEY])
        message = f"{spec.match_key} is null: the record cannot be matched"
        return self._count(
            f"""INSERT INTO {REJECTIONS}
                SELECT ?, ?, NULL, CAST(to_json(r) AS JSON), ?, ?, now()
                FROM (SELECT * EXCLUDE ({KEY_COLUMN}, {HASH_COLUMN}) FROM {_RESULT}
                      WHERE {KEY_COLUMN} IS NULL) AS r""",
            [spec.name, run_id, NULL_KEY, message],
        )

    def _forget_departed_rows(self, spec: SyncSpec) -> None:
        """Rows gone from the result keep no hash and no rejection."""
        for table, column in ((SYNC_ROWS, "row_key"), (REJECTIONS, "key")):
            self._run(
                f"""DELETE FROM {table} WHERE sync = ? AND {column} IS NOT NULL
                    AND {column} NOT IN
                        (SELECT {KEY_COLUMN} FROM {_RESULT} WHERE {KEY_COLUMN} IS NOT NULL)""",
                [spec.name],
            )

    def record_outcomes(self, spec: SyncSpec, run_id: str, outcomes: pa.RecordBatchReader) -> None:
        """Store hashes of the rows that succeeded and rejections of the others, atomically."""
        self.ensure_sync_tables()
        staged = "_sync_outcomes"
        self.conn.register("_sync_outcome_reader", outcomes)
        try:
            self._run(f"CREATE OR REPLACE TEMP TABLE {staged} AS SELECT * FROM _sync_outcome_reader")
        finally:
            self.conn.unregister("_sync_outcome_reader")
        self._run("BEGIN TRANSACTION")
        try:
            if spec.mode == "truncate":
                self._run(
                    f"DELETE FROM {REJECTIONS} WHERE sync = ? AND error_code IS DISTINCT FROM ?",
                    [spec.name, NULL_KEY],
                )
            self._run(
                f"DELETE FROM {REJECTIONS} WHERE sync = ? AND key IN (SELECT row_key FROM {staged})",
                [spec.name],
            )
            self._run(
                f"""DELETE FROM {SYNC_ROWS} WHERE sync = ?
                    AND row_key IN (SELECT row_key FROM {staged} WHERE NOT success)""",
                [spec.name],
            )
            if spec.mode != "truncate":
                self._run(
                    f"""INSERT INTO {SYNC_ROWS} AS s
                        SELECT ?, row_key, row_hash, record_id, now() FROM {staged} WHERE success
                        ON CONFLICT (sync, row_key) DO UPDATE SET row_hash = excluded.row_hash,
                            record_id = excluded.record_id, pushed_at = excluded.pushed_at""",
                    [spec.name],
                )
            self._run(
                f"""INSERT INTO {REJECTIONS}
                    SELECT ?, ?, row_key, CAST(record AS JSON), error_code, message, now()
                    FROM {staged} WHERE NOT success""",
                [spec.name, run_id],
            )
            self._run("COMMIT")
        except BaseException:
            self._run("ROLLBACK")
            raise
        finally:
            self._run(f"DROP TABLE IF EXISTS {staged}")

    def open_rejections(self, sync: str) -> int:
        """How many of the sync's rows are rejected now (0 before its first run)."""
        if not self._one(
            "SELECT 1 FROM duckdb_tables() WHERE schema_name = 'reverse_etl' AND table_name = 'rejections'"
        ):
            return 0
        return self._count(f"SELECT count(*) FROM {REJECTIONS} WHERE sync = ?", [sync])


def _check_columns(spec: SyncSpec, columns: list[str]) -> None:
    lowered = [c.lower() for c in columns]
    twice = sorted({c for c in columns if lowered.count(c.lower()) > 1})
    if twice:
        raise SyncQueryError(f"sync {spec.name}: the query names a column more than once: {', '.join(twice)}")
    if spec.row_key and spec.row_key.lower() not in lowered:
        raise SyncQueryError(
            f"sync {spec.name}: the key column {spec.row_key} is not among the query's columns "
            f"({', '.join(columns)})"
        )
