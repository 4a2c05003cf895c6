"""A listing page's records as Arrow, read from the page's own bytes by Arrow's C++ JSON reader,
and as Python objects only when something asks for them.

Parsing a page into Python dicts and converting those to Arrow both hold the GIL, and a load's
reading, window tests and conversion all share that one lock. Arrow's JSON reader parses the
bytes without it, on the thread that fetched them. The common questions a load asks of a page
(its ids, which records fall in the window, their versions, the child records nested in them)
are answered on the Arrow array; :class:`PageRecords` parses the bytes with orjson the first
time anything else needs the records themselves (a column whose values take the Python path,
an error naming a record, a source's own logic), so every path still sees the same records.

A page the reader cannot type (mixed kinds in a field, a number beyond 64 bits, an odd
envelope) is parsed by orjson as before. The reader infers ISO-8601 text as timestamps
(normalised to UTC): the conversion (:mod:`crm_assets.warehouse.records`) turns those back into
text wherever the original text is what gets stored (tested side by side).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import pyarrow as pa


class PageRecords(Sequence):
    """Records as one Arrow struct array, with the same records as Python objects on demand."""

    __slots__ = ("arrow", "_python", "_make_python")

    def __init__(self, arrow: pa.StructArray, make_python: Callable[[], list[Any]]):
        self.arrow = arrow
        self._python: list[Any] | None = None
        self._make_python: Callable[[], list[Any]] | None = make_python

    @property
    def python(self) -> list[Any]:
        """The records as Python objects (parsed once, on first use)."""
        if self._python is None:
            assert self._make_python is not None
            self._python, self._make_python = self._make_python(), None
        return self._python

    def __len__(self) -> int:
        return len(self.arrow)

    def __getitem__(self, index: Any) -> Any:
        return self.python[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.python)

    def __repr__(self) -> str:
        return f"PageRecords({len(self)} records)"

    def take(self, positions: Sequence[int]) -> PageRecords:
        """The records at `positions`, still lazy."""
        import pyarrow as pa

        return PageRecords(
            self.arrow.take(pa.array(positions, pa.int64())),
            lambda: [self.python[i] for i in positions],
        )


def read_body(raw: bytes, envelope: str) -> dict[str, Any] | None:
    """The JSON object in `raw` with its `envelope` list as :class:`PageRecords`, read by Arrow;
    None when the reader cannot type it (the caller parses it as Python instead).

    The other keys (links, totals, page info) become Python values; a page whose other keys
    hold anything the reader would change (timestamps it parsed) is left to the Python parse.
    """
    import pyarrow as pa
    import pyarrow.json as pj

    if not raw or raw.lstrip()[:1] != b"{":
        return None
    try:
        table = pj.read_json(
            io.BytesIO(raw),
            read_options=pj.ReadOptions(use_threads=False, block_size=len(raw) + 1),
            parse_options=pj.ParseOptions(newlines_in_values=b"\n" in raw),
        )
        lists = table.column(envelope).combine_chunks()
    except (pa.ArrowException, KeyError):
        return None
    if table.num_rows != 1 or not pa.types.is_list(lists.type) or not pa.types.is_struct(lists.type.value_type):
        return None
    head = table.drop_columns([envelope])
    if any(_has_timestamp(f.type) for f in head.schema):
        return None
    array = lists[0].values
    if array.null_count:  # a null among the records: the Python path names it
        return None
    body = head.to_pylist()[0]
    body[envelope] = PageRecords(array, lambda: _envelope_list(raw, envelope))
    return body


def _envelope_list(raw: bytes, envelope: str) -> list[Any]:
    return orjson.loads(raw)[envelope]


def _has_timestamp(t: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_timestamp(t):
        return True
    if pa.types.is_struct(t):
        return any(_has_timestamp(f.type) for f in t)
    if pa.types.is_list(t):
        return _has_timestamp(t.value_type)
    return False


def arrow_of(records: Sequence[Any]) -> pa.StructArray | None:
    """The records' Arrow array when they were read as Arrow."""
    return records.arrow if isinstance(records, PageRecords) else None


