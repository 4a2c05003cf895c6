"""What the shipped dagster.yaml plugs into Dagster on one machine: an event log storage that
keeps its connections open, and a run launcher whose run workers the daemon can check.

PooledSqliteEventLogStorage. A single-run backfill of T tables over D days makes Dagster
record T x D planned and T x D materialization events, one SQLite transaction each. Dagster's
own SQLite storages open a new connection for every event and close it afterwards; closing the
last connection to a WAL database checkpoints the WAL into the database file and syncs it, so
each event paid a commit sync plus a checkpoint (60% of a profiled backfill, see
benchmarks/RESULTS.md). This storage keeps a small pool of connections per process, so SQLite
checkpoints when its WAL reaches its usual size, with `PRAGMA synchronous=NORMAL` (LocalInstance's
choice; an explicit `event_log_storage:` entry may say FULL): every commit survives any crash
of a process (SIGKILL included); only an operating-system crash or power loss can drop the last
commits, never corrupting the file; FULL also syncs each commit. Schema, queries, pools and their slots are
Dagster's: the file is ConsolidatedSqliteEventLogStorage's and either class can read it.

LocalRunLauncher. Dagster's DefaultRunLauncher cannot tell the daemon's run monitoring whether
a run's process is alive, so a run whose process was killed (with the code server, or a CLI
run) stayed STARTED for ever and kept its concurrency-pool slots. This launcher answers from
the pid each run records when its process starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as db
import yaml
from dagster import Field
from dagster._config import Enum, EnumValue, StringSource
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import (
    ConsolidatedSqliteEventLogStorage,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from watchdog.events import PatternMatchingEventHandler
from watchdog.observers import Observer

SYNCHRONOUS_LEVELS = ("NORMAL", "FULL")


class LocalInstance(dg.DagsterInstance):
    """The Dagster instance of the shipped dagster.yaml (`instance_class`): Dagster's defaults
    under the instance folder, but with events in PooledSqliteEventLogStorage.

    A class rather than an `event_log_storage:` entry because only the instance knows its
    folder: a storage configured in dagster.yaml with a relative path would resolve it
    against the working directory of each process, and an instance opened with
    `DagsterInstance.from_config(folder)` would read another file than the daemon writes.
    """

    @classmethod
    def config_schema(cls) -> dict:
        return {}

    @classmethod
    def config_defaults(cls, base_dir: str) -> Mapping[str, ConfigurableClassData | None]:
        defaults = dict(InstanceRef.config_defaults(base_dir))
        event_log = ConfigurableClassData(
            __name__,
            PooledSqliteEventLogStorage.__name__,
            yaml.dump({"base_dir": os.path.join(base_dir, "history"), "synchronous": "NORMAL"}),
        )
        parts = {
            "run_storage": defaults["run_storage"],
            "event_log_storage": event_log,
            "schedule_storage": defaults["schedule_storage"],
        }
        defaults["event_log_storage"] = event_log
        defaults["storage"] = ConfigurableClassData(
            "dagster._core.storage.legacy_storage",
            "CompositeStorage",
            yaml.dump({
                name: {"module_name": d.module_name, "class_name": d.class_name, "config_yaml": d.config_yaml}
                for name, d in parts.items()
            }),
        )
        return defaults


class PooledSqliteEventLogStorage(ConsolidatedSqliteEventLogStorage):
    """ConsolidatedSqliteEventLogStorage over a per-process connection pool with a chosen
    `PRAGMA synchronous`. LocalInstance makes it the default event log storage, at
    DAGSTER_HOME/history/event_log.db."""

    def __init__(
        self, base_dir: str, synchronous: str = "NORMAL", inst_data: ConfigurableClassData | None = None
    ):
        if synchronous not in SYNCHRONOUS_LEVELS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_LEVELS}, not {synchronous!r}")
        self._synchronous = synchronous
        self._engine: db.Engine | None = None
        self._engine_pid: int | None = None
        self._asset_key_columns: set[str] = set()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def config_type(cls):
        return {
            "base_dir": StringSource,
            "synchronous": Field(
                Enum("SqliteSynchronous", [EnumValue(level) for level in SYNCHRONOUS_LEVELS]),
                is_required=False,
                default_value="NORMAL",
            ),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _pooled_engine(self) -> db.Engine:
        """One engine per process (a pool must never cross a fork)."""
        if self._engine is None or self._engine_pid != os.getpid():
            engine = db.create_engine(
                self._conn_string,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                pool_size=2,
                max_overflow=8,
            )
            synchronous = self._synchronous

            @db.event.listens_for(engine, "connect")
            def _set_synchronous(dbapi_connection, _record) -> None:
                dbapi_connection.execute(f"PRAGMA synchronous={synchronous}")

            self._engine, self._engine_pid = engine, os.getpid()
        return self._engine

    @contextmanager
    def _connect(self) -> Iterator[db.Connection]:
        with self._pooled_engine().connect() as conn, conn.begin():
            yield conn

    def _has_asset_key_col_on_connection(self, conn: db.Connection, column_name: str) -> bool:
        """Dagster reflects the asset_keys table on every asset event to learn whether a
        migration added a column (6% of the time spent launching the demo's run); a column
        once present stays present, so each process asks once per column."""
        if column_name not in self._asset_key_columns:
            if not super()._has_asset_key_col_on_connection(conn, column_name):
                return False
            self._asset_key_columns.add(column_name)
        return True

    def watch(self, run_id, cursor, callback) -> None:
        """As Dagster's, but also woken by writes to the WAL file: with connections kept open
        the database file itself changes only at checkpoints, and the UI's live run log
        would lag until then."""
        if not self._obs:
            self._obs = Observer()
            self._obs.start()
            self._obs.schedule(_DatabaseOrWalModified(self), self._base_dir, recursive=True)
        self._watchers[run_id][callback] = cursor

    def dispose(self) -> None:
        super().dispose()
        if self._engine is not None and self._engine_pid == os.getpid():
            self._engine.dispose()
        self._engine = None


class _DatabaseOrWalModified(PatternMatchingEventHandler):
    def __init__(self, storage: PooledSqliteEventLogStorage):
        self._storage = storage
        path = storage.get_db_path()
        super().__init__(patterns=[path, f"{path}-wal"])

    def on_modified(self, event) -> None:
        self._storage.on_modified()


class LocalRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher (runs in processes of this machine) that tells run monitoring
    whether a run's process is still alive, so that `dagster-daemon` marks a killed run
    failed and, after `free_slots_after_run_end_seconds`, gives back its pool slots.

    The process is the one that recorded "Started process for run (pid: N)" (a launched
    run's worker) or the multiprocess executor's parent (a `dagster asset materialize` run):
    the first engine event of the run with a `pid`. A pid that is gone, or that now belongs
    to a process started after the run, means the run's process died. Only meaningful on
    the machine the runs were started on, which is this launcher's whole scope.
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        pid = run_process_id(self._instance, run.run_id)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run has not recorded its process yet")
        record = self._instance.get_run_record_by_id(run.run_id)
        started = record.start_time if record and record.start_time else record.create_timestamp.timestamp()
        if process_alive_since(pid, started):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"process {pid} is alive")
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run's process {pid} is gone (killed or crashed)")


def run_process_id(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the process that drives the run, from its first engine event that names one."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=50).records
    for record in records:
        metadata = record.event_log_entry.dagster_event.engine_event_data.metadata
        if "pid" in metadata:
            return int(metadata["pid"].value)
    return None


def process_alive_since(pid: int, timestamp: float) -> bool:
    """Whether process `pid` exists and (where /proc tells) was started before `timestamp`,
    so that a pid reused by a later process does not count as the run's."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = _process_start_time(pid)
    return started is None or started <= timestamp + 1.0


def _process_start_time(pid: int) -> float | None:
    """Seconds since the epoch at which `pid` started, from /proc (None elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration):
        return None
    ticks = int(stat.rsplit(")", 1)[1].split()[19])
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Once, what the daemon's run monitoring does continuously, for commands that work
    without a daemon (`make demo`, and `make dev` before its daemon is up): mark failed every
    started run whose process is gone, then give back the pool slots still held by runs that
    have ended. Returns the ids of the runs it marked failed."""
    launcher = instance.run_launcher
    failed = []
    if launcher.supports_check_run_worker_health:
        for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            health = launcher.check_run_worker_health(run)
            if health.status == WorkerStatus.FAILED:
                instance.report_run_failed(run, f"Marked failed before the next run: {health.msg}.")
                failed.append(run.run_id)
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        for run_id in storage.get_concurrency_run_ids():
            run = instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                storage.free_concurrency_slots_for_run(run_id)
    return failed
