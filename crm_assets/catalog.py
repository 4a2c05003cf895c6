"""The declarative stream catalog shared by every source.

A source ships one YAML file (``crm_assets/sources/<vendor>/catalog.yaml``) with a
``defaults`` block and a list of streams. This module turns it into frozen objects that the
asset factory, the warehouse layer, the sandbox and the tests all read, so that a table is
declared exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SCALAR_TYPES = frozenset({"BIGINT", "VARCHAR", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMPTZ", "JSON"})
LIST_TYPES = frozenset(f"{t}[]" for t in ("BIGINT", "VARCHAR", "DOUBLE"))
REPLICATIONS = frozenset({"incremental", "full_table"})


class CatalogError(ValueError):
    """A catalog file that does not describe a consistent set of streams."""


@dataclass(frozen=True)
class Column:
    """One warehouse column and where its value sits in an API record.

    ``path`` is the key path inside the record (``("client", "id")`` for ``client__id``);
    an empty path means the record itself (a scalar array element); ``None`` means the reader
    fills it in (a child's ``parent_key``). ``description`` says what the value means, in the
    API reference's terms; the UI shows it in the asset's column schema.
    """

    name: str
    type: str
    path: tuple[str, ...] | None
    description: str = field(default="", compare=False)


@dataclass(frozen=True)
class Stream:
    source: str
    name: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    replication: str
    replication_key: str | None
    endpoint: str | None = None
    envelope: str | None = None
    pagination: str = "cursor"
    updated_since: bool = True
    parent: str | None = None
    path: str | None = None
    parent_key: str | None = None
    keep_unknown_fields: bool = True
    freshness_hours: float = 26.0
    max_snapshot_shrink: float = 0.5
    references: dict[str, str] = field(default_factory=dict, compare=False)
    # What the endpoint needs beyond paging: fixed headers and query parameters.
    headers: dict[str, str] = field(default_factory=dict, compare=False)
    params: dict[str, str] = field(default_factory=dict, compare=False)
    # API error codes that mean "this stream has no data here" (a feature switched off), not a failure.
    no_data_errors: tuple[str, ...] = ()
    # The API leaves the replication key null on some records (system or old ones): they
    # belong to the first partition, like records changed before the start date.
    replication_key_nullable: bool = False
    # Whether the API reports how many records the table has (its listing's total, or the
    # `count_endpoint`); without one the table gets no row-count check.
    reports_total: bool = True
    count_endpoint: str | None = None
    # The endpoint's own "changed since" filter, when it is not Harvest's `updated_since`.
    change_filter: str | None = None
    # A per-parent child whose parents' records do not move when it changes: also re-read, whole,
    # for every parent that a record of `reread_when[0]` changed in the window names at the
    # record path `reread_when[1]`.
    reread_when: tuple[str, tuple[str, ...]] | None = None

    @property
    def table(self) -> str:
        return f"{self.source}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def is_root(self) -> bool:
        return self.parent is None

    @property
    def is_derived(self) -> bool:
        """A child read out of its parent's records, with no request of its own."""
        return self.parent is not None and self.path is not None

    def key_tree(self) -> dict[str, Any]:
        """The record keys the columns read: {key: subtree, or None for a leaf}."""
        tree: dict[str, Any] = {}
        for col in self.columns:
            if not col.path:
                continue
            node = tree
            for key in col.path[:-1]:
                node = node.setdefault(key, {})
            node.setdefault(col.path[-1], None)
        return tree

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.table} has no column {name!r}")


@dataclass(frozen=True)
class Catalog:
    source: str
    docs: str
    streams: tuple[Stream, ...]

    def stream(self, name: str) -> Stream:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(f"{self.source} catalog has no stream {name!r}")

    @property
    def roots(self) -> tuple[Stream, ...]:
        return tuple(s for s in self.streams if s.is_root)

    def children(self, name: str) -> tuple[Stream, ...]:
        return tuple(s for s in self.streams if s.parent == name)

    def family(self, root: str) -> tuple[Stream, ...]:
        """The root and all its descendants, parents before children."""
        out = [self.stream(root)]
        for s in out:
            out.extend(self.children(s.name))
        return tuple(out)

    def root_of(self, name: str) -> Stream:
        s = self.stream(name)
        while s.parent is not None:
            s = self.stream(s.parent)
        return s


COLUMN_KEYS = frozenset({"type", "path", "description"})