def subset(records: Sequence[Any], kept: Sequence[int]) -> Sequence[Any]:
    """The records at the `kept` positions (lazy when the records are)."""
    if len(kept) == len(records):
        return records
    if isinstance(records, PageRecords):
        return records.take(kept)
    return [records[i] for i in kept]


def field_values(array: pa.StructArray, key: str) -> pa.Array | None:
    """The values of a top-level field of records without nulls, or None when absent."""
    index = array.type.get_field_index(key)
    return None if index < 0 else array.field(index)


def ids_of(records: Sequence[Any]) -> list[Any] | None:
    """Every record's `id` read from Arrow, or None when that cannot answer (no Arrow, a record
    without an id, ids of a kind other than integers or text)."""
    import pyarrow as pa

    array = arrow_of(records)
    ids = None if array is None else field_values(array, "id")
    if ids is None or ids.null_count or not (pa.types.is_int64(ids.type) or pa.types.is_string(ids.type)):
        return None
    return ids.to_pylist()


def versions_of(records: Sequence[Any], key: str) -> list[Any] | None:
    """Every record's `key` as the API's text (timestamps as UTC ISO text), read from Arrow."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = arrow_of(records)
    values = None if array is None else field_values(array, key)
    if values is None:
        return None
    if pa.types.is_timestamp(values.type) and values.type.unit == "s":
        return pc.strftime(values, format="%Y-%m-%dT%H:%M:%SZ").to_pylist()
    if pa.types.is_string(values.type) or pa.types.is_null(values.type):
        return values.to_pylist()
    return None


def nested_records(records: Sequence[Any], path: str) -> tuple[PageRecords, list[int]] | None:
    """The objects held under `path` in the records (one object, or a list of them) with the
    position of the record each came from, read from Arrow; None when that cannot answer."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = arrow_of(records)
    values = None if array is None else field_values(array, path)
    if values is None:
        return None
    if pa.types.is_struct(values.type):
        present = values.is_valid()
        positions = pc.indices_nonzero(present).to_pylist()
        children = values.filter(present)
    elif pa.types.is_list(values.type) and pa.types.is_struct(values.type.value_type):
        children = pc.list_flatten(values)
        positions = pc.list_parent_indices(values).to_pylist()
    else:
        return None
    if children.null_count:  # a null inside a list: the Python path names it
        return None
    return PageRecords(children, lambda: _nested_python(records, path)), positions


def _nested_python(records: Sequence[Any], path: str) -> list[Any]:
    out: list[Any] = []
    for record in records:
        value = record.get(path)
        if isinstance(value, dict):
            out.append(value)
        elif isinstance(value, list):
            out.extend(value)
    return out


def window_mask(
    records: Sequence[Any], key: str, lo: datetime | None, hi: datetime
) -> tuple[list[int], datetime | None] | None:
    """Positions of the records whose `key` is in [lo, hi) (aware datetimes, lo None for an open
    start) and the newest such key (naive UTC), read from Arrow; None when the keys are not all
    second-precision timestamps (the Python path then reads, or names, each one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = arrow_of(records)
    values = None if array is None else field_values(array, key)
    if values is None or values.null_count or values.type != pa.timestamp("s"):
        return None
    exact = values.cast(pa.timestamp("us"))  # the window's ends may carry microseconds

    def instant(at: datetime) -> pa.Scalar:
        return pa.scalar(at.astimezone(UTC).replace(tzinfo=None), pa.timestamp("us"))

    inside = pc.less(exact, instant(hi))
    if lo is not None:
        inside = pc.and_(inside, pc.greater_equal(exact, instant(lo)))
    positions = pc.indices_nonzero(inside).to_pylist()
    newest = pc.max(values.filter(inside)).as_py() if positions else None
    return positions, newest


def use_system_allocator() -> None:
    """Allocate this process's Arrow buffers with the C library's malloc from now on.

    A load's buffers are page-sized and short-lived: glibc hands such large blocks straight
    back to the system when they are freed, where pyarrow's default pool (mimalloc in the
    wheels installed here) kept about 50 MB more resident over a backfill of 200,000 time
    entries (about 360 against 410 MB peak) at the same speed. Buffers already allocated stay
    with the pool that made them.
    """
    import pyarrow as pa

    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())
