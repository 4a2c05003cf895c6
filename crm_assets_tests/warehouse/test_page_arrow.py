"""Records read as Arrow from a page's bytes convert exactly as the same records parsed as Python.

A load reads each page twice: orjson for the paging, windows and child tables, and Arrow's C++
JSON reader for the conversion, off the GIL. The two must give the same rows. Checked side by
side on every root table of the Harvest and Zoho sandboxes, and on records made to hit where
the JSON reader's own inference differs from Python's (text that looks like a timestamp in a
text column, a date-time in a date column, offsets, fractions, unknown fields).
"""

from __future__ import annotations

import duckdb
import orjson
import pytest

from crm_assets.catalog import parse_catalog
from crm_assets.sandbox import SandboxProcess
from crm_assets.sources.harvest import harvest_catalog
from crm_assets.sources.zoho import zoho_catalog
from crm_assets.warehouse.page_arrow import parse_page, subset
from crm_assets.warehouse.records import convert

TRICKY = parse_catalog(
    {
        "source": "tiny",
        "defaults": {"primary_key": ["id"], "replication": "incremental", "replication_key": "updated_at",
                     "pagination": "cursor", "updated_since": True},
        "streams": [{"name": "things", "endpoint": "/things", "envelope": "things", "columns": {
            "id": "BIGINT", "label": "VARCHAR", "born_on": "DATE", "due_on": "DATE",
            "updated_at": "TIMESTAMPTZ", "tags": "VARCHAR[]", "score": "DOUBLE",
            "owner": {"id": "BIGINT", "seen_at": "TIMESTAMPTZ"},
        }}],
    }
).stream("things")

TRICKY_RECORDS = [
    {"id": 1, "label": "2024-03-01T10:00:00Z", "born_on": "2024-01-31", "due_on": "2024-03-01T10:00:00+02:00",
     "updated_at": "2024-03-01T10:00:00+02:00", "tags": ["2024-03-01", "x"], "score": 1,
     "owner": {"id": 7, "seen_at": "2024-03-01 10:00:00"}, "noted_at": "2024-03-02T00:00:00Z"},
    {"id": 2, "label": "plain", "born_on": None, "due_on": "2024-03-02",
     "updated_at": "2024-03-01T10:00:00.250Z", "tags": [], "score": 2.5,
     "owner": None, "noted_at": "later", "extra": {"a": 1}},
    {"id": 3, "label": None, "born_on": "2024-02-29", "due_on": None,
     "updated_at": "2024-03-01T23:59:59Z", "tags": None, "score": None,
     "owner": {"id": 8, "seen_at": None}, "noted_at": None, "extra": None},
]


def page_bytes(envelope: str, records: list) -> bytes:
    return orjson.dumps({envelope: records, "per_page": 2000, "links": {"next": None}})


def assert_same_conversion(stream, records: list) -> None:
    """The Python path and the Arrow-from-bytes path give equal tables and columns."""
    typed = parse_page(page_bytes(str(stream.envelope), records), str(stream.envelope), records)
    assert getattr(typed, "arrow", None) is not None, f"{stream.table}: the JSON reader did not type the page"
    python_known, arrow_known = list(stream.columns), list(stream.columns)
    by_python = convert(stream, list(records), python_known)
    by_arrow = convert(stream, typed, arrow_known)
    assert [(c.name, c.type) for c in by_arrow.columns] == [(c.name, c.type) for c in by_python.columns], stream.table
    assert stored(by_arrow) == stored(by_python), stream.table


def stored(rows) -> list[tuple]:
    """The rows as the warehouse stores them: each column cast to its declared type in UTC
    (a timestamp may arrive parsed by Arrow or as text that DuckDB parses)."""
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.register("page", rows.table)
        casts = ", ".join(f'CAST("{c.name}" AS {c.type}) AS "{c.name}"' for c in rows.columns)
        return conn.execute(f"SELECT {casts} FROM page").fetchall()


def test_records_made_to_differ_convert_the_same_both_ways():
    assert_same_conversion(TRICKY, TRICKY_RECORDS)


def test_a_window_subset_keeps_the_rows_of_the_kept_records():
    typed = parse_page(page_bytes("things", TRICKY_RECORDS), "things", TRICKY_RECORDS)
    kept = subset(typed, [0, 2])
    assert [r["id"] for r in kept] == [1, 3]
    assert kept.arrow.field("id").to_pylist() == [1, 3]
    assert subset(typed, [0, 1, 2]) is typed


def test_a_page_the_reader_cannot_type_keeps_the_python_path():
    records = [{"id": 1, "score": True}, {"id": 2, "score": 3}]  # mixed kinds in one field
    assert not hasattr(parse_page(page_bytes("things", records), "things", records), "arrow")


@pytest.fixture(scope="module")
def sandbox():
    with SandboxProcess(seed=5, scale=0.2, lifetime=300) as sb:
        yield sb


@pytest.mark.parametrize("source", ["harvest", "zoho"])
def test_every_root_table_of_the_sandboxes_converts_the_same_both_ways(sandbox, source):
    catalog = harvest_catalog() if source == "harvest" else zoho_catalog()
    checked = 0
    for stream in catalog.roots:
        records = sandbox.harvest_records(stream.name) if source == "harvest" else sandbox.zoho_records(stream.name)
        records = [r for r in records if isinstance(r, dict)][:2000]
        if records:
            assert_same_conversion(stream, records)
            checked += 1
    assert checked >= len(catalog.roots) - 2, (source, checked)
