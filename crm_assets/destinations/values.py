"""Warehouse values as a destination's JSON wants them, and records encoded without loss.

- dates ``YYYY-MM-DD``; datetimes ISO 8601 in UTC with a ``T`` and a zone (a zone-less
  timestamp is taken as UTC), to the millisecond that CRMs store;
- DECIMAL values written as their exact digits, never through a float;
- DOUBLE values rounded to 15 significant digits, which removes the binary noise of sums
  (``0.1 + 0.2`` is sent as ``0.3``) and keeps every digit a double really holds;
- NaN and infinities, which JSON cannot carry, become null; a null is sent as ``null`` so that
  it clears the field instead of leaving the old value;
- lists become ``a;b`` (multi-select picklists); nested structs become JSON text.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import orjson

SIGNIFICANT_DIGITS = 15


def convert(value: Any) -> Any:
    """One value as JSON-ready Python; Decimal is kept for :func:`encode_record`."""
    if value is None or isinstance(value, (bool, int, str, Decimal)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return stamp.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, (list, tuple)):
        return ";".join(str(convert(v)) for v in value if v is not None)
    if isinstance(value, Mapping):
        return orjson.dumps(value, default=str).decode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    return str(value)


def convert_record(record: Mapping[str, Any]) -> dict[str, Any]:
    return {name: convert(value) for name, value in record.items()}


def encode_record(record: Mapping[str, Any]) -> bytes:
    """A converted record as a JSON object; Decimal values keep their exact digits."""
    parts = [
        orjson.dumps(name)
        + b":"
        + (str(value).encode() if isinstance(value, Decimal) else orjson.dumps(value))
        for name, value in record.items()
    ]
    return b"{" + b",".join(parts) + b"}"


def encode_records(records: Iterable[Mapping[str, Any]]) -> bytes:
    return b"[" + b",".join(encode_record(r) for r in records) + b"]"
