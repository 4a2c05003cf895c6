"""Writing a load's batches beside its reading, holding the warehouse file only while busy.

A load reads pages from an API and writes them in batches. :class:`BatchWriter` takes the
batches through a bounded hand-over and converts and writes each in one transaction on its own
thread, so the next pages are fetched, parsed and sorted into batches meanwhile (DuckDB and the
socket release the GIL; Python's own conversion work does not, which bounds the gain). Memory stays flat: :meth:`BatchWriter.submit` returns once the writer has taken the
batch, so at most two batches are alive, the one being written and the one being read.

The writer opens the file (lock and connection) when work arrives and keeps it while work
keeps coming, because every close checkpoints the file and every open reads it again, which
cost more than the writes themselves on a busy disk. It lets go of it as soon as no batch has
arrived for `idle_seconds` (the load is waiting on the API: a rate limit, a slow page), and
after `hold_seconds` of continuous writing, pausing briefly so that another process waiting
for the lock gets its turn. Another run's step therefore waits at most about `hold_seconds`
plus one transaction, however long the load.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from crm_assets.warehouse.store import Warehouse, WarehouseSession
from crm_assets.warehouse.table_write import TableWrite, WriteCounts

# Longer than the file lock's polling interval, so a waiting process gets the lock.
YIELD_SECONDS = 0.2
_DONE = object()
T = TypeVar("T")


class BriefSessions:
    """Opens the warehouse for one piece of work at a time (a write, a few queries), carrying
    what a session learns about the tables (their columns) over to the next."""

    def __init__(self, warehouse: Warehouse, allow_snapshot_shrink: bool = False):
        self.warehouse = warehouse
        self.memory_limit = warehouse.load_memory_limit
        self.allow_snapshot_shrink = allow_snapshot_shrink
        self.columns: dict[str, Any] = {}

    @contextlib.contextmanager
    def __call__(self) -> Iterator[WarehouseSession]:
        with self.warehouse.session(self.columns, self.memory_limit) as wh:
            wh.allow_snapshot_shrink = self.allow_snapshot_shrink
            yield wh


class BatchWriter:
    """Writes submitted batches on a thread, one transaction each; use as a context manager.

    Each batch's counts go to the `on_written` given with it (on the writer's thread). A failed write makes
    :meth:`submit` raise and the writer skip the batches already queued, until :meth:`settle`
    hands the failure over and clears it (one family failing does not stop the next).
    :meth:`call` runs other work on the writer's session in order with the writes (cursors,
    state, check queries), so one run keeps one session while its work flows.
    """

    def __init__(
        self,
        sessions: BriefSessions,
        idle_seconds: float,
        hold_seconds: float,
    ):
        self.sessions = sessions
        self.idle_seconds = idle_seconds
        self.hold_seconds = hold_seconds
        self.batches = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._failed: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="warehouse-writer", daemon=True)

    def __enter__(self) -> BatchWriter:
        self._thread.start()
        return self

    def submit(self, writes: Sequence[TableWrite], on_written: Callable[[dict[str, WriteCounts]], None]) -> None:
        """Hand `writes` over; returns once the writer has taken them (or raises its failure)."""
        if self._failed is not None:
            raise self._failed
        self._hand_over(("write", writes, on_written))
        if self._failed is not None:
            raise self._failed

    def call(self, work: Callable[[WarehouseSession], T]) -> T:
        """`work(session)` on the writer's thread once every earlier batch is written."""
        box: dict[str, Any] = {}
        done = threading.Event()
        self._hand_over(("call", work, box, done))
        while not done.wait(0.1):
            if not self._thread.is_alive():
                raise RuntimeError("the warehouse writer stopped")
        if "error" in box:
            raise box["error"]
        return box["result"]

    def settle(self) -> BaseException | None:
        """Wait for every batch handed over; return (and forget) the failure of any of them."""
        self.call(lambda session: None)
        failed, self._failed = self._failed, None
        return failed

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._hand_over(_DONE)
        self._thread.join()

    def _hand_over(self, item: Any) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.1)
                break
            except queue.Full:
                continue
        while self._queue.unfinished_tasks and self._thread.is_alive():
            with self._queue.all_tasks_done:
                self._queue.all_tasks_done.wait(0.1)

    def _run(self) -> None:
        with contextlib.ExitStack() as held:
            session: WarehouseSession | None = None
            since = 0.0
            while True:
                try:
                    item = self._queue.get(timeout=self.idle_seconds if session else None)
                except queue.Empty:  # waiting on the API: let others in meanwhile
                    held.close()
                    session = None
                    continue
                self._queue.task_done()  # taken: the submitter goes on reading
                if item is _DONE:
                    return
                if item[0] == "write" and self._failed is not None:
                    continue  # the rest of a failed family's batches
                try:
                    if session is not None and time.monotonic() - since > self.hold_seconds:
                        held.close()
                        session = None
                        time.sleep(YIELD_SECONDS)
                    if session is None:
                        session = held.enter_context(self.sessions())
                        since = time.monotonic()
                    if item[0] == "write":
                        item[2](session.write_batch(item[1]))
                        self.batches += 1
                    else:
                        item[2]["result"] = item[1](session)
                except BaseException as exc:  # raised again in the submitting thread
                    if item[0] == "write":
                        self._failed = exc
                    else:
                        item[2]["error"] = exc
                finally:
                    if item[0] == "call":
                        item[3].set()
