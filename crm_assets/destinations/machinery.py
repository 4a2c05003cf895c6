"""The one sync machinery every destination shares: read, diff, batch, retry, record outcomes.

A vendor supplies a :class:`Destination` (its pre-flight and a writer that sends batches and
reports one :class:`RowResult` per row, saying whether a failure is worth retrying). This
module does the rest: it streams the changed rows from the spool in batches of the sync's
size, sends a window of batches at a time, sends again only the rows whose failure was
transient (after ``retry_initial_delay`` seconds, doubling each time, ``retry_limit`` times),
and writes every row's final outcome to the run's journal, which the warehouse records at the
end, even when the run fails half-way, so that no result is lost.

A call the destination refuses outright (a configuration error, a non-retryable answer) stops
the run, but only after the results of the window's other calls are written: an insert that
succeeded and was not recorded would be sent again next run, a duplicate record in the org.
For the same reason the outcomes go to the sync's journal as they are learned, with an append's
accepted batches, and a run first finishes what a killed one left (:mod:`.journal`); sending
is :mod:`.pushing`.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from crm_assets.destinations.specs import SyncSpec
from crm_assets.destinations.tracking import HASH_COLUMN, KEY_COLUMN, SyncTracking
from crm_assets.destinations.values import convert_record

if TYPE_CHECKING:
    from crm_assets.destinations.journal import PushJournal

# Batches sent before their results are awaited: bounds memory and the rows a crash can strand.
BATCHES_IN_FLIGHT = 10
MAX_MESSAGE = 500


@dataclass
class RowResult:
    """What the destination said about one row."""

    success: bool
    created: bool = False
    record_id: str | None = None
    error_code: str | None = None
    message: str | None = None
    transient: bool = False


# A writer's note that the batch at an index was accepted, with a handle to read its results later.
Accepted = Callable[[int, dict], None]

# What a destination answers for one batch: a result per row, in order, or the exception that
# refused the batch's call (none of its rows was written).
BatchAnswer = list[RowResult] | Exception

FAILURE_KIND = "failure_kind"  # the sync asset's failure metadata: "configuration" or "error"


class SyncConfigurationError(Exception):
    """Mixed into errors that only an operator can fix (credentials refused or missing, a field
    missing or not writable): retrying changes nothing, so a sync failing this way again and
    again is paused (see :mod:`crm_assets.orchestration.failures`)."""


class PushFailure(RuntimeError):
    """The push could not finish: transient failures outlived the retries, or the destination
    refused the run. Outcomes already known are recorded before this is raised; `counts` holds
    the run's numbers when they are known."""

    def __init__(self, message: str, counts: SyncCounts | None = None):
        super().__init__(message)
        self.counts = counts


class Destination(Protocol):
    api_calls: int
    batches: int

    def preflight(self, spec: SyncSpec, columns: list[str], types: list[str]) -> dict[str, str]:
        """Map each result column (of DuckDB type `types[i]`) to the destination's field name,
        or raise naming every bad one."""

    def existing_ids(self, spec: SyncSpec) -> Iterator[str]:
        """Ids of every record of the object (truncate mode deletes them)."""

    def send(
        self, spec: SyncSpec, operation: str, batches: list[list[dict]], accepted: Accepted | None = None
    ) -> list[BatchAnswer]:
        """One attempt at `batches`: an answer for every batch, in order. A batch not sent because
        another was refused carries that refusal; raising refuses the whole window. A writer
        whose batches are accepted before they are done calls `accepted(index, handle)` then."""

    def recover(self, spec: SyncSpec, handle: dict, rows: int) -> BatchAnswer:
        """The answer for a batch an earlier run's writer accepted (`handle`, of `rows` rows),
        waiting for it to be done; only for writers that call `accepted`."""

    def redact(self, text: object) -> str: ...


