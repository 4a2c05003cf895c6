"""Turn a page of API records into a typed Arrow table.

Arrow's C++ converter reads the whole page once and infers its nested shape; each declared
column is then taken out of that shape and cast *safely* to its declared type. Inference never
coerces, so a value of the wrong kind cannot slip in silently: 1.5 does not become the BIGINT
1, ``true`` does not become the DOUBLE 1.0, and "Dev" does not become the list ``[D, e, v]``.
The same inferred shape tells which keys the catalog does not know yet; they become new
columns (VARCHAR for text, JSON otherwise). A column whose values do not fit takes the Python
path, which stores them faithfully (numbers in a text column as their JSON text) or raises a
`RecordError` naming table, record and field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson

from crm_assets.catalog import Column, Stream

if TYPE_CHECKING:
    import pyarrow as pa

# pyarrow (and numpy under it) is imported by the functions that build tables, not here: the
# code location imports this module, and most processes that load it never read a record.
COLUMN_TYPES = frozenset(
    {"BIGINT", "DOUBLE", "BOOLEAN", "VARCHAR", "DATE", "TIMESTAMPTZ", "JSON"}
    | {"BIGINT[]", "DOUBLE[]", "VARCHAR[]"}
)


@cache
def arrow_types() -> dict[str, pa.DataType]:
    """The Arrow type each of `COLUMN_TYPES` is loaded as."""
    import pyarrow as pa

    return {
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


@cache
def _parsed_types() -> dict[str, pa.DataType]:
    """Text that Arrow can often parse itself; what it cannot stays text and DuckDB casts it."""
    import pyarrow as pa

    return {"TIMESTAMPTZ": pa.timestamp("s", tz="UTC"), "DATE": pa.date32()}


class RecordError(ValueError):
    """An API record that cannot be stored as the catalog declares it."""


def record_label(record: Any, index: int) -> str:
    if isinstance(record, dict) and record.get("id") is not None:
        return f"id={record['id']}"
    return f"#{index} of its page"


def infer(records: list[Any]) -> pa.Array | None:
    """The page as one Arrow array of inferred type, or None when kinds are mixed in a field."""
    import pyarrow as pa

    try:
        return pa.array(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        return None


def known_keys(stream: Stream, derived_paths: Sequence[str] = ()) -> dict[str, Any]:
    """The tree of keys the catalog expects in a record: {key: subtree or None for a leaf}."""
    tree = stream.key_tree()
    for path in derived_paths:
        tree.setdefault(path, None)
    return tree


def find_unknown_columns(
    records: list[Any], tree: dict[str, Any], known: set[str], inferred: pa.Array | None = None
) -> list[Column]:
    """Columns for keys present in `records` that neither the catalog nor the table has yet."""
    import pyarrow as pa

    found: list[Column] = []

    def add(path: tuple[str, ...], is_text: bool) -> None:
        name = "__".join(path)
        if name not in known:
            found.append(Column(name, "VARCHAR" if is_text else "JSON", path))

    def walk_type(t: pa.StructType, node: dict[str, Any], prefix: tuple[str, ...]) -> None:
        for f in t:
            sub = node.get(f.name, ...)
            if sub is ...:
                add((*prefix, f.name), _is_text(f.type))
            elif isinstance(sub, dict) and pa.types.is_struct(f.type):
                walk_type(f.type, sub, (*prefix, f.name))

    def walk(objs: list[dict], node: dict[str, Any], prefix: tuple[str, ...]) -> None:
        for key in sorted(set().union(*objs) if objs else ()):
            sub = node.get(key, ...)
            if sub is ...:
                add((*prefix, key), all(isinstance(o.get(key), str | None) for o in objs))
            elif isinstance(sub, dict):
                walk([v for o in objs if isinstance(v := o.get(key), dict)], sub, (*prefix, key))

    if inferred is not None and pa.types.is_struct(inferred.type):
        walk_type(inferred.type, tree, ())
    else:
        walk([r for r in records if isinstance(r, dict)], tree, ())
    return found


def to_arrow(
    stream: Stream,
    columns: Sequence[Column],
    records: list[Any],
    parent_ids: list[Any] | None = None,
    inferred: pa.Array | None = None,
) -> pa.Table:
    """The Arrow table of `columns` for `records` (`inferred` is `infer(records)` if known)."""
    import pyarrow as pa

    if inferred is None:
        inferred = infer(records)
    arrays = {}
    for col in columns:
        array = None
        if col.path is None:
            if parent_ids is None:
                raise RecordError(f"{stream.table}: column {col.name!r} needs the parent's id")
        elif col.type != "JSON" and inferred is not None:
            array = _fit(_leaf(inferred, col.path), col.type)
        if array is None:
            values = parent_ids if col.path is None else _values(stream, col, records)
            array = _python_column(stream, col, values, records)
        arrays[col.name] = array
    for key in stream.primary_key:
        column = arrays[key]
        if column.null_count:
            i = column.is_null().to_pylist().index(True)
            raise RecordError(
                f"{stream.table}: record {record_label(records[i], i)}: primary key field {key!r} is missing"
            )
    return pa.table(arrays)


def _leaf(array: pa.Array, path: tuple[str, ...]) -> pa.Array | None:
    """The values at `path` (nulls where a parent object is null), or None if the shape differs."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for key in path:
        t = array.type
        if pa.types.is_null(t):
            return array
        if not pa.types.is_struct(t):
            return None
        index = t.get_field_index(key)
        if index < 0:
            return pa.nulls(len(array))
        array = pc.struct_field(array, [index])
    return array


