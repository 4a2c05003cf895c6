"""The catalog-driven family reader every source configures with how to list its endpoints.

A family is a root stream and the child tables below it. For a window [start, end) the reader
lists the root once (:meth:`FamilyReader.list_window`, with the source's change filter), keeps
the records whose replication key falls in the window (:meth:`FamilyReader.keep`), and for each
page of kept parents derives the children held in the records themselves (line items, pairs,
nested objects) and fetches the per-parent ones (:meth:`FamilyReader.list_children`) only for
those parents, so requests grow with the changes, not with the table. Each page becomes one
:class:`~crm_assets.sources.family.Batch`: the root merged by key, each child replacing the
previous children of exactly the parents in the batch (unless the stored parent is newer). A
full-table family is read whole and written as one snapshot. A source adds what is truly its
own: its listing calls, its change filter, and any extra pass (:meth:`FamilyReader.after_window`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from crm_assets.catalog import Catalog, Stream
from crm_assets.sources.family import Batch, FamilyStats, in_window
from crm_assets.warehouse.page_arrow import ids_of, nested_records, versions_of
from crm_assets.warehouse.records import RecordError, record_label
from crm_assets.warehouse.table_write import TableWrite


class Session(Protocol):
    """What the reader needs of a source session besides its listings."""

    @property
    def requests(self) -> int: ...

    @property
    def retries(self) -> int: ...

    def redact(self, text: object) -> str: ...


class FamilyReader:
    """Reads stream families for the asset factory (a :class:`~crm_assets.sources.family.SourceReader`)."""

    def __init__(self, api: Session, catalog: Catalog):
        self.api = api
        self.catalog = catalog

    # -- what a source supplies --

    def list_window(self, stream: Stream, start: datetime | None, stats: FamilyStats) -> Iterator[list[Any]]:
        """Pages of `stream`'s records changed since `start` (all of them when None), counted in `stats`."""
        raise NotImplementedError

    def list_children(self, child: Stream, parent: dict[str, Any]) -> Iterator[list[Any]]:
        """Pages of a per-parent child stream's records for one `parent` record."""
        raise NotImplementedError(f"{child.table}: this source has no per-parent endpoints")

    def keep(
        self, stream: Stream, records: list[Any], start: datetime | None, end: datetime, stats: FamilyStats
    ) -> list[Any]:
        """The records of a page that belong to the window [start, end)."""
        return in_window(stream, records, start, end, stats)

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
        """Further batches once the root's window is read (none by default)."""
        return iter(())

    def count(self, root: Stream) -> int | None:
        """The API's total for `root`, where it reports one."""
        return None

    # -- the shared machinery --

    @property
    def requests(self) -> int:
        return self.api.requests

    @property
    def retries(self) -> int:
        return self.api.retries

    def redact(self, text: str) -> str:
        """`text` without any secret the session holds, fit for logs and run metadata."""
        return self.api.redact(text)

    def read(
        self, root: Stream, start: datetime | None, end: datetime, wanted: set[str], stats: FamilyStats
    ) -> Iterator[Batch]:
        """Batches of writes for the `wanted` tables of `root`'s family in [start, end); a
        None `start` means from the beginning."""
        needed = self.needed(root, wanted)
        if root.replication == "full_table":
            records: list[Any] = []
            for page in self.list_window(root, None, stats):
                records.extend(page)
            yield self.batch(root, records, needed, wanted, stats, snapshot=True)
            return
        # Only a re-read pass needs the ids read so far; a set of every id would grow with the table.
        read_parents: set[Any] = set()
        remember = any(s.reread_when for s in needed)
        for page in self.list_window(root, start, stats):
            kept = self.keep(root, page, start, end, stats)
            if remember:
                read_parents.update(record_ids(root, kept))
            yield self.batch(root, kept, needed, wanted, stats, snapshot=False)
        yield from self.after_window(root, start, end, needed, wanted, read_parents, stats)

    def needed(self, root: Stream, wanted: set[str]) -> list[Stream]:
        """Family members to read: the wanted ones and any parent a wanted one comes from."""
        family = self.catalog.family(root.name)
        keep = {s.name for s in family if s.name in wanted}
        for s in reversed(family):
            if s.name in keep and s.parent:
                keep.add(s.parent)
        return [s for s in family if s.name in keep and not s.is_root]

    def batch(
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
        root_ids = record_ids(root, records)
        if versions is None and root.replication_key:
            versions = versions_of(records, root.replication_key)
            if versions is None:
                versions = [r.get(root.replication_key) for r in records]
        rows: dict[str, tuple[list[Any], list[Any]]] = {root.name: (records, root_ids)}
        for child in needed:
            parent_rows, parent_roots = rows[str(child.parent)]
            if child.is_derived:
                rows[child.name] = _derive(child, parent_rows, parent_roots)
            else:
                rows[child.name] = self._fetch_children(child, parent_rows, parent_roots, stats)

        writes = []
        for s in (root, *needed):
            if s.name not in wanted:
                continue
            recs, roots = rows[s.name]
            consumed = tuple(str(c.path) for c in self.catalog.children(s.name) if c.path)
            if s.is_root:
                write = TableWrite(s, recs, "snapshot" if snapshot else "merge", consumed_keys=consumed)
            else:
                write = TableWrite(
                    s, recs, "snapshot" if snapshot else "replace", parent_ids=roots, scope=root_ids,
                    consumed_keys=consumed, scope_versions=versions, root=root,
                )
            writes.append(write)
        return Batch(writes=writes, fetched=len(records))

    def _fetch_children(
        self, child: Stream, parents: list[Any], roots: list[Any], stats: FamilyStats
    ) -> tuple[list, list]:
        """All current children of each parent; they replace that parent's stored children."""
        out, out_roots = [], []
        for parent, root_id in zip(parents, roots):
            for page in self.list_children(child, parent):
                out.extend(page)
                out_roots.extend([root_id] * len(page))
                stats.count(child.name, pages=1, fetched=len(page))
        return out, out_roots


def _derive(child: Stream, parents: list[Any], roots: list[Any]) -> tuple[Sequence[Any], list]:
    """A derived child's records out of its parents' records (a list, or one nested object)."""
    nested = nested_records(parents, str(child.path))
    if nested is not None:
        children, positions = nested
        return children, [roots[i] for i in positions]
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


def record_ids(stream: Stream, records: list[Any]) -> list[Any]:
    """The records' ids, or an error naming the first record without one."""
    ids = ids_of(records)
    if ids is not None:
        return ids
    try:
        ids = [r["id"] for r in records]
    except (KeyError, TypeError, IndexError):
        ids = [None]
    if None in ids:
        return [record_id(stream, r, i) for i, r in enumerate(records)]
    return ids


def record_id(stream: Stream, record: Any, index: int) -> Any:
    if not isinstance(record, dict) or record.get("id") is None:
        raise RecordError(f"{stream.table}: record {record_label(record, index)} has no 'id'")
    return record["id"]