@dataclass
class SyncCounts:
    """One run's numbers, shown as the asset's metadata."""

    selected: int = 0
    unchanged: int = 0
    sent: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    rejected: int = 0
    api_calls: int = 0
    batches: int = 0
    retries: int = 0
    seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def succeeded(self) -> int:
        """Rows the destination accepted (the contract's count beside sent and rejected)."""
        return self.inserted + self.updated

    def metadata(self) -> dict[str, float | int]:
        names = (
            "selected",
            "unchanged",
            "sent",
            "succeeded",
            "inserted",
            "updated",
            "deleted",
            "rejected",
            "api_calls",
            "batches",
            "retries",
        )
        return {**{n: getattr(self, n) for n in names}, "seconds": round(self.seconds, 3)}


@dataclass
class _Row:
    key: str
    row_hash: str
    record: dict


def outcome_row(
    key: str, row_hash: str, record: str | None, result: RowResult, redact: Callable[[object], str]
) -> dict:
    """One row's outcome as the journal and the warehouse store it (`record`: its JSON text,
    kept for a rejection)."""
    return {
        "row_key": key,
        "row_hash": row_hash,
        "success": result.success,
        "record_id": result.record_id,
        "error_code": None if result.success else result.error_code or "UNKNOWN",
        "message": None if result.success else redact(result.message or ""),
        "record": None if result.success else record,
    }


def operation_of(spec: SyncSpec) -> str:
    if spec.mode != "update":
        return "insert"
    return "upsert" if spec.upsert else "update"


def run_sync(
    spec: SyncSpec,
    session_factory: Callable[[], contextlib.AbstractContextManager],
    open_destination: Callable[[SyncSpec], contextlib.AbstractContextManager[Destination]],
    run_id: str,
    log: Callable[[str], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
    journal_dir: Path | None = None,
) -> SyncCounts:
    """Read the changed rows, push them, record the outcomes; three short warehouse visits (one
    more when a killed run left outcomes to record).

    `session_factory` opens a warehouse session (the DuckDB writer lock is held only inside it).
    Outcomes are journaled in `journal_dir` as they are learned (:mod:`.journal`), and what a
    killed run left there is recorded first. Raises :class:`PushFailure` after recording
    outcomes when rows still fail transiently.
    """
    from crm_assets.destinations.journal import PushJournal, recover_leftovers

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"sync-{spec.name}-") as tmp, \
            PushJournal(journal_dir or Path(tmp), spec.name, run_id) as journal:
        recover_leftovers(spec, journal, session_factory, open_destination, log)
        return _run(spec, session_factory, open_destination, run_id, log, sleep, journal, Path(tmp), started)


