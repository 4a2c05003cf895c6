"""Read one Harvest stream family for a time window, as page-sized batches.

A family is a root stream and the child tables derived from it. For a window [start, end)
the root listing is read once with ``updated_since`` (one second early, because Harvest's
filter is strict at one-second precision) and only records whose ``updated_at`` falls in the
window are kept: a partition holds exactly its own days. A window with no start (the first
partition) reads the listing whole, so records last changed before the start date are loaded. For each kept parent the reader
derives line items and pairs from the record itself and calls per-parent endpoints (messages,
payments, project assignments) only for those parents, so requests grow with the changes, not
with the table. Full-table streams are read whole and written as one snapshot.

A user's project assignments change without the user's ``updated_at`` moving (Harvest documents
no such bump), so they are also re-read, whole, for each user named by a user assignment changed
in the window: ``GET /user_assignments`` takes ``updated_since`` and lists archived assignments
too, so an archival shows there while ``/users/{id}/project_assignments`` (active ones only)
simply stops listing it, and replacing the user's rows drops it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_assets.catalog import Catalog, Stream
from crm_assets.sources.family import Batch, FamilyStats, parse_timestamp
from crm_assets.sources.harvest.client import HarvestSession
from crm_assets.warehouse.records import RecordError, record_label
from crm_assets.warehouse.store import TableWrite

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Per-parent children that are also re-read for the parents a change to another stream names:
# child -> (stream whose changes in the window name the parents, path of the parent's id there).
REREAD_FOR_CHANGES_IN = {"user_projects": ("project_users", ("user", "id"))}


def format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


class HarvestReader:
    def __init__(self, api: HarvestSession, catalog: Catalog):
        self.api = api
        self.catalog = catalog

    @property
    def requests(self) -> int:
        return self.api.requests

    @property
    def retries(self) -> int:
        return self.api.retries

    def redact(self, text: str) -> str:
        """`text` without any secret the session holds, fit for logs and run metadata."""
        return self.api.redact(text)

    def count(self, root: Stream) -> int | None:
        """How many records the API holds for `root`, from one one-record page."""
        body = self.api.get(self.api.base + root.endpoint, {"per_page": 1})
        total = body.get("total_entries")
        return total if isinstance(total, int) else None

    def read(
        self, root: Stream, start: datetime | None, end: datetime, wanted: set[str], stats: FamilyStats
    ) -> Iterator[Batch]:
        """Batches of writes for the `wanted` tables of `root`'s family in [start, end); a
        None `start` means from the beginning."""
        needed = self._needed(root, wanted)
        if root.replication == "full_table":
            records: list[Any] = []
            for page in self._pages(root, {}, stats):
                records.extend(page)
            yield self._batch(root, records, needed, wanted, stats, snapshot=True)
            return
        params = self._since(root, start)
        lo, hi = ("" if start is None else format_timestamp(start)), format_timestamp(end)
        read_parents: set[Any] = set()
        for page in self._pages(root, params, stats):
            kept, newest = self._in_window(root, page, lo, hi)
            stats.outside_window += len(page) - len(kept)
            if newest and (stats.newest is None or _parse(newest) > stats.newest):
                stats.newest = _parse(newest)
            read_parents.update(_record_id(root, r, i) for i, r in enumerate(kept))
            yield self._batch(root, kept, needed, wanted, stats, snapshot=False)
        for child in needed:
            if child.name in REREAD_FOR_CHANGES_IN:
                yield from self._reread_children(root, child, start, (lo, hi), read_parents, wanted, stats)

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
        trigger_name, id_path = REREAD_FOR_CHANGES_IN[child.name]
        trigger = self.catalog.stream(trigger_name)
        family = list(self.catalog.family(child.name))
        members_wanted = wanted & {s.name for s in family}
        for page in self._pages(trigger, self._since(trigger, start), stats):
            kept, _ = self._in_window(trigger, page, *window)
            parent_ids = []
            for record in kept:
                parent_id = _dig(record, id_path)
                if parent_id is not None and parent_id not in read_parents:
                    read_parents.add(parent_id)
                    parent_ids.append(parent_id)
            if parent_ids:
                read_at = format_timestamp(datetime.now(UTC))
                parents = [{"id": p} for p in parent_ids]
                yield self._batch(root, parents, family, members_wanted, stats, snapshot=False,
                                  versions=[read_at] * len(parents))

    @staticmethod
    def _since(stream: Stream, start: datetime | None) -> dict[str, str]:
        """The change filter for a window starting at `start`: one second early, because
        Harvest's `updated_since` is strict at one-second precision; none without a start."""
        if not stream.updated_since or start is None:
            return {}
        return {"updated_since": format_timestamp(start - timedelta(seconds=1))}

    def _needed(self, root: Stream, wanted: set[str]) -> list[Stream]:
        """Family members to read: the wanted ones and any parent a wanted one comes from."""
        family = self.catalog.family(root.name)
        keep = {s.name for s in family if s.name in wanted}
        for s in reversed(family):
            if s.name in keep and s.parent:
                keep.add(s.parent)
        return [s for s in family if s.name in keep and not s.is_root]

    def _pages(self, stream: Stream, params: dict, stats: FamilyStats) -> Iterator[list[Any]]:
        for page in self.api.pages(stream.endpoint, stream.envelope, params, read_ahead=True,
                                   pagination=stream.pagination):
            stats.count(stream.name, pages=1, fetched=len(page.records))
            yield page.records

    def _in_window(self, stream: Stream, records: list[Any], lo: str, hi: str) -> tuple[list[Any], str]:
        """The records whose replication key is in [lo, hi), and the newest such key.

        Keys are compared as text in Harvest's fixed ``YYYY-MM-DDTHH:MM:SSZ`` form, which
        sorts like the instants it names; any other form is normalised to it first.
        """
        key = stream.replication_key
        kept, newest = [], ""
        for i, r in enumerate(records):
            value = r.get(key) if isinstance(r, dict) else None
            if not _is_harvest_timestamp(value):
                value = format_timestamp(parse_timestamp(stream, key, r, i))  # type: ignore[arg-type]
            if lo <= value < hi:
                kept.append(r)
                if value > newest:
                    newest = value
        return kept, newest

    def _batch(
        self,
        root: Stream,
        records: list[Any],
        needed: list[Stream],
        wanted: set[str],
        stats: FamilyStats,
        snapshot: bool,
        versions: list[Any] | None = None,
    ) -> Batch:
        """Writes for one page of root records and everything derived or fetched from them;
        `versions` stands for the records' replication keys as the version of their children."""
        root_ids = [_record_id(root, r, i) for i, r in enumerate(records)]
        if versions is None and root.replication_key:
            versions = [r.get(root.replication_key) for r in records]
        rows: dict[str, tuple[list[Any], list[Any]]] = {root.name: (records, root_ids)}
        for child in needed:
            parent_rows, parent_roots = rows[child.parent]
            if child.is_derived:
                rows[child.name] = self._derive(child, parent_rows, parent_roots)
            else:
                rows[child.name] = self._fetch_children(child, parent_rows, parent_roots, stats)

        writes = []
        for s in (root, *needed):
            if s.name not in wanted:
                continue
            recs, roots = rows[s.name]
            consumed = tuple(c.path for c in self.catalog.children(s.name) if c.path)
            if s.is_root:
                write = TableWrite(s, recs, "snapshot" if snapshot else "merge", consumed_keys=consumed)
            else:
                mode = "snapshot" if snapshot else "replace"
                write = TableWrite(
                    s, recs, mode, parent_ids=roots, scope=root_ids, consumed_keys=consumed,
                    scope_versions=versions, root=root,
                )
            writes.append(write)
        return Batch(writes=writes, fetched=len(records))

    def _derive(self, child: Stream, parents: list[Any], roots: list[Any]) -> tuple[list, list]:
        out, out_roots = [], []
        for i, (parent, root_id) in enumerate(zip(parents, roots)):
            value = parent.get(child.path)
            if value is None:
                continue
            if isinstance(value, dict):
                value = [value]
            elif not isinstance(value, list):
                raise RecordError(
                    f"{child.table}: parent record {record_label(parent, i)}: field "
                    f"{child.path!r} should be a list or an object, got {type(value).__name__}"
                )
            out.extend(value)
            out_roots.extend([root_id] * len(value))
        return out, out_roots

    def _fetch_children(
        self, child: Stream, parents: list[Any], roots: list[Any], stats: FamilyStats
    ) -> tuple[list, list]:
        """All current children of each parent; they replace that parent's stored children."""
        out, out_roots = [], []
        for parent, root_id in zip(parents, roots):
            path = child.endpoint.format(parent_id=parent["id"])
            for page in self.api.pages(path, child.envelope, pagination=child.pagination):
                out.extend(page.records)
                out_roots.extend([root_id] * len(page.records))
                stats.count(child.name, pages=1, fetched=len(page.records))
        return out, out_roots


def _record_id(stream: Stream, record: Any, index: int) -> Any:
    if not isinstance(record, dict) or record.get("id") is None:
        raise RecordError(f"{stream.table}: record {record_label(record, index)} has no 'id'")
    return record["id"]


def _dig(record: Any, path: tuple[str, ...]) -> Any:
    value = record
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _parse(value: str) -> datetime:
    return datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


def _is_harvest_timestamp(value: Any) -> bool:
    """Is `value` exactly ``YYYY-MM-DDTHH:MM:SSZ``, the form that compares correctly as text?"""
    return (
        type(value) is str
        and len(value) == 20
        and value[19] == "Z"
        and value[10] == "T"
        and value[4] == value[7] == "-"
        and value[13] == value[16] == ":"
        and value[:4].isdigit()
    )
