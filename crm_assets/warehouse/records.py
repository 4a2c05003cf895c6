"""Turn a page of API records into a typed Arrow table, column by column.

Column-wise extraction keeps per-row Python work to one dictionary lookup per column and lets
Arrow validate types in C. Dates and timestamps stay text here and are cast by DuckDB. Fields
the catalog does not know are kept as extra columns (VARCHAR for strings, JSON otherwise), and
values that do not fit their column raise a `RecordError` naming table, record and field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa

from crm_assets.catalog import Column, Stream

ARROW_TYPES: dict[str, pa.DataType] = {
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "VARCHAR": pa.string(),
    "DATE": pa.string(),
    "TIMESTAMPTZ": pa.string(),
    "JSON": pa.string(),
    "BIGINT[]": pa.list_(pa.int64()),
    "DOUBLE[]": pa.list_(pa.float64()),
    "VARCHAR[]": pa.list_(pa.string()),
}
_EMPTY: dict[str, Any] = {}


class RecordError(ValueError):
    """An API record that cannot be stored as the catalog declares it."""


def record_label(record: Any, index: int) -> str:
    if isinstance(record, dict) and record.get("id") is not None:
        return f"id={record['id']}"
    return f"#{index} of its page"


def known_keys(stream: Stream, derived_paths: Sequence[str] = ()) -> dict[str, Any]:
    """The tree of keys the catalog expects in a record: {key: subtree or None for a leaf}."""
    tree: dict[str, Any] = {p: None for p in derived_paths}
    for col in stream.columns:
        if not col.path:
            continue
        node = tree
        for key in col.path[:-1]:
            node = node.setdefault(key, {})
        node.setdefault(col.path[-1], None)
    return tree


def find_unknown_columns(
    stream: Stream, records: list[Any], tree: dict[str, Any], known: set[str]
) -> list[Column]:
    """Columns for keys present in `records` that neither the catalog nor the table has yet."""
    found: list[Column] = []

    def walk(objs: list[dict], node: dict[str, Any], prefix: tuple[str, ...]) -> None:
        keys = set().union(*objs) if objs else set()
        for key in sorted(keys):
            path = (*prefix, key)
            sub = node.get(key, ...)
            if sub is ...:
                name = "__".join(path)
                if name in known:
                    continue
                values = [o.get(key) for o in objs]
                is_text = all(v is None or isinstance(v, str) for v in values)
                found.append(Column(name, "VARCHAR" if is_text else "JSON", path))
            elif isinstance(sub, dict):
                children = [v for o in objs if isinstance(v := o.get(key), dict)]
                walk(children, sub, path)

    walk([r for r in records if isinstance(r, dict)], tree, ())
    return found


def _values(stream: Stream, col: Column, records: list[Any], parent_ids: list[Any] | None) -> list:
    path = col.path
    if path is None:
        if parent_ids is None:
            raise RecordError(f"{stream.table}: column {col.name!r} needs the parent's id")
        return parent_ids
    try:
        if not path:
            return records
        if len(path) == 1:
            (k,) = path
            return [r.get(k) for r in records]
        if len(path) == 2:
            k1, k2 = path
            return [(r.get(k1) or _EMPTY).get(k2) for r in records]
        out = []
        for r in records:
            for k in path:
                r = (r or _EMPTY).get(k)
            out.append(r)
        return out
    except AttributeError:
        for i, r in enumerate(records):
            node = r
            for depth, k in enumerate(path):
                if node is not None and not isinstance(node, dict):
                    where = ".".join(path[:depth]) or "the record"
                    raise RecordError(
                        f"{stream.table}: record {record_label(r, i)}: field {where!r} should be an "
                        f"object, got {type(node).__name__} {str(node)[:80]!r}"
                    ) from None
                node = (node or _EMPTY).get(k)
        raise


def _arrow_column(stream: Stream, col: Column, values: list, records: list[Any]) -> pa.Array:
    arrow_type = ARROW_TYPES[col.type]
    if col.type == "JSON":
        values = [None if v is None else orjson.dumps(v).decode() for v in values]
    try:
        return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        if col.type == "VARCHAR":
            # A text column keeps any value faithfully: scalars and objects as their JSON text.
            text = [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values]
            return pa.array(text, type=arrow_type)
        for i, v in enumerate(values):
            try:
                pa.array([v], type=arrow_type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                raise RecordError(
                    f"{stream.table}: record {record_label(records[i], i)}: field {col.name!r} "
                    f"should be {col.type}, got {type(v).__name__} {str(v)[:80]!r}"
                ) from None
        raise


def to_arrow(
    stream: Stream,
    columns: Sequence[Column],
    records: list[Any],
    parent_ids: list[Any] | None = None,
) -> pa.Table:
    """Build the Arrow table of `columns` for `records`; primary keys must be present."""
    arrays = {}
    for col in columns:
        values = _values(stream, col, records, parent_ids)
        if col.name in stream.primary_key:
            for i, v in enumerate(values):
                if v is None:
                    raise RecordError(
                        f"{stream.table}: record {record_label(records[i], i)}: primary key "
                        f"field {col.name!r} is missing"
                    )
        arrays[col.name] = _arrow_column(stream, col, values, records)
    return pa.table(arrays)
