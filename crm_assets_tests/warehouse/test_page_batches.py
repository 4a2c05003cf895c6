"""Pages converted to Arrow one by one as a load reads them, then joined into one write.

A load converts each page on its reading thread and joins a few pages into one transaction.
Pages of one write can disagree: a timestamp that Arrow parses on one page and leaves as text
on the next, a field the catalog does not know that appears on a later page only, or as text on
one page and a number on the next. The joined write must store exactly what writing the pages
one by one would. Real DuckDB files; every expected value is a literal written here.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dagster_duckdb import DuckDBResource

from crm_assets.catalog import parse_catalog
from crm_assets.warehouse.records import concat
from crm_assets.warehouse.store import Warehouse
from crm_assets.warehouse.table_write import TableWrite, WriteCounts

STREAM = parse_catalog(
    {
        "source": "tiny",
        "defaults": {"primary_key": ["id"], "replication": "incremental", "replication_key": "updated_at",
                     "pagination": "cursor", "updated_since": True},
        "streams": [{"name": "things", "endpoint": "/things", "envelope": "things",
                     "columns": {"id": "BIGINT", "born_on": "DATE", "updated_at": "TIMESTAMPTZ"}}],
    }
).stream("things")

PAGES = [
    [{"id": 1, "born_on": "2024-01-31", "updated_at": "2024-03-01T10:00:00Z"}],
    # Fractional seconds: Arrow leaves this page's timestamps as text; a key the catalog lacks.
    [{"id": 2, "born_on": "2024-02-29", "updated_at": "2024-03-01T11:00:00.500Z", "mood": "calm"}],
    # The unknown key again, now a number: the column is text since the page before.
    [{"id": 3, "born_on": None, "updated_at": "2024-03-01T12:00:00Z", "mood": 5}],
]


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(duckdb=DuckDBResource(database=str(tmp_path / "crm.duckdb")))


def test_pages_converted_one_by_one_and_joined_store_every_value(warehouse):
    with warehouse.session() as s:
        s.ensure_tables([STREAM])
        known = s.columns(STREAM)
        pages = [TableWrite(STREAM, records, "merge").converted(known) for records in PAGES]
        assert all(page.records == [] for page in pages)  # the API's records are let go of
        joined = TableWrite(STREAM, [], "merge", rows=concat([page.rows for page in pages]))
        counts = s.write_batch([joined])
        stored = s.conn.execute(
            "SELECT id, born_on::VARCHAR, updated_at, mood FROM tiny.things ORDER BY id"
        ).fetchall()
        mood_type = s.conn.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'things' AND column_name = 'mood'"
        ).fetchall()
    assert counts == {"things": WriteCounts(inserted=3)}
    assert stored == [
        (1, "2024-01-31", datetime(2024, 3, 1, 10, tzinfo=UTC), None),
        (2, "2024-02-29", datetime(2024, 3, 1, 11, 0, 0, 500000, tzinfo=UTC), "calm"),
        (3, None, datetime(2024, 3, 1, 12, tzinfo=UTC), "5"),
    ]
    assert mood_type == [("VARCHAR",)]


def test_a_column_added_by_a_write_that_rolled_back_is_added_again_by_the_next(warehouse):
    with warehouse.session() as s:
        s.ensure_tables([STREAM])
        known = s.columns(STREAM)
        bad = TableWrite(STREAM, [{"id": 1, "updated_at": "2024-03-01T10:00:00Z", "mood": "calm"},
                                  {"id": 2, "updated_at": "not a time"}], "merge")
        with pytest.raises(ValueError, match="updated_at"):
            s.write_batch([bad.converted(known)])
        assert "mood" in [c.name for c in known]  # the load now converts it as a known column
        s.write_batch([TableWrite(STREAM, [{"id": 3, "updated_at": "2024-03-02T10:00:00Z", "mood": "glad"}],
                                  "merge").converted(known)])
        stored = s.conn.execute("SELECT id, mood FROM tiny.things").fetchall()
    assert stored == [(3, "glad")]