def _run(
    spec: SyncSpec,
    session_factory: Callable[[], contextlib.AbstractContextManager],
    open_destination: Callable[[SyncSpec], contextlib.AbstractContextManager[Destination]],
    run_id: str,
    log: Callable[[str], None],
    sleep: Callable[[float], None],
    journal: PushJournal,
    tmp: Path,
    started: float,
) -> SyncCounts:
    """One run's push, its journal already clear of what earlier runs left."""
    import pyarrow as pa  # here, not at the top: loading the code location imports this module

    from crm_assets.destinations.pushing import Pusher, truncate
    from crm_assets.destinations.tracking import OUTCOME_SCHEMA

    counts = SyncCounts()
    spool = tmp / "rows.arrow"
    with session_factory() as session:
        read = SyncTracking(session.conn).read_changes(spec, run_id, spool, spec.batch_size)
    counts.selected, counts.unchanged, counts.sent = read.selected, read.unchanged, read.to_send
    counts.rejected = read.null_keys
    if read.to_send == 0 and spec.mode != "truncate":
        log(f"{spec.name}: {read.selected} rows selected, none changed since the last push")
        counts.seconds = time.monotonic() - started
        return counts
    failure: BaseException | None = None
    redact: Callable[[object], str] = str
    with journal.outcome_writer(OUTCOME_SCHEMA) as outcomes:
        try:
            with open_destination(spec) as destination:
                redact = destination.redact
                try:
                    fields = destination.preflight(spec, read.columns, read.types)
                    log(f"{spec.name}: {read.selected} rows selected, {read.to_send} to send")
                    if spec.mode == "truncate":
                        counts.deleted = truncate(spec, destination, counts, sleep)
                    pusher = Pusher(spec, destination, counts, outcomes, sleep, journal)
                    for window in _windows(_rows(spool, fields, spec.batch_size)):
                        pusher.push(window)
                finally:
                    counts.api_calls, counts.batches = destination.api_calls, destination.batches
        except BaseException as exc:  # noqa: BLE001 - outcomes are recorded, then it is raised
            failure = exc
    with session_factory() as session, pa.memory_map(str(journal.outcomes_path)) as source:
        SyncTracking(session.conn).record_outcomes(spec, run_id, pa.ipc.open_stream(source))
    journal.finish()
    counts.seconds = time.monotonic() - started
    if isinstance(failure, PushFailure) and failure.counts is None:
        failure.counts = counts
    if isinstance(failure, (PushFailure, ValueError)) or (
        failure is not None and not isinstance(failure, Exception)
    ):
        raise failure  # already worded for the operator (pre-flight, query), or an interrupt
    if failure is not None:
        # A library error may quote a request or a response: only its redacted gist leaves.
        gist = redact(failure)
        gist = gist if len(gist) <= MAX_MESSAGE else gist[:MAX_MESSAGE] + " ..."
        raise PushFailure(f"sync {spec.name}: {type(failure).__name__}: {gist}", counts) from None
    if counts.failures:
        causes = ", ".join(f"{code} ({n} rows)" for code, n in sorted(counts.failures.items()))
        raise PushFailure(
            f"sync {spec.name}: rows still failing after {spec.retry_limit} retries: {causes}; "
            "they are in reverse_etl.rejections and will be sent again next run",
            counts,
        )
    return counts


def _rows(spool: Path, fields: dict[str, str], batch_size: int) -> Iterator[list[_Row]]:
    """The spool's rows in batches of exactly `batch_size` (the last may be smaller)."""
    import pyarrow as pa

    pending: list[_Row] = []
    with pa.memory_map(str(spool)) as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            for row in reader.get_batch(i).to_pylist():
                key, row_hash = row.pop(KEY_COLUMN), row.pop(HASH_COLUMN)
                pending.append(_Row(key, row_hash, convert_record({fields[c]: v for c, v in row.items()})))
                if len(pending) == batch_size:
                    yield pending
                    pending = []
    if pending:
        yield pending


def _windows(batches: Iterator[list[_Row]]) -> Iterator[list[list[_Row]]]:
    window: list[list[_Row]] = []
    for batch in batches:
        window.append(batch)
        if len(window) == BATCHES_IN_FLIGHT:
            yield window
            window = []
    if window:
        yield window


def send_each(
    send_one: Callable[[list[dict]], list[RowResult]], batches: list[list[dict]], workers: int, name: str
) -> list[BatchAnswer]:
    """`send_one` for every batch, `workers` calls at a time: each batch's results, or the
    exception its call raised. Once a call is refused, batches not started yet are not sent and
    carry that refusal, while the calls already under way finish and keep their results."""
    refusal: Exception | None = None

    def attempt(batch: list[dict]) -> BatchAnswer:
        nonlocal refusal
        if refusal is not None:
            return refusal
        try:
            return send_one(batch)
        except Exception as exc:  # noqa: BLE001 - handed back for the machinery to raise once recorded
            refusal = refusal or exc
            return exc

    if workers <= 1 or len(batches) <= 1:
        return [attempt(batch) for batch in batches]
    with ThreadPoolExecutor(min(workers, len(batches)), thread_name_prefix=name) as pool:
        return list(pool.map(attempt, batches))
