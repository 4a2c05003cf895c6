"""Replication state: stream cursors and the windows of the replication key a table reflects."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from crm_assets.catalog import Stream
from crm_assets.warehouse.sql import STATE_SCHEMA, Connection, q


def _join_windows(windows: Sequence[tuple[datetime | None, datetime]]) -> list[tuple[datetime | None, datetime]]:
    """Overlapping or touching windows joined; a None start sorts first (the beginning)."""
    joined: list[tuple[datetime | None, datetime]] = []
    for start, end in sorted(windows, key=lambda w: (w[0] is not None, w[0] or w[1])):
        if joined and (start is None or start <= joined[-1][1]):
            joined[-1] = (joined[-1][0], max(joined[-1][1], end))
        else:
            joined.append((start, end))
    return joined


class StateQueries(Connection):
    """Cursors move only inside a write transaction; windows are recorded once committed."""

    def ensure_state_tables(self) -> None:
        self._run(f"CREATE SCHEMA IF NOT EXISTS {q(STATE_SCHEMA)}")
        self._run(
            f"""CREATE TABLE IF NOT EXISTS {q(STATE_SCHEMA)}.stream_state (
                source VARCHAR, stream VARCHAR, cursor_value TIMESTAMPTZ,
                synced_through TIMESTAMPTZ, updated_at TIMESTAMPTZ,
                PRIMARY KEY (source, stream))"""
        )
        self._run(
            f"""CREATE TABLE IF NOT EXISTS {q(STATE_SCHEMA)}.stream_windows (
                source VARCHAR, stream VARCHAR, window_start TIMESTAMPTZ, window_end TIMESTAMPTZ)"""
        )

    def _advance_cursor(self, stream: Stream, value: datetime) -> None:
        self._run(
            f"""INSERT INTO {q(STATE_SCHEMA)}.stream_state AS s
                    (source, stream, cursor_value, updated_at)
                VALUES (?, ?, ?, now())
                ON CONFLICT (source, stream) DO UPDATE SET
                    cursor_value = greatest(s.cursor_value, excluded.cursor_value),
                    updated_at = now()""",
            [stream.source, stream.name, value],
        )

    def record_window(self, stream: Stream, start: datetime | None, end: datetime) -> None:
        """Remember that the table now reflects the API for replication keys in [start, end)
        (``start`` None: from the very beginning), and how far that coverage is unbroken.

        A table is complete through T when the windows read so far join up from the beginning
        to T: a record's key only ever moves forward, so nothing before T can be missing.
        """
        state = f"{q(STATE_SCHEMA)}.stream_windows"
        ids = [stream.source, stream.name]
        self._run("BEGIN TRANSACTION")
        try:
            self._run(f"INSERT INTO {state} VALUES (?, ?, ?, ?)", [*ids, start, end])
            windows = _join_windows(
                self._run(f"SELECT window_start, window_end FROM {state} WHERE source = ? AND stream = ?", ids)
            )
            self._run(f"DELETE FROM {state} WHERE source = ? AND stream = ?", ids)
            self.conn.executemany(f"INSERT INTO {state} VALUES (?, ?, ?, ?)", [[*ids, a, b] for a, b in windows])
            complete = windows[0][1] if windows[0][0] is None else None
            self._run(
                f"""INSERT INTO {q(STATE_SCHEMA)}.stream_state AS s
                        (source, stream, synced_through, updated_at)
                    VALUES (?, ?, ?, now())
                    ON CONFLICT (source, stream) DO UPDATE SET
                        synced_through = excluded.synced_through, updated_at = now()""",
                [*ids, complete],
            )
            self._run("COMMIT")
        except BaseException:
            self._run("ROLLBACK")
            raise

    def synced_through(self, stream: Stream) -> datetime | None:
        """The instant up to which every change is in the table (None: not complete yet)."""
        row = self._one(
            f"SELECT synced_through FROM {q(STATE_SCHEMA)}.stream_state WHERE source = ? AND stream = ?",
            [stream.source, stream.name],
        )
        return row[0] if row else None

    def cursor(self, stream: Stream) -> datetime | None:
        row = self._one(
            f"SELECT cursor_value FROM {q(STATE_SCHEMA)}.stream_state WHERE source = ? AND stream = ?",
            [stream.source, stream.name],
        )
        return row[0] if row else None
