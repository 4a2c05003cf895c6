"""A sync's push journal: what a run sent and learned, on disk as it happens.

The warehouse learns a push's outcomes once, at the end of the run (the DuckDB file is held
only briefly). A run killed before that point would lose them, and the next run would send
every row again: harmless for an update or an upsert, a duplicate record for each row of an
append. So each run writes, beside the warehouse, and syncs to disk:

- ``<run id>~<attempt>.outcomes``: every window's final per-row outcomes, as an Arrow IPC stream (readable
  up to its last whole batch when the writer died mid-batch);
- ``<run id>~<attempt>.accepted``: for an append, each batch the destination accepted, with a handle to ask
  for its results later (a Salesforce Bulk job and batch id) and the rows it holds, one JSON
  line per batch, written before the batch's results are awaited.

The next run of the sync first records what a killed run left: its outcomes, then the results
of its accepted batches that have none (read from the destination), and only then reads the
rows to send. Runs of one sync hold the journal's lock, so a live run's files are never taken
for leftovers. What stays unknown is a batch accepted in the instant before its line was
written, or a synchronous call under way when the process died (Zoho's inserts): those rows
are sent again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from crm_assets.destinations.machinery import Destination, PushFailure, outcome_row
from crm_assets.destinations.specs import SyncSpec
from crm_assets.destinations.tracking import SyncTracking

if TYPE_CHECKING:
    import pyarrow as pa

JOURNAL_SUFFIX = ".sync-journal"
ATTEMPT_SEPARATOR = "~"


def journal_directory(database: str) -> Path | None:
    """Where the syncs of the warehouse file `database` keep their journals (None when the
    warehouse is not a local file: each run then journals in a directory of its own)."""
    if not database or database == ":memory:" or ":" in database.split("/")[0]:
        return None
    path = Path(database)
    return path.with_name(path.name + JOURNAL_SUFFIX)


@dataclass
class Leftover:
    """What one earlier run of the sync left in the journal."""

    attempt: str  # the run's id, then the attempt's own token
    outcomes: list[dict[str, Any]]
    accepted: list[dict[str, Any]]  # {"handle": {...}, "rows": [[key, hash, record], ...]}
    files: list[Path]

    @property
    def run_id(self) -> str:
        return self.attempt.split(ATTEMPT_SEPARATOR)[0]

    def unresolved(self) -> list[dict[str, Any]]:
        """Accepted batches with a row whose final outcome the run did not write."""
        known = {o["row_key"] for o in self.outcomes}
        return [batch for batch in self.accepted if any(row[0] not in known for row in batch["rows"])]


class PushJournal:
    """One sync's journal, locked for the life of one run."""

    def __init__(self, directory: Path, sync: str, run_id: str):
        self.directory = directory / _safe(sync)
        # One name per attempt: a step retried within its run must not take the first
        # attempt's files for its own.
        self.attempt = f"{_safe(run_id)}{ATTEMPT_SEPARATOR}{uuid.uuid4().hex[:8]}"
        self._lock: IO[bytes] | None = None
        self._accepted: IO[bytes] | None = None

    def __enter__(self) -> PushJournal:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.directory / ".lock", "ab")
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # another run of this sync waits here
        return self

    def __exit__(self, *exc: object) -> None:
        if self._accepted is not None:
            self._accepted.close()
        if self._lock is not None:
            self._lock.close()  # releases the lock

    @property
    def outcomes_path(self) -> Path:
        return self.directory / f"{self.attempt}.outcomes"

    def current(self) -> Leftover:
        """What this run has journaled so far."""
        accepted = self.directory / f"{self.attempt}.accepted"
        return Leftover(self.attempt, read_outcomes(self.outcomes_path), _read_accepted(accepted),
                        [self.outcomes_path, accepted])

    def leftovers(self) -> list[Leftover]:
        """Earlier runs' journals, oldest first."""
        runs: dict[str, list[Path]] = {}
        for file in sorted(self.directory.glob("*.outcomes")) + sorted(self.directory.glob("*.accepted")):
            if file.stem != self.attempt:
                runs.setdefault(file.stem, []).append(file)
        found = [
            Leftover(run, read_outcomes(self.directory / f"{run}.outcomes"),
                     _read_accepted(self.directory / f"{run}.accepted"), files)
            for run, files in runs.items()
        ]
        return sorted(found, key=lambda leftover: min(f.stat().st_mtime for f in leftover.files))

    @contextlib.contextmanager
    def outcome_writer(self, schema: pa.Schema) -> Iterator[OutcomeWriter]:
        """A writer of this run's outcomes, each window's batch on disk before the next window."""
        import pyarrow as pa

        with open(self.outcomes_path, "wb") as file, pa.ipc.new_stream(file, schema) as stream:
            yield OutcomeWriter(file, stream)

    def accepted(self, handle: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
        """Note a batch the destination accepted: its handle and its rows (key, hash, record
        JSON), on disk before its results are awaited."""
        if self._accepted is None:
            self._accepted = open(self.directory / f"{self.attempt}.accepted", "ab")
        self._accepted.write(orjson.dumps({"handle": handle, "rows": rows}) + b"\n")
        _sync(self._accepted)

    def finish(self) -> None:
        """Drop this run's files once its outcomes are recorded, unless an accepted batch's
        outcome is still unknown (the next run asks the destination)."""
        if self._accepted is not None:
            if self.current().unresolved():
                return
            self._accepted.close()
            self._accepted = None
        for file in (self.outcomes_path, self.directory / f"{self.attempt}.accepted"):
            file.unlink(missing_ok=True)


class OutcomeWriter:
    def __init__(self, file: IO[bytes], stream: Any):
        self._file, self._stream = file, stream

    def write_table(self, table: pa.Table) -> None:
        self._stream.write_table(table)
        _sync(self._file)


def read_outcomes(path: Path) -> list[dict[str, Any]]:
    """The outcome rows of a journal file, up to its last whole batch."""
    import pyarrow as pa

    rows: list[dict[str, Any]] = []
    if not path.exists() or path.stat().st_size == 0:
        return rows
    with contextlib.suppress(pa.ArrowInvalid, OSError):  # cut short by the kill
        with pa.OSFile(str(path)) as source, pa.ipc.open_stream(source) as reader:
            for batch in reader:
                rows.extend(batch.to_pylist())
    return rows


def _read_accepted(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    batches = []
    for line in path.read_bytes().splitlines():
        with contextlib.suppress(orjson.JSONDecodeError):  # a last line cut short by the kill
            batches.append(orjson.loads(line))
    return batches


def _sync(file: IO[bytes]) -> None:
    file.flush()
    os.fsync(file.fileno())


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def recover_leftovers(
    spec: SyncSpec,
    journal: PushJournal,
    session_factory: Callable[[], contextlib.AbstractContextManager],
    open_destination: Callable[[SyncSpec], contextlib.AbstractContextManager[Destination]],
    log: Callable[[str], None],
) -> None:
    """Record what killed runs of this sync left in the journal, before anything is read or
    sent: their outcomes, and the results of their accepted batches that have none (asked of
    the destination). Results that cannot be read yet stop the run, rows unsent: sending them
    again could insert them twice."""
    import pyarrow as pa

    from crm_assets.destinations.tracking import OUTCOME_SCHEMA

    for leftover in journal.leftovers():
        rows: dict[str, dict] = {}
        unresolved = leftover.unresolved()
        if unresolved:
            with open_destination(spec) as destination:
                for batch in unresolved:
                    answer = destination.recover(spec, batch["handle"], len(batch["rows"]))
                    if isinstance(answer, Exception):
                        raise PushFailure(
                            f"sync {spec.name}: run {leftover.run_id} ended before it learned what became of "
                            f"a batch it sent ({destination.redact(batch['handle'])}), and its results "
                            f"cannot be read now: {destination.redact(answer)}. Nothing is sent until they "
                            "can be, so that no row is inserted twice (to send its rows again instead, "
                            f"delete {journal.directory}/{leftover.attempt}.*)."
                        )
                    for (key, row_hash, record), result in zip(batch["rows"], answer, strict=True):
                        rows[key] = outcome_row(key, row_hash, record, result, destination.redact)
        rows.update((o["row_key"], o) for o in leftover.outcomes)  # the run's final outcomes win
        if rows:
            table = pa.Table.from_pylist(list(rows.values()), schema=OUTCOME_SCHEMA)
            with session_factory() as session:
                SyncTracking(session.conn).record_outcomes(spec, leftover.run_id, table.to_reader())
            log(f"{spec.name}: recorded the outcomes of {len(rows)} rows that run {leftover.run_id} sent before it ended")
        for file in leftover.files:
            file.unlink(missing_ok=True)
