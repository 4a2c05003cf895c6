"""What every source's reader hands the asset factory, and the window rules they share.

A reader reads one stream family (a root table and the tables derived from it) for a time
window and yields :class:`Batch` objects, each one page's worth of warehouse writes; it counts
pages and records in a :class:`FamilyStats` for run metadata. :class:`SourceReader` is the
protocol the factory drives; Harvest and Zoho implement it over their own sessions.

:func:`in_window` is the CDC rule of the contract: partition D holds the records whose
replication key falls in [D, D+1), and a window without a start (the first partition) also
holds every record changed before it, including records whose key is null (an API that
leaves the key empty for old or system records), so the union of all partitions is the table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from crm_assets.catalog import Stream
from crm_assets.warehouse.page_arrow import subset, window_mask
from crm_assets.warehouse.records import RecordError, record_label
from crm_assets.warehouse.table_write import TableWrite

# RFC 3339 date-times: `Z` or a `±HH:MM` offset, optional fractional seconds.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


@dataclass
class Batch:
    """One page's worth of writes, and how many root records it came from."""

    writes: list[TableWrite]
    fetched: int


@dataclass
class FamilyStats:
    """Request and record counts for one family read, for run metadata."""

    pages: dict[str, int] = field(default_factory=dict)
    fetched: dict[str, int] = field(default_factory=dict)
    outside_window: int = 0
    newest: datetime | None = None  # the newest replication key read in the window

    def count(self, stream: str, pages: int, fetched: int) -> None:
        self.pages[stream] = self.pages.get(stream, 0) + pages
        self.fetched[stream] = self.fetched.get(stream, 0) + fetched

    def saw(self, value: datetime) -> None:
        if self.newest is None or value > self.newest:
            self.newest = value


class SourceReader(Protocol):
    """What a source gives the factory: batches of writes per stream family, and counts."""

    @property
    def requests(self) -> int: ...

    @property
    def retries(self) -> int: ...

    def read(
        self, root: Stream, start: datetime | None, end: datetime, wanted: set[str], stats: FamilyStats
    ) -> Iterator[Batch]: ...

    def count(self, root: Stream) -> int | None: ...

    def redact(self, text: str) -> str: ...


def parse_timestamp(stream: Stream, key: str, record: Any, index: int) -> datetime | None:
    """The record's `key` as an aware UTC datetime; None when the API left it null.

    Anything that is not an RFC 3339 date-time is an error naming the record, never a record
    silently counted outside the window.
    """
    value = record.get(key) if isinstance(record, dict) else None
    where = f"{stream.table}: record {record_label(record, index)}"
    if value is None:
        if stream.replication_key_nullable:
            return None
        raise RecordError(f"{where}: replication key {key!r} is missing")
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise RecordError(f"{where}: field {key!r} is not an RFC 3339 timestamp: {str(value)[:40]!r}")
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise RecordError(f"{where}: field {key!r} is not a valid timestamp: {value[:40]!r}") from None


def in_window(
    stream: Stream, records: list[Any], start: datetime | None, end: datetime, stats: FamilyStats
) -> list[Any]:
    """The records whose replication key is in [start, end) (no start: everything before
    `end`, null keys included); counts the others and the newest key kept in `stats`."""
    typed = window_mask(records, str(stream.replication_key), start, end)
    if typed is not None:
        kept, newest = typed
        stats.outside_window += len(records) - len(kept)
        if newest is not None:
            stats.saw(newest.replace(tzinfo=UTC))
        return subset(records, kept)
    kept = []
    for i, record in enumerate(records):
        value = parse_timestamp(stream, str(stream.replication_key), record, i)
        if value is None:
            inside = start is None
        else:
            inside = (start is None or value >= start) and value < end
        if inside:
            kept.append(i)
            if value is not None:
                stats.saw(value)
        else:
            stats.outside_window += 1
    return subset(records, kept)
