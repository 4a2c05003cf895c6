"""A page's records as Arrow, read from the page's own bytes by Arrow's C++ JSON reader.

Converting a page of Python dicts to Arrow (`pyarrow.array` inferring the nested shape) holds
the GIL for about as long as parsing the page did, and a load's reading, converting and window
tests all share that one lock. Arrow's JSON reader parses the same bytes without it, on the
thread that fetched them, while the loader works on the previous page. The records are still
parsed as Python objects too (the paging, the window and the child tables need them); the Arrow
array rides along with them in :class:`ArrowRecords`, and whatever the reader cannot type (mixed
kinds in a field) simply leaves the page to the Python conversion.

The reader infers ISO-8601 text as timestamps (normalised to UTC): the conversion
(:mod:`crm_assets.warehouse.records`) turns those back into text wherever the original text is
what gets stored, so both paths store the same values (tested side by side).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


class ArrowRecords(list):
    """A page's records (Python objects) with the same records as one Arrow struct array."""

    arrow: pa.Array | None = None


def parse_page(raw: bytes, envelope: str, records: list[Any]) -> list[Any]:
    """`records` (the page's `envelope` list) carrying their Arrow array read from `raw`, the
    page's JSON bytes; `records` unchanged when the reader cannot type the page."""
    import pyarrow as pa
    import pyarrow.json as pj

    if not records or not raw:
        return records
    try:
        table = pj.read_json(
            io.BytesIO(raw),
            read_options=pj.ReadOptions(use_threads=False, block_size=len(raw) + 1),
            parse_options=pj.ParseOptions(newlines_in_values=b"\n" in raw),
        )
        lists = table.column(envelope).combine_chunks()
    except (pa.ArrowException, KeyError):  # mixed kinds in a field, an odd envelope
        return records
    if table.num_rows != 1 or not pa.types.is_list(lists.type) or not pa.types.is_struct(lists.type.value_type):
        return records
    array = lists[0].values
    if len(array) != len(records):
        return records
    typed = ArrowRecords(records)
    typed.arrow = array
    return typed


def subset(records: list[Any], kept: Sequence[int]) -> list[Any]:
    """The records at the `kept` positions, with their Arrow rows when they have them."""
    if len(kept) == len(records):
        return records
    chosen = [records[i] for i in kept]
    arrow = getattr(records, "arrow", None)
    if arrow is None:
        return chosen
    import pyarrow as pa

    typed = ArrowRecords(chosen)
    typed.arrow = arrow.take(pa.array(kept, pa.int64()))
    return typed
