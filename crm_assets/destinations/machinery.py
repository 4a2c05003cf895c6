"""The one sync machinery every destination shares: read, diff, batch, retry, record outcomes.

A vendor supplies a :class:`Destination` (its pre-flight and a writer that sends batches and
reports one :class:`RowResult` per row, saying whether a failure is worth retrying). This
module does the rest: it streams the changed rows from the spool in batches of the sync's
size, sends a window of batches at a time, sends again only the rows whose failure was
transient (after ``retry_initial_delay`` seconds, doubling each time, ``retry_limit`` times),
and writes every row's final outcome to a spool of its own that the warehouse records at the
end, even when the run fails half-way, so that no result is lost.

A call the destination refuses outright (a configuration error, a non-retryable answer) stops
the run, but only after the results of the window's other calls are written: an insert that
succeeded and was not recorded would be sent again next run, a duplicate record in the org.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from crm_assets.destinations.specs import SyncSpec
from crm_assets.destinations.tracking import HASH_COLUMN, KEY_COLUMN, SyncTracking
from crm_assets.destinations.values import convert_record, encode_record

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

    def send(self, spec: SyncSpec, operation: str, batches: list[list[dict]]) -> list[BatchAnswer]:
        """One attempt at `batches`: an answer for every batch, in order. A batch not sent because
        another was refused carries that refusal; raising refuses the whole window."""

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
) -> SyncCounts:
    """Read the changed rows, push them, record the outcomes; three short warehouse visits.

    `session_factory` opens a warehouse session (the DuckDB writer lock is held only inside it).
    Raises :class:`PushFailure` after recording outcomes when rows still fail transiently.
    """
    import pyarrow as pa  # here, not at the top: loading the code location imports this module

    from crm_assets.destinations.tracking import OUTCOME_SCHEMA

    started = time.monotonic()
    counts = SyncCounts()
    with tempfile.TemporaryDirectory(prefix=f"sync-{spec.name}-") as tmp:
        spool, outcome_path = Path(tmp) / "rows.arrow", Path(tmp) / "outcomes.arrow"
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
        with pa.OSFile(str(outcome_path), "wb") as sink, pa.ipc.new_file(sink, OUTCOME_SCHEMA) as outcomes:
            try:
                with open_destination(spec) as destination:
                    redact = destination.redact
                    try:
                        fields = destination.preflight(spec, read.columns, read.types)
                        log(f"{spec.name}: {read.selected} rows selected, {read.to_send} to send")
                        if spec.mode == "truncate":
                            counts.deleted = _truncate(spec, destination, counts, sleep)
                        pusher = _Pusher(spec, destination, counts, outcomes, sleep)
                        for window in _windows(_rows(spool, fields, spec.batch_size)):
                            pusher.push(window)
                    finally:
                        counts.api_calls, counts.batches = destination.api_calls, destination.batches
            except BaseException as exc:  # noqa: BLE001 - outcomes are recorded, then it is raised
                failure = exc
        with session_factory() as session, pa.memory_map(str(outcome_path)) as source:
            reader = pa.ipc.open_file(source)
            SyncTracking(session.conn).record_outcomes(
                spec,
                run_id,
                pa.RecordBatchReader.from_batches(
                    OUTCOME_SCHEMA, (reader.get_batch(i) for i in range(reader.num_record_batches))
                ),
            )
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


def _with_retries(
    spec: SyncSpec,
    destination: Destination,
    operation: str,
    rows: list[list[_Row]],
    counts: SyncCounts,
    sleep: Callable[[float], None],
) -> tuple[list[tuple[_Row, RowResult]], Exception | None]:
    """Send `rows`; rows that fail transiently are sent again, and only they, with backoff.

    A refused call ends the attempts: the results known so far come back with the first
    refusal (the refused batches' rows, never written, have none), for the caller to record
    before it raises the refusal; rows still failing transiently are final failures then.
    """
    final: list[tuple[_Row, RowResult]] = []
    pending = rows
    delay = spec.retry_initial_delay
    for attempt in range(spec.retry_limit + 1):
        try:
            answers = destination.send(spec, operation, [[r.record for r in batch] for batch in pending])
        except Exception as exc:  # noqa: BLE001 - the whole window refused; earlier attempts' results stand
            answers = [exc] * len(pending)
        refusal = next((answer for answer in answers if isinstance(answer, Exception)), None)
        last = refusal is not None or attempt == spec.retry_limit
        retry: list[_Row] = []
        for batch, answer in zip(pending, answers, strict=True):
            if isinstance(answer, Exception):
                continue
            for row, result in zip(batch, answer, strict=True):
                if result.transient and not result.success and not last:
                    retry.append(row)
                else:
                    final.append((row, result))
        if refusal is not None or not retry:
            return final, refusal
        counts.retries += 1
        sleep(delay)
        delay *= 2
        pending = [retry[i : i + spec.batch_size] for i in range(0, len(retry), spec.batch_size)]
    return final, None


class _Pusher:
    """Sends windows of batches and writes each row's final outcome."""

    def __init__(self, spec, destination, counts, outcomes, sleep):
        self.spec, self.destination, self.counts, self.outcomes, self.sleep = (
            spec,
            destination,
            counts,
            outcomes,
            sleep,
        )
        self.operation = operation_of(spec)

    def push(self, window: list[list[_Row]]) -> None:
        """Send the window and write its outcomes; then raise the refusal of any of its calls."""
        import pyarrow as pa

        from crm_assets.destinations.tracking import OUTCOME_SCHEMA

        final, refusal = _with_retries(
            self.spec, self.destination, self.operation, window, self.counts, self.sleep
        )
        rows = []
        for row, result in final:
            if result.success:
                if result.created or self.operation == "insert":
                    self.counts.inserted += 1
                else:
                    self.counts.updated += 1
            else:
                self.counts.rejected += 1
                if result.transient:
                    code = result.error_code or "TRANSIENT"
                    self.counts.failures[code] = self.counts.failures.get(code, 0) + 1
            rows.append(
                {
                    "row_key": row.key,
                    "row_hash": row.row_hash,
                    "success": result.success,
                    "record_id": result.record_id,
                    "error_code": None if result.success else result.error_code or "UNKNOWN",
                    "message": None if result.success else self.destination.redact(result.message or ""),
                    "record": None if result.success else encode_record(row.record).decode(),
                }
            )
        self.outcomes.write_table(pa.Table.from_pylist(rows, schema=OUTCOME_SCHEMA))
        if refusal is not None:
            raise refusal


def _truncate(spec: SyncSpec, destination: Destination, counts: SyncCounts, sleep) -> int:
    """Delete every record of the object (hard delete when asked) before the insert."""
    operation = "hardDelete" if spec.hard_delete else "delete"
    deleted = 0
    batch: list[_Row] = []
    failed: list[str] = []

    def flush() -> None:
        nonlocal deleted
        final, refusal = _with_retries(spec, destination, operation, [batch], counts, sleep)
        for row, result in final:
            if result.success:
                deleted += 1
            else:
                failed.append(f"{row.key}: {result.error_code} {destination.redact(result.message or '')}")
        if refusal is not None:
            raise refusal

    # Every Id is listed before the first delete, so deleting cannot disturb the paging.
    for record_id in list(destination.existing_ids(spec)):
        batch.append(_Row(record_id, "", {"Id": record_id}))
        if len(batch) == spec.batch_size:
            flush()
            batch = []
    if batch:
        flush()
    if failed:
        raise PushFailure(
            f"sync {spec.name}: {len(failed)} existing {spec.object} records could not be deleted, so none "
            f"was inserted; first: {failed[0]}"
        )
    return deleted
