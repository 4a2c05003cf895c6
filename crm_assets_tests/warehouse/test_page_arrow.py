"""Records read as Arrow from a page's bytes give exactly what the same records parsed as Python do.

A load reads each listing page with Arrow's C++ JSON reader and asks its questions (ids, the
window, versions, nested child records, the conversion) of the Arrow array, parsing the page as
Python only when something needs the records themselves. Both paths must give the same rows.
Checked side by side on every root table of the Harvest and Zoho sandboxes (with their derived
child tables), and on records made to hit where the JSON reader's own inference differs from
Python's (text that looks like a timestamp in a text column, a date-time in a date column,
offsets, fractions, unknown fields).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import orjson
import pytest

from crm_assets.catalog import parse_catalog
from crm_assets.sandbox import SandboxProcess
from crm_assets.sources.family import FamilyStats, in_window, parse_timestamp
from crm_assets.sources.family_reader import _derive, record_ids
from crm_assets.sources.harvest import harvest_catalog
from crm_assets.sources.harvest.reader import format_timestamp, in_text_window
from crm_assets.sources.zoho import zoho_catalog
from crm_assets.warehouse.page_arrow import PageRecords, read_body, subset, versions_of
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


def typed_page(envelope: str, records: list) -> PageRecords:
    body = read_body(page_bytes(envelope, records), envelope)
    assert body is not None, f"{envelope}: the JSON reader did not type the page"
    assert body["links"] == {"next": None} and body["per_page"] == 2000
    return body[envelope]


def assert_same_conversion(stream, records: list, typed: list, parent_ids: list | None = None) -> None:
    """The Python path and the Arrow path give equal tables and columns."""
    python_known, arrow_known = list(stream.columns), list(stream.columns)
    by_python = convert(stream, list(records), python_known, parent_ids)
    by_arrow = convert(stream, typed, arrow_known, parent_ids)
    assert [(c.name, c.type) for c in by_arrow.columns] == [(c.name, c.type) for c in by_python.columns], stream.table
    assert stored(by_arrow) == stored(by_python), stream.table


def assert_same_family(catalog, stream, records: list) -> None:
    """Ids, versions, a window and the derived child tables agree between the two paths."""
    typed = typed_page(str(stream.envelope), records)
    assert_same_conversion(stream, records, typed)
    ids = record_ids(stream, records)
    assert record_ids(stream, typed) == ids, stream.table
    if stream.replication_key:
        key = stream.replication_key
        versions = versions_of(typed, key)
        if versions is not None:
            as_instants = [parse_timestamp(stream, key, {key: v}, i) for i, v in enumerate(versions)]
            assert as_instants == [parse_timestamp(stream, key, r, i) for i, r in enumerate(records)], stream.table
        assert_same_window(stream, records, typed)
    for child in catalog.children(stream.name):
        if child.is_derived:
            python_rows, python_roots = _derive(child, records, ids)
            arrow_rows, arrow_roots = _derive(child, typed, ids)
            assert arrow_roots == python_roots, child.table
            assert_same_conversion(child, python_rows, arrow_rows, python_roots)


def assert_same_window(stream, records: list, typed: list) -> None:
    keys = sorted(v for r in records if (v := parse_timestamp(stream, str(stream.replication_key), r, 0)))
    if not keys:
        return
    start, end = keys[len(keys) // 3], keys[2 * len(keys) // 3] + timedelta(seconds=1)
    python_stats, arrow_stats = FamilyStats(), FamilyStats()
    kept = in_window(stream, records, start, end, python_stats)
    typed_kept = in_window(stream, typed, start, end, arrow_stats)
    assert [r["id"] for r in typed_kept] == [r["id"] for r in kept], stream.table
    assert (arrow_stats.newest, arrow_stats.outside_window) == (python_stats.newest, python_stats.outside_window)
    if stream.updated_since:  # Harvest's own window test, on its timestamp text
        window = (format_timestamp(start), format_timestamp(end))
        python_kept, python_newest = in_text_window(stream, records, *window)
        arrow_kept, arrow_newest = in_text_window(stream, typed, *window)
        assert ([r["id"] for r in arrow_kept], arrow_newest) == ([r["id"] for r in python_kept], python_newest)


def stored(rows) -> list[tuple]:
    """The rows as the warehouse stores them: each column cast to its declared type in UTC
    (a timestamp may arrive parsed by Arrow or as text that DuckDB parses)."""
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.register("page", rows.table)
        casts = ", ".join(f'CAST("{c.name}" AS {c.type}) AS "{c.name}"' for c in rows.columns)
        return conn.execute(f"SELECT {casts} FROM page").fetchall()


def test_records_made_to_differ_convert_the_same_both_ways():
    assert_same_conversion(TRICKY, TRICKY_RECORDS, typed_page("things", TRICKY_RECORDS))


def test_a_window_subset_keeps_the_rows_of_the_kept_records():
    typed = typed_page("things", TRICKY_RECORDS)
    kept = subset(typed, [0, 2])
    assert kept.arrow.field("id").to_pylist() == [1, 3]
    assert [r["id"] for r in kept] == [1, 3]  # parsed as Python only now
    assert subset(typed, [0, 1, 2]) is typed


def test_a_load_asks_its_questions_of_arrow_without_parsing_the_records_as_python():
    stream = harvest_catalog().stream("time_entries")
    records = [
        {"id": n, "updated_at": f"2024-03-0{n}T10:00:00Z", "hours": 1.5, "user": {"id": 7, "name": "Ada"},
         "external_reference": {"id": f"ref-{n}"} if n % 2 else None}
        for n in range(1, 6)
    ]
    typed = typed_page("time_entries", records)
    kept = in_window(stream, typed, datetime(2024, 3, 2, tzinfo=UTC), datetime(2024, 3, 5, tzinfo=UTC), FamilyStats())
    ids = record_ids(stream, kept)
    children, roots = _derive(harvest_catalog().stream("time_entry_external_reference"), kept, ids)
    convert(stream, kept, list(stream.columns))
    assert (ids, roots, versions_of(kept, "updated_at")) == (
        [2, 3, 4], [3], ["2024-03-02T10:00:00Z", "2024-03-03T10:00:00Z", "2024-03-04T10:00:00Z"]
    )
    assert typed._python is None and kept._python is None and children._python is None


@pytest.mark.parametrize(
    "body",
    [
        {"things": [{"id": 1, "score": True}, {"id": 2, "score": 3}]},  # mixed kinds in one field
        {"things": [{"id": 1}, None]},  # a null among the records
        {"things": [{"id": 1}], "info": {"expires": "2024-03-01T10:00:00Z"}},  # a timestamp beside them
        {"things": "none"},
        {"other": []},
    ],
)
def test_a_page_the_reader_cannot_answer_for_is_left_to_the_python_parse(body):
    assert read_body(orjson.dumps(body), "things") is None


def test_bodies_that_are_not_one_json_object_are_left_to_the_python_parse():
    good = page_bytes("things", [{"id": 1}])
    for raw in (b"<html>login</html>", good[: len(good) // 2], good + good, b"[]", b""):
        assert read_body(raw, "things") is None, raw


@pytest.fixture(scope="module")
def sandbox():
    with SandboxProcess(seed=5, scale=0.2, lifetime=300) as sb:
        yield sb


@pytest.mark.parametrize("source", ["harvest", "zoho"])
def test_every_root_table_of_the_sandboxes_reads_the_same_both_ways(sandbox, source):
    catalog = harvest_catalog() if source == "harvest" else zoho_catalog()
    checked = 0
    for stream in catalog.roots:
        records = sandbox.harvest_records(stream.name) if source == "harvest" else sandbox.zoho_records(stream.name)
        records = [r for r in records if isinstance(r, dict)][:2000]
        if records:
            assert_same_family(catalog, stream, records)
            checked += 1
    assert checked >= len(catalog.roots) - 2, (source, checked)