def _columns(table: str, spec: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[Column]:
    """Columns from ``name: TYPE``, ``name: {type: TYPE, description: ..., path: a.b}`` or
    ``name: {child: ..., ...}`` (a nested object, flattened to ``name__child``)."""
    cols: list[Column] = []
    for key, value in spec.items():
        path = (*prefix, key)
        if isinstance(value, str):
            cols.append(Column("__".join(path), _check_type(table, key, value), path))
        elif isinstance(value, dict) and isinstance(value.get("type"), str):
            unknown = set(value) - COLUMN_KEYS
            if unknown:
                raise CatalogError(f"{table}.{key}: unknown column keys {sorted(unknown)}")
            col_path = tuple(value["path"].split(".")) if value.get("path") else path
            description = " ".join(str(value.get("description") or "").split())
            type_ = _check_type(table, key, value["type"])
            cols.append(Column("__".join(path), type_, col_path, description))
        elif isinstance(value, dict):
            cols.extend(_columns(table, value, path))
        else:
            raise CatalogError(f"{table}.{key}: a column is a type, {{type, description, path}} or a mapping")
    return cols


def _check_type(table: str, column: str, type_: str) -> str:
    if type_ not in SCALAR_TYPES | LIST_TYPES:
        raise CatalogError(f"{table}.{column}: unknown type {type_!r}")
    return type_


def parse_catalog(doc: dict[str, Any]) -> Catalog:
    source = doc["source"]
    defaults = doc.get("defaults", {})
    streams = []
    for raw in doc["streams"]:
        entry = {**defaults, **raw}
        name = entry["name"]
        table = f"{source}.{name}"
        columns = _columns(table, entry["columns"])
        value_column = entry.get("value_column")
        parent_key = entry.get("parent_key")
        fixed = []
        for c in columns:
            if c.name == parent_key:
                c = replace(c, path=None)
            elif c.name == value_column:
                c = replace(c, path=())
            fixed.append(c)
        stream = Stream(
            source=source,
            name=name,
            description=" ".join(entry.get("description", "").split()),
            columns=tuple(fixed),
            primary_key=tuple(entry["primary_key"]),
            replication=entry["replication"],
            # A child has no replication key of its own: it follows its root's partition.
            replication_key=raw.get("replication_key") if raw.get("parent") else entry.get("replication_key"),
            endpoint=entry.get("endpoint"),
            envelope=entry.get("envelope"),
            pagination=entry["pagination"],
            updated_since=entry["updated_since"],
            parent=entry.get("parent"),
            path=entry.get("path"),
            parent_key=parent_key,
            keep_unknown_fields=entry.get("unknown_fields", "keep") == "keep",
            freshness_hours=float(entry.get("freshness_hours", 26)),
            max_snapshot_shrink=float(entry.get("max_snapshot_shrink", 0.5)),
            references=dict(entry.get("references", {})),
            headers={str(k): str(v) for k, v in (entry.get("headers") or {}).items()},
            params={str(k): str(v) for k, v in (entry.get("params") or {}).items()},
            no_data_errors=tuple(entry.get("no_data_errors") or ()),
            replication_key_nullable=bool(entry.get("replication_key_nullable", False)),
            reports_total=bool(entry.get("reports_total", True)),
            count_endpoint=entry.get("count_endpoint"),
            change_filter=entry.get("change_filter"),
            reread_when=_reread_when(table, entry.get("reread_when")),
        )
        _validate(stream)
        streams.append(stream)
    catalog = Catalog(source=source, docs=doc.get("docs", ""), streams=tuple(streams))
    names = {s.name for s in streams}
    for s in streams:
        if s.parent and s.parent not in names:
            raise CatalogError(f"{s.table}: parent {s.parent!r} is not in the catalog")
        if s.reread_when and (s.reread_when[0] not in names or not s.endpoint):
            raise CatalogError(f"{s.table}: reread_when needs a per-parent endpoint and a stream of this catalog")
        for col, target in s.references.items():
            s.column(col)
            if target not in names:
                raise CatalogError(f"{s.table}.{col}: references unknown table {target!r}")
    return catalog


def _reread_when(table: str, spec: Any) -> tuple[str, tuple[str, ...]] | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) != {"stream", "parent_id"}:
        raise CatalogError(f"{table}: reread_when is {{stream: <name>, parent_id: <path.in.record>}}")
    return str(spec["stream"]), tuple(str(spec["parent_id"]).split("."))


def _validate(s: Stream) -> None:
    names = set(s.column_names)
    if len(names) != len(s.columns):
        raise CatalogError(f"{s.table}: duplicate column names")
    if s.replication not in REPLICATIONS:
        raise CatalogError(f"{s.table}: replication must be one of {sorted(REPLICATIONS)}")
    for key in (*s.primary_key, *([s.replication_key] if s.replication_key else [])):
        if key not in names:
            raise CatalogError(f"{s.table}: key column {key!r} is not a declared column")
    if s.is_root and not (s.endpoint and s.envelope):
        raise CatalogError(f"{s.table}: a root stream needs an endpoint and an envelope")
    if s.parent and s.replication_key:
        raise CatalogError(f"{s.table}: a child follows its parent's partition; drop its replication_key")
    if not 0 <= s.max_snapshot_shrink <= 1:
        raise CatalogError(f"{s.table}: max_snapshot_shrink is a share between 0 and 1")
    if s.parent and not s.parent_key:
        raise CatalogError(f"{s.table}: a child stream needs a parent_key")
    if s.parent and bool(s.path) == bool(s.endpoint):
        raise CatalogError(f"{s.table}: a child stream has either a path or an endpoint")


# libyaml's parser when PyYAML was built with it: the same documents, ten times faster than the
# pure-Python one on a catalog (every process that loads the code location reads both catalogs).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def load_catalog(path: Path) -> Catalog:
    with open(path, encoding="utf-8") as f:
        return parse_catalog(yaml.load(f, Loader=_SAFE_LOADER))  # noqa: S506 - a safe loader