def _fit(array: pa.Array | None, column_type: str) -> pa.Array | None:
    """`array` as `column_type` when its inferred kind allows it without coercion, else None."""
    import pyarrow as pa

    if array is None:
        return None
    t = array.type
    target = arrow_types()[column_type]
    parsed = _parsed_types()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_null(t):
        return pa.nulls(len(array), parsed.get(column_type, target))
    if pa.types.is_timestamp(t):  # text that Arrow's JSON reader parsed, already in UTC
        return _from_timestamps(array, column_type)
    if column_type in parsed:
        if not pa.types.is_string(t):
            return None
        try:
            return array.cast(parsed[column_type])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return array
    if column_type.endswith("[]"):
        if not pa.types.is_list(t) or not _scalar_fits(t.value_type, column_type[:-2]):
            return None
    elif not _scalar_fits(t, column_type):
        return None
    try:
        return array.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _is_text(t: pa.DataType) -> bool:
    """Text in the JSON: strings, nulls, or timestamps that Arrow's JSON reader parsed."""
    import pyarrow as pa

    return pa.types.is_string(t) or pa.types.is_null(t) or pa.types.is_timestamp(t)


def _from_timestamps(array: pa.Array, column_type: str) -> pa.Array | None:
    """Parsed timestamps for a TIMESTAMPTZ column, or a DATE column when each is a midnight;
    None (the records' own text) for any other column, the original text being what it stores."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parsed = _parsed_types()
    if column_type == "TIMESTAMPTZ":
        return array.cast(pa.timestamp(array.type.unit)).cast(parsed["TIMESTAMPTZ"])
    if column_type == "DATE":
        dates = array.cast(pa.timestamp("s")).cast(pa.date32())
        if pc.all(pc.equal(dates.cast(pa.timestamp("s")), array.cast(pa.timestamp("s")))).as_py() is not False:
            return dates
    return None


def _scalar_fits(t: pa.DataType, column_type: str) -> bool:
    import pyarrow as pa

    if pa.types.is_null(t):
        return True
    if column_type == "BIGINT":
        return pa.types.is_int64(t) or pa.types.is_float64(t)  # 3.0 fits; 3.5 fails the safe cast
    if column_type == "DOUBLE":
        return pa.types.is_int64(t) or pa.types.is_float64(t)
    if column_type == "BOOLEAN":
        return pa.types.is_boolean(t)
    return pa.types.is_string(t)


def _values(stream: Stream, col: Column, records: list[Any]) -> list:
    path = col.path
    if not path:
        return records
    out = []
    for i, r in enumerate(records):
        node = r
        for depth, key in enumerate(path):
            if node is None:
                break
            if not isinstance(node, dict):
                where = ".".join(path[:depth]) or "the record"
                raise RecordError(
                    f"{stream.table}: record {record_label(r, i)}: field {where!r} should be an "
                    f"object, got {type(node).__name__} {str(node)[:80]!r}"
                )
            node = node.get(key)
        out.append(node)
    return out


def _python_column(stream: Stream, col: Column, values: list, records: list[Any]) -> pa.Array:
    """A column built value by value: faithful, or an error naming record and field."""
    import pyarrow as pa

    kind = col.type
    if kind == "JSON":
        return pa.array([None if v is None else orjson.dumps(v).decode() for v in values], pa.string())
    if kind == "VARCHAR":
        text = [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values]
        return pa.array(text, pa.string())
    element = kind[:-2] if kind.endswith("[]") else None
    for i, v in enumerate(values):
        if v is None:
            continue
        ok = isinstance(v, list) and all(x is None or _value_fits(x, element) for x in v) if element else _value_fits(v, kind)
        if not ok:
            raise RecordError(
                f"{stream.table}: record {record_label(records[i], i)}: field {col.name!r} "
                f"should be {kind}, got {type(v).__name__} {str(v)[:80]!r}"
            )
    array = pa.array(values, arrow_types()[kind])
    parsed = _parsed_types()
    if kind in parsed:
        try:
            return array.cast(parsed[kind])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # left as text: DuckDB casts it and names a bad value
    return array


def _value_fits(v: Any, kind: str) -> bool:
    if kind == "BIGINT":
        return (type(v) is int and -(2**63) <= v < 2**63) or (type(v) is float and v.is_integer())
    if kind == "DOUBLE":
        return type(v) in (int, float)
    if kind == "BOOLEAN":
        return type(v) is bool
    return isinstance(v, str)


@dataclass
class Rows:
    """Records converted for one table: the Arrow table and its columns (the table's known
    ones and any the records add)."""

    table: pa.Table
    columns: list[Column]


def convert(
    stream: Stream,
    records: list[Any],
    known: list[Column],
    parent_ids: list[Any] | None = None,
    consumed_keys: Sequence[str] = (),
) -> Rows:
    """`records` as Arrow for a table whose columns are `known`; keys the table lacks become
    new columns (when the stream keeps unknown fields), added to `known` so that the next
    page of the same load converts them the same way."""
    inferred = getattr(records, "arrow", None)  # read from the page's bytes (page_arrow)
    if inferred is None:
        inferred = infer(records)
    if stream.keep_unknown_fields:
        tree = known_keys(stream, consumed_keys)
        known.extend(find_unknown_columns(records, tree, {c.name for c in known}, inferred))
    columns = list(known)
    return Rows(to_arrow(stream, columns, records, parent_ids, inferred), columns)


def concat(parts: Sequence[Rows]) -> Rows:
    """One table of several pages' rows; columns a page lacks are null in its rows.

    A timestamp or date column is Arrow's own type where every value parsed and text where
    one did not; pages that differ are joined as ISO text, which the warehouse casts back.
    """
    import pyarrow as pa

    if len(parts) == 1:
        return parts[0]
    columns = parts[-1].columns  # later pages know every column the earlier ones found
    kinds = {c.name: c.type for c in columns}
    tables = [p.table for p in parts]
    for name, kind in kinds.items():
        types = {t.schema.field(name).type for t in tables if name in t.column_names}
        if kind in _TEXT_FORMATS and len(types) > 1:
            tables = [_as_text(t, name, _TEXT_FORMATS[kind]) for t in tables]
    table = pa.concat_tables(tables, promote_options="default")
    return Rows(table.select([c.name for c in columns]), columns)


_TEXT_FORMATS = {"TIMESTAMPTZ": "%Y-%m-%dT%H:%M:%SZ", "DATE": "%Y-%m-%d"}


def _as_text(table: pa.Table, name: str, text_format: str) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    if name not in table.column_names:
        return table
    column = table.column(name)
    if pa.types.is_string(column.type):
        return table
    if pa.types.is_null(column.type):
        text = column.cast(pa.string())
    else:
        text = pc.strftime(column, format=text_format)
    return table.set_column(table.column_names.index(name), name, text)
