"""Operations bookkeeping in ``crm_assets_state``: failed runs and paused syncs, where an
operator querying the warehouse sees them beside the data they concern."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from crm_assets.warehouse.sql import STATE_SCHEMA, Connection, q

RUN_FAILURES = f"{STATE_SCHEMA}.run_failures"
SYNC_PAUSES = f"{STATE_SCHEMA}.sync_pauses"
CONFIGURATION = "configuration"


@dataclass(frozen=True)
class FailureRow:
    """One failed step of a run (step "" when the run failed outside any step)."""

    run_id: str
    step: str
    job: str
    assets: str
    partitions: str
    failure_kind: str
    error: str
    failed_at: datetime


class OperationsLog(Connection):
    """Failed runs and sync pauses; every write is idempotent (a sensor may see a run twice)."""

    def ensure_operations_tables(self) -> None:
        self._run(f"CREATE SCHEMA IF NOT EXISTS {q(STATE_SCHEMA)}")
        self._run(
            f"""CREATE TABLE IF NOT EXISTS {RUN_FAILURES} (
                run_id VARCHAR, step VARCHAR, job VARCHAR, assets VARCHAR, partitions VARCHAR,
                failure_kind VARCHAR, error VARCHAR, failed_at TIMESTAMPTZ, PRIMARY KEY (run_id, step))"""
        )
        self._run(
            f"""CREATE TABLE IF NOT EXISTS {SYNC_PAUSES} (
                sync VARCHAR PRIMARY KEY, paused_at TIMESTAMPTZ, reason VARCHAR, failures INTEGER,
                run_ids VARCHAR)"""
        )

    def record_failures(self, rows: Sequence[FailureRow]) -> None:
        self.conn.executemany(
            f"INSERT INTO {RUN_FAILURES} VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [
                [r.run_id, r.step, r.job, r.assets, r.partitions, r.failure_kind, r.error, r.failed_at]
                for r in rows
            ],
        )

    def configuration_streak(self, step: str, after: datetime | None) -> list[str]:
        """Run ids of `step`'s latest failures after `after`, newest first, as long as each one
        was a configuration failure (the first other failure ends the streak)."""
        rows = self._run(
            f"""SELECT run_id, failure_kind FROM {RUN_FAILURES}
                WHERE step = ? AND (? IS NULL OR failed_at > ?) ORDER BY failed_at DESC""",
            [step, after, after],
        )
        streak = []
        for run_id, kind in rows:
            if kind != CONFIGURATION:
                break
            streak.append(run_id)
        return streak

    def paused_at(self, sync: str) -> datetime | None:
        row = self._one(f"SELECT paused_at FROM {SYNC_PAUSES} WHERE sync = ?", [sync])
        return row[0] if row else None

    def record_pause(self, sync: str, paused_at: datetime, reason: str, run_ids: Sequence[str]) -> None:
        self._run(
            f"""INSERT INTO {SYNC_PAUSES} VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (sync) DO UPDATE SET paused_at = excluded.paused_at, reason = excluded.reason,
                    failures = excluded.failures, run_ids = excluded.run_ids""",
            [sync, paused_at, reason, len(run_ids), ",".join(run_ids)],
        )
