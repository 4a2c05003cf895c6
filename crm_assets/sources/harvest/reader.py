"""Read one Harvest stream family for a time window, as page-sized batches.

A family is a root stream and the child tables derived from it. For a window [start, end)
the root listing is read once with ``updated_since`` (one second early, because Harvest's
filter is strict at one-second precision) and only records whose ``updated_at`` falls in the
window are kept: a partition holds exactly its own days. A window with no start (the first
partition) reads the listing whole, so records last changed before the start date are loaded.
Children (line items, pairs, and the per-parent messages, payments and project assignments)
and snapshots are the shared :class:`~crm_assets.sources.family_reader.FamilyReader`'s work;
this module gives it Harvest's listings, change filter and window test.

A user's project assignments change without the user's ``updated_at`` moving (Harvest documents
no such bump), so they are also re-read, whole, for each user named by a user assignment changed
in the window: ``GET /user_assignments`` takes ``updated_since`` and lists archived assignments
too, so an archival shows there while ``/users/{id}/project_assignments`` (active ones only)
simply stops listing it, and replacing the user's rows drops it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_assets.catalog import Catalog, Stream
from crm_assets.sources.family import Batch, FamilyStats, parse_timestamp
from crm_assets.sources.family_reader import FamilyReader
from crm_assets.sources.harvest.client import HarvestSession
from crm_assets.warehouse.page_arrow import subset, window_mask

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Exactly the form above, the one that compares correctly as text.
_HARVEST_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


class HarvestReader(FamilyReader):
    """The family reader configured with Harvest's listings, change filter and re-reads."""

    api: HarvestSession

    def __init__(self, api: HarvestSession, catalog: Catalog):
        super().__init__(api, catalog)

    def count(self, root: Stream) -> int | None:
        """How many records the API holds for `root`, from one one-record page."""
        body = self.api.get(self.api.base + str(root.endpoint), {"per_page": 1})
        total = body.get("total_entries")
        return total if isinstance(total, int) else None

    def list_window(self, stream: Stream, start: datetime | None, stats: FamilyStats) -> Iterator[list[Any]]:
        return self._pages(stream, self._since(stream, start), stats)

    def list_children(self, child: Stream, parent: dict[str, Any]) -> Iterator[list[Any]]:
        path = str(child.endpoint).format(parent_id=parent["id"])
        for page in self.api.pages(path, str(child.envelope), pagination=child.pagination):
            yield page.records

    def keep(
        self, stream: Stream, records: list[Any], start: datetime | None, end: datetime, stats: FamilyStats
    ) -> list[Any]:
        kept, newest = in_text_window(stream, records, *_text_window(start, end))
        stats.outside_window += len(records) - len(kept)
        if newest:
            stats.saw(_parse(newest))
        return kept

    def after_window(
        self,
        root: Stream,
        start: datetime | None,
        end: datetime,
        needed: list[Stream],
        wanted: set[str],
        read_parents: set[Any],
        stats: FamilyStats,
    ) -> Iterator[Batch]:
        for child in needed:
            if child.reread_when:
                window = _text_window(start, end)
                yield from self._reread_children(root, child, start, window, read_parents, wanted, stats)

    def _reread_children(
        self,
        root: Stream,
        child: Stream,
        start: datetime | None,
        window: tuple[str, str],
        read_parents: set[Any],
        wanted: set[str],
        stats: FamilyStats,
    ) -> Iterator[Batch]:
        """Batches replacing `child` (and what derives from it) for every parent that a record
        of the trigger stream changed in `window` names, except those already read.

        The children are read now, so their version is the time of reading: a stored parent
        written later than that keeps the children read with it.
        """
        trigger_name, id_path = child.reread_when
        trigger = self.catalog.stream(trigger_name)
        family = list(self.catalog.family(child.name))
        members_wanted = wanted & {s.name for s in family}
        for page in self._pages(trigger, self._since(trigger, start), stats):
            kept, _ = in_text_window(trigger, page, *window)
            parent_ids = []
            for record in kept:
                parent_id = _dig(record, id_path)
                if parent_id is not None and parent_id not in read_parents:
                    read_parents.add(parent_id)
                    parent_ids.append(parent_id)
            if parent_ids:
                read_at = format_timestamp(datetime.now(UTC))
                parents = [{"id": p} for p in parent_ids]
                yield self.batch(root, parents, family, members_wanted, stats, snapshot=False,
                                  versions=[read_at] * len(parents))

    @staticmethod
    def _since(stream: Stream, start: datetime | None) -> dict[str, str]:
        """The change filter for a window starting at `start`: one second early, because
        Harvest's `updated_since` is strict at one-second precision; none without a start."""
        if not stream.updated_since or start is None:
            return {}
        return {"updated_since": format_timestamp(start - timedelta(seconds=1))}

    def _pages(self, stream: Stream, params: dict, stats: FamilyStats) -> Iterator[list[Any]]:
        for page in self.api.pages(stream.endpoint, stream.envelope, params, read_ahead=True,
                                   pagination=stream.pagination):
            stats.count(stream.name, pages=1, fetched=len(page.records))
            yield page.records


def in_text_window(stream: Stream, records: list[Any], lo: str, hi: str) -> tuple[list[Any], str]:
    """The records whose replication key is in [lo, hi), and the newest such key.

    Keys the page's Arrow array holds as second-precision timestamps are compared as
    instants there; otherwise as text in Harvest's fixed ``YYYY-MM-DDTHH:MM:SSZ`` form, which
    sorts like the instants it names (any other form is normalised to it first).
    """
    key = str(stream.replication_key)
    typed = window_mask(records, key, _parse(lo) if lo else None, _parse(hi))
    if typed is not None:
        kept, newest_at = typed
        return subset(records, kept), (newest_at.strftime(TIMESTAMP_FORMAT) if newest_at else "")
    kept, newest = [], ""
    harvest_form = _HARVEST_TIMESTAMP.fullmatch
    for i, r in enumerate(records):
        value = r.get(key) if isinstance(r, dict) else None
        if type(value) is not str or not harvest_form(value):
            value = format_timestamp(parse_timestamp(stream, key, r, i))  # type: ignore[arg-type]
        if lo <= value < hi:
            kept.append(i)
            if value > newest:
                newest = value
    return subset(records, kept), newest


def _dig(record: Any, path: tuple[str, ...]) -> Any:
    value = record
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _text_window(start: datetime | None, end: datetime) -> tuple[str, str]:
    """The window's ends in Harvest's timestamp form; an open start is the empty string."""
    return ("" if start is None else format_timestamp(start)), format_timestamp(end)


def _parse(value: str) -> datetime:
    return datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
