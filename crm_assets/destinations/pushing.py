"""Sending: a window of batches, again for the rows that failed transiently, and each row's
final outcome written to the run's journal (see :mod:`crm_assets.destinations.machinery` for
the run around it, :mod:`crm_assets.destinations.journal` for the journal)."""

from __future__ import annotations

from collections.abc import Callable

from crm_assets.destinations.journal import PushJournal
from crm_assets.destinations.machinery import (
    Accepted,
    Destination,
    PushFailure,
    RowResult,
    SyncCounts,
    _Row,
    operation_of,
    outcome_row,
)
from crm_assets.destinations.specs import SyncSpec
from crm_assets.destinations.values import encode_record


def send_with_retries(
    spec: SyncSpec,
    destination: Destination,
    operation: str,
    rows: list[list[_Row]],
    counts: SyncCounts,
    sleep: Callable[[float], None],
    journal: PushJournal | None = None,
) -> tuple[list[tuple[_Row, RowResult]], Exception | None]:
    """Send `rows`; rows that fail transiently are sent again, and only they, with backoff.

    A refused call ends the attempts: the results known so far come back with the first
    refusal (the refused batches' rows, never written, have none), for the caller to record
    before it raises the refusal; rows still failing transiently are final failures then.
    With a `journal`, each batch the destination accepts is journaled with its rows (an append:
    a killed run's accepted batches are read back, never sent twice).
    """
    final: list[tuple[_Row, RowResult]] = []
    pending = rows
    delay = spec.retry_initial_delay
    for attempt in range(spec.retry_limit + 1):
        on_accepted = None if journal is None else _journaling(journal, pending)
        try:
            answers = destination.send(spec, operation, [[r.record for r in batch] for batch in pending], on_accepted)
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


def _journaling(journal: PushJournal, batches: list[list[_Row]]) -> Accepted:
    """The note a writer makes when it has a batch accepted: the batch's rows, journaled."""

    def accepted(index: int, handle: dict) -> None:
        journal.accepted(handle, [(r.key, r.row_hash, encode_record(r.record).decode()) for r in batches[index]])

    return accepted


class Pusher:
    """Sends windows of batches and writes each row's final outcome."""

    def __init__(self, spec, destination, counts, outcomes, sleep, journal: PushJournal):
        self.spec, self.destination, self.counts, self.outcomes, self.sleep = (
            spec,
            destination,
            counts,
            outcomes,
            sleep,
        )
        self.operation = operation_of(spec)
        # An append's accepted batches are journaled: only there would a blind resend duplicate.
        self.journal = journal if self.operation == "insert" and spec.mode != "truncate" else None

    def push(self, window: list[list[_Row]]) -> None:
        """Send the window and write its outcomes; then raise the refusal of any of its calls."""
        import pyarrow as pa

        from crm_assets.destinations.tracking import OUTCOME_SCHEMA

        final, refusal = send_with_retries(
            self.spec, self.destination, self.operation, window, self.counts, self.sleep, self.journal
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
            record = None if result.success else encode_record(row.record).decode()
            rows.append(outcome_row(row.key, row.row_hash, record, result, self.destination.redact))
        self.outcomes.write_table(pa.Table.from_pylist(rows, schema=OUTCOME_SCHEMA))
        if refusal is not None:
            raise refusal


def truncate(spec: SyncSpec, destination: Destination, counts: SyncCounts, sleep) -> int:
    """Delete every record of the object (hard delete when asked) before the insert."""
    operation = "hardDelete" if spec.hard_delete else "delete"
    deleted = 0
    batch: list[_Row] = []
    failed: list[str] = []

    def flush() -> None:
        nonlocal deleted
        final, refusal = send_with_retries(spec, destination, operation, [batch], counts, sleep)
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
