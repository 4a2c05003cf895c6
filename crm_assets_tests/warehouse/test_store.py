"""The DuckDB warehouse layer against real DuckDB files: DDL, the three write modes, unknown
fields, bad input, atomicity, the cross-process file lock and the check helpers.

Every expected value is a literal written here; nothing is computed by the code under test.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from dagster_duckdb import DuckDBResource

from crm_assets.catalog import parse_catalog
from crm_assets.sources.harvest import harvest_catalog
from crm_assets.warehouse.records import RecordError
from crm_assets.warehouse.store import SnapshotShrinkError, Warehouse, WarehouseSession
from crm_assets.warehouse.table_write import TableWrite, WriteCounts

REPO_ROOT = Path(__file__).resolve().parents[2]

HARVEST = harvest_catalog()
CLIENTS = HARVEST.stream("clients")
CONTACTS = HARVEST.stream("contacts")
INVOICES = HARVEST.stream("invoices")
INVOICE_LINE_ITEMS = HARVEST.stream("invoice_line_items")
ROLES = HARVEST.stream("roles")
USER_ROLES = HARVEST.stream("user_roles")
USERS = HARVEST.stream("users")
TIME_ENTRY_EXTERNAL_REFERENCE = HARVEST.stream("time_entry_external_reference")

DEFAULTS = {
    "primary_key": ["id"],
    "replication": "incremental",
    "replication_key": "updated_at",
    "pagination": "cursor",
    "updated_since": True,
}


def tiny_stream(columns: dict, name: str = "things"):
    """A one-stream catalog `tiny.<name>` with the given column spec."""
    doc = {
        "source": "tiny",
        "defaults": DEFAULTS,
        "streams": [{"name": name, "endpoint": f"/{name}", "envelope": name, "columns": columns}],
    }
    return parse_catalog(doc).stream(name)


THINGS_COLUMNS = {
    "id": "BIGINT",
    "name": "VARCHAR",
    "score": "DOUBLE",
    "active": "BOOLEAN",
    "born_on": "DATE",
    "meta": "JSON",
    "tags": "VARCHAR[]",
    "nums": "BIGINT[]",
    "ratios": "DOUBLE[]",
    "owner": {"id": "BIGINT", "name": "VARCHAR", "team": {"code": "VARCHAR"}},
    "created_at": "TIMESTAMPTZ",
    "updated_at": "TIMESTAMPTZ",
}
THINGS = tiny_stream(THINGS_COLUMNS)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ---- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def db_path(tmp_path) -> str:
    return str(tmp_path / "wh" / "warehouse.duckdb")


@pytest.fixture
def warehouse(db_path) -> Warehouse:
    return Warehouse(duckdb=DuckDBResource(database=db_path))


@pytest.fixture
def session(warehouse):
    with warehouse.session() as s:
        s.ensure_tables(HARVEST.streams)
        yield s


def rows(s: WarehouseSession, sql: str, params=None) -> list[tuple]:
    return s.conn.execute(sql, params or []).fetchall()


def columns_of(s: WarehouseSession, schema: str, table: str) -> list[tuple[str, str]]:
    return rows(
        s,
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position""",
        [schema, table],
    )


def synced(s: WarehouseSession, table: str, key: str = "id") -> dict:
    return dict(rows(s, f"SELECT {key}, _synced_at FROM {table}"))


def pause() -> None:
    """Let the clock move so that a rewritten `_synced_at` would differ from the old one."""
    time.sleep(0.05)


def client(id_: int, name: str, updated_at: str, **extra) -> dict:
    return {
        "id": id_,
        "name": name,
        "is_active": True,
        "address": None,
        "statement_key": f"key-{id_}",
        "currency": "EUR",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": updated_at,
        **extra,
    }


def client_rows(s: WarehouseSession) -> list[tuple]:
    return rows(s, "SELECT id, name, updated_at FROM harvest.clients ORDER BY id")


# ---- 1. ensure_tables ----------------------------------------------------------------------


THINGS_DDL = [
    ("id", "BIGINT"),
    ("name", "VARCHAR"),
    ("score", "DOUBLE"),
    ("active", "BOOLEAN"),
    ("born_on", "DATE"),
    ("meta", "JSON"),
    ("tags", "VARCHAR[]"),
    ("nums", "BIGINT[]"),
    ("ratios", "DOUBLE[]"),
    ("owner__id", "BIGINT"),
    ("owner__name", "VARCHAR"),
    ("owner__team__code", "VARCHAR"),
    ("created_at", "TIMESTAMP WITH TIME ZONE"),
    ("updated_at", "TIMESTAMP WITH TIME ZONE"),
    ("_synced_at", "TIMESTAMP WITH TIME ZONE"),
]


def test_ensure_tables_creates_schema_table_and_state(warehouse):
    with warehouse.session() as s:
        s.ensure_tables([THINGS])
        assert columns_of(s, "tiny", "things") == THINGS_DDL
        assert columns_of(s, "crm_assets_state", "stream_state") == [
            ("source", "VARCHAR"),
            ("stream", "VARCHAR"),
            ("cursor_value", "TIMESTAMP WITH TIME ZONE"),
            ("synced_through", "TIMESTAMP WITH TIME ZONE"),
            ("updated_at", "TIMESTAMP WITH TIME ZONE"),
        ]
        assert s.table_exists(THINGS)
        assert s.row_count(THINGS) == 0
        schema = s.table_schema(THINGS)
        assert [(c.name, c.type) for c in schema.columns][:2] == [("id", "bigint"), ("name", "varchar")]
        assert (schema.columns[-1].name, schema.columns[-1].type) == ("_synced_at", "timestamp with time zone")


CONTACT_DDL = [
    ("id", "BIGINT"),
    ("client__id", "BIGINT"),
    ("client__name", "VARCHAR"),
    ("title", "VARCHAR"),
    ("first_name", "VARCHAR"),
    ("last_name", "VARCHAR"),
    ("email", "VARCHAR"),
    ("phone_office", "VARCHAR"),
    ("phone_mobile", "VARCHAR"),
    ("fax", "VARCHAR"),
    ("created_at", "TIMESTAMP WITH TIME ZONE"),
    ("updated_at", "TIMESTAMP WITH TIME ZONE"),
    ("_synced_at", "TIMESTAMP WITH TIME ZONE"),
]


def test_ensure_tables_for_the_whole_harvest_catalog(session):
    assert columns_of(session, "harvest", "contacts") == CONTACT_DDL
    assert columns_of(session, "harvest", "user_roles") == [
        ("user_id", "BIGINT"),
        ("role_id", "BIGINT"),
        ("_synced_at", "TIMESTAMP WITH TIME ZONE"),
    ]
    tables = rows(
        session,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'harvest'",
    )
    assert tables == [(24,)]


def test_ensure_tables_is_idempotent_and_keeps_rows(warehouse):
    record = {"id": 1, "name": "one", "updated_at": "2024-03-01T00:00:00Z"}
    with warehouse.session() as s:
        s.ensure_tables([THINGS])
        s.write_batch([TableWrite(THINGS, [record], "merge")])
        s.ensure_tables([THINGS])
        s.ensure_tables([THINGS])
        assert columns_of(s, "tiny", "things") == THINGS_DDL
        assert rows(s, "SELECT id, name FROM tiny.things") == [(1, "one")]
    with warehouse.session() as s:
        s.ensure_tables([THINGS])
        assert columns_of(s, "tiny", "things") == THINGS_DDL
        assert rows(s, "SELECT id, name FROM tiny.things") == [(1, "one")]
        assert [c.name for c in s.columns(THINGS)] == [name for name, _ in THINGS_DDL[:-1]]


def test_ensure_tables_adds_a_column_the_catalog_gained(warehouse):
    v1 = tiny_stream({"id": "BIGINT", "name": "VARCHAR", "updated_at": "TIMESTAMPTZ"})
    v2 = tiny_stream(
        {"id": "BIGINT", "name": "VARCHAR", "rank": "DOUBLE", "updated_at": "TIMESTAMPTZ", "labels": "VARCHAR[]"}
    )
    with warehouse.session() as s:
        s.ensure_tables([v1])
        s.write_batch([TableWrite(v1, [{"id": 1, "name": "a", "updated_at": "2024-03-01T00:00:00Z"}], "merge")])
    with warehouse.session() as s:
        s.ensure_tables([v2])
        assert columns_of(s, "tiny", "things") == [
            ("id", "BIGINT"),
            ("name", "VARCHAR"),
            ("updated_at", "TIMESTAMP WITH TIME ZONE"),
            ("_synced_at", "TIMESTAMP WITH TIME ZONE"),
            ("rank", "DOUBLE"),
            ("labels", "VARCHAR[]"),
        ]
        assert rows(s, "SELECT id, name, rank, labels FROM tiny.things") == [(1, "a", None, None)]
        counts = s.write_batch(
            [TableWrite(v2, [{"id": 1, "name": "a", "rank": 2.5, "labels": ["x"], "updated_at": "2024-03-02T00:00:00Z"}], "merge")]
        )
        assert counts == {"things": WriteCounts(inserted=0, updated=1, deleted=0, unchanged=0)}
        assert rows(s, "SELECT id, name, rank, labels FROM tiny.things") == [(1, "a", 2.5, ["x"])]


def test_a_timestamp_column_dropped_from_the_catalog_does_not_break_writes(warehouse):
    v1 = tiny_stream({"id": "BIGINT", "paid_at": "TIMESTAMPTZ", "updated_at": "TIMESTAMPTZ"})
    v2 = tiny_stream({"id": "BIGINT", "updated_at": "TIMESTAMPTZ"})
    with warehouse.session() as s:
        s.ensure_tables([v1])
        s.write_batch([TableWrite(v1, [{"id": 1, "paid_at": "2024-03-01T00:00:00Z", "updated_at": "2024-03-01T00:00:00Z"}], "merge")])
    with warehouse.session() as s:
        s.ensure_tables([v2])
        s.write_batch([TableWrite(v2, [{"id": 2, "updated_at": "2024-03-02T00:00:00Z"}], "merge")])
        assert rows(s, "SELECT id FROM tiny.things ORDER BY id") == [(1,), (2,)]


# ---- 2. merge ------------------------------------------------------------------------------


def test_merge_inserts_new_rows(session):
    counts = session.write_batch(
        [TableWrite(CLIENTS, [client(1, "Acme", "2024-03-01T10:00:00Z"), client(2, "Globex", "2024-03-01T11:00:00Z")], "merge")]
    )
    assert counts == {"clients": WriteCounts(inserted=2, updated=0, deleted=0, unchanged=0)}
    assert client_rows(session) == [
        (1, "Acme", utc(2024, 3, 1, 10)),
        (2, "Globex", utc(2024, 3, 1, 11)),
    ]
    assert rows(session, "SELECT count(*) FROM harvest.clients WHERE _synced_at IS NULL") == [(0,)]


def test_merge_newer_replaces_older_does_not(session):
    session.write_batch(
        [TableWrite(CLIENTS, [client(1, "Acme", "2024-03-01T10:00:00Z"), client(2, "Globex", "2024-03-05T10:00:00Z")], "merge")]
    )
    before = synced(session, "harvest.clients")
    pause()
    counts = session.write_batch(
        [
            TableWrite(
                CLIENTS,
                [
                    client(1, "Acme Renamed", "2024-03-02T10:00:00Z"),  # newer: replaces
                    client(2, "Globex (stale)", "2024-03-04T10:00:00Z"),  # older: ignored
                    client(3, "Initech", "2024-03-02T12:00:00Z"),  # new
                ],
                "merge",
            )
        ]
    )
    assert counts == {"clients": WriteCounts(inserted=1, updated=1, deleted=0, unchanged=1)}
    assert client_rows(session) == [
        (1, "Acme Renamed", utc(2024, 3, 2, 10)),
        (2, "Globex", utc(2024, 3, 5, 10)),
        (3, "Initech", utc(2024, 3, 2, 12)),
    ]
    after = synced(session, "harvest.clients")
    assert after[2] == before[2]
    assert after[1] > before[1]


def test_merge_equal_timestamp_with_different_content_replaces(session):
    session.write_batch([TableWrite(CLIENTS, [client(1, "Acme", "2024-03-01T10:00:00Z")], "merge")])
    pause()
    counts = session.write_batch(
        [TableWrite(CLIENTS, [client(1, "Acme", "2024-03-01T10:00:00Z", currency="USD")], "merge")]
    )
    assert counts == {"clients": WriteCounts(inserted=0, updated=1, deleted=0, unchanged=0)}
    assert rows(session, "SELECT id, currency FROM harvest.clients") == [(1, "USD")]


def test_merge_identical_rewrite_changes_nothing(session):
    batch = [client(1, "Acme", "2024-03-01T10:00:00Z"), client(2, "Globex", "2024-03-01T11:00:00Z")]
    session.write_batch([TableWrite(CLIENTS, batch, "merge")])
    before = rows(session, "SELECT * FROM harvest.clients ORDER BY id")
    pause()
    counts = session.write_batch([TableWrite(CLIENTS, batch, "merge")])
    assert counts == {"clients": WriteCounts(inserted=0, updated=0, deleted=0, unchanged=2)}
    assert rows(session, "SELECT * FROM harvest.clients ORDER BY id") == before


def test_merge_identical_rewrite_of_every_type_changes_nothing(warehouse):
    record = {
        "id": 1,
        "name": "widget",
        "score": 0.1,
        "active": False,
        "born_on": "2024-02-29",
        "meta": {"a": [1, 2, {"b": None}], "c": "ü"},
        "tags": ["x", "y"],
        "nums": [3, 1, 2],
        "ratios": [0.5, 1.25],
        "owner": {"id": 9, "name": "Ann", "team": {"code": "T1"}},
        "created_at": "2024-01-01T00:00:00+02:00",
        "updated_at": "2024-03-01T10:00:00Z",
    }
    with warehouse.session() as s:
        s.ensure_tables([THINGS])
        s.write_batch([TableWrite(THINGS, [record], "merge")])
        before = rows(s, "SELECT * FROM tiny.things")
        pause()
        counts = s.write_batch([TableWrite(THINGS, [record], "merge")])
        assert counts == {"things": WriteCounts(inserted=0, updated=0, deleted=0, unchanged=1)}
        assert rows(s, "SELECT * FROM tiny.things") == before


def test_merge_duplicate_keys_in_one_batch_keep_the_newest(session):
    counts = session.write_batch(
        [
            TableWrite(
                CLIENTS,
                [
                    client(5, "first", "2024-03-01T10:00:00Z"),
                    client(5, "newest", "2024-03-03T10:00:00Z"),
                    client(5, "middle", "2024-03-02T10:00:00Z"),
                    client(6, "other", "2024-03-01T10:00:00Z"),
                ],
                "merge",
            )
        ]
    )
    assert counts == {"clients": WriteCounts(inserted=2, updated=0, deleted=0, unchanged=0)}
    assert client_rows(session) == [(5, "newest", utc(2024, 3, 3, 10)), (6, "other", utc(2024, 3, 1, 10))]
    # and against a stored row: the newest of the batch wins, the older duplicate does not
    counts = session.write_batch(
        [
            TableWrite(
                CLIENTS,
                [client(5, "newer still", "2024-03-04T10:00:00Z"), client(5, "older", "2024-03-02T00:00:00Z")],
                "merge",
            )
        ]
    )
    assert counts == {"clients": WriteCounts(inserted=0, updated=1, deleted=0, unchanged=0)}
    assert client_rows(session)[0] == (5, "newer still", utc(2024, 3, 4, 10))


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("2024-03-01T10:00:00+05:00", "2024-03-01T06:00:00Z"),
        ("2024-03-01T10:00:00Z", "2024-03-01T10:00:00.500Z"),
    ],
    ids=["utc-offset", "fractional-seconds"],
)
def test_merge_duplicate_keys_keep_the_newest_instant_not_the_largest_text(session, older, newer):
    session.write_batch([TableWrite(CLIENTS, [client(7, "newer", newer), client(7, "older", older)], "merge")])
    assert rows(session, "SELECT name FROM harvest.clients WHERE id = 7") == [("newer",)]


def test_merge_identical_rewrite_of_a_row_without_replication_key_changes_nothing(session):
    record = client(1, "Acme", None)
    session.write_batch([TableWrite(CLIENTS, [record], "merge")])
    before = synced(session, "harvest.clients")
    pause()
    counts = session.write_batch([TableWrite(CLIENTS, [record], "merge")])
    assert counts == {"clients": WriteCounts(inserted=0, updated=0, deleted=0, unchanged=1)}
    assert synced(session, "harvest.clients") == before


def test_merge_moves_the_cursor_forward_only(session):
    session.write_batch(
        [TableWrite(CLIENTS, [client(1, "Acme", "2024-03-02T10:00:00Z")], "merge")],
        {CLIENTS: utc(2024, 3, 2, 10)},
    )
    assert session.cursor(CLIENTS) == utc(2024, 3, 2, 10)
    assert session.cursor(CONTACTS) is None
    session.write_batch(
        [TableWrite(CLIENTS, [client(2, "Old", "2024-03-01T10:00:00Z")], "merge")],
        {CLIENTS: utc(2024, 3, 1, 10)},
    )
    assert session.cursor(CLIENTS) == utc(2024, 3, 2, 10)
    session.write_batch(
        [TableWrite(CLIENTS, [client(3, "New", "2024-03-03T10:00:00Z")], "merge")],
        {CLIENTS: utc(2024, 3, 3, 10)},
    )
    assert session.cursor(CLIENTS) == utc(2024, 3, 3, 10)


def test_complete_through_is_where_loaded_windows_stop_joining_up_from_the_beginning(session):
    session.record_window(CLIENTS, utc(2024, 3, 5), utc(2024, 3, 6))
    assert session.synced_through(CLIENTS) is None  # nothing loaded from the beginning yet
    session.record_window(CLIENTS, None, utc(2024, 3, 2))
    assert session.synced_through(CLIENTS) == utc(2024, 3, 2)
    session.record_window(CLIENTS, utc(2024, 3, 2), utc(2024, 3, 4))
    assert session.synced_through(CLIENTS) == utc(2024, 3, 4)
    session.record_window(CLIENTS, utc(2024, 3, 4), utc(2024, 3, 5))
    assert session.synced_through(CLIENTS) == utc(2024, 3, 6)
    assert rows(session, "SELECT count(*) FROM crm_assets_state.stream_windows WHERE stream = 'clients'") == [(1,)]
    assert session.synced_through(CONTACTS) is None


def test_cursor_dict_keyed_by_stream(session):
    cursors = {CLIENTS: utc(2024, 3, 2, 10)}
    session.write_batch([TableWrite(CLIENTS, [client(1, "Acme", "2024-03-02T10:00:00Z")], "merge")], cursors)
    assert session.cursor(CLIENTS) == utc(2024, 3, 2, 10)


# ---- 3. nested objects, lists, JSON, timestamps, dates -------------------------------------


def test_types_land_as_declared(warehouse):
    records = [
        {
            "id": 1,
            "name": "widget",
            "score": 1.5,
            "active": True,
            "born_on": "2024-02-29",
            "meta": {"a": [1, 2, {"b": None}], "c": "ü", "d": 1.25},
            "tags": ["x", "y"],
            "nums": [3, 1, 2],
            "ratios": [0.5, 1.25],
            "owner": {"id": 9, "name": "Ann", "team": {"code": "T1"}},
            "created_at": "2024-01-01T01:30:00+02:00",
            "updated_at": "2024-03-01T10:00:00Z",
        },
        {
            "id": 2,
            "name": None,
            "score": 2,  # an int in a DOUBLE column
            "active": False,
            "born_on": None,
            "meta": [1, "two"],
            "tags": [],
            "nums": None,
            "ratios": [1, None],
            "owner": None,
            "created_at": None,
            "updated_at": "2024-03-01T23:59:59.123456Z",
        },
        {"id": 3, "meta": "just text", "owner": {"id": 10}, "updated_at": "2024-03-02T00:00:00Z"},
    ]
    with warehouse.session() as s:
        s.ensure_tables([THINGS])
        s.write_batch([TableWrite(THINGS, records, "merge")])
        got = rows(
            s,
            """SELECT id, name, score, active, born_on, tags, nums, ratios, owner__id, owner__name,
                      owner__team__code, created_at, updated_at FROM tiny.things ORDER BY id""",
        )
        assert got == [
            (1, "widget", 1.5, True, date(2024, 2, 29), ["x", "y"], [3, 1, 2], [0.5, 1.25], 9, "Ann", "T1",
             utc(2023, 12, 31, 23, 30), utc(2024, 3, 1, 10)),
            (2, None, 2.0, False, None, [], None, [1.0, None], None, None, None,
             None, utc(2024, 3, 1, 23, 59, 59, 123456)),
            (3, None, None, None, None, None, None, None, 10, None, None, None, utc(2024, 3, 2)),
        ]
        meta = rows(s, "SELECT id, meta FROM tiny.things ORDER BY id")
        assert [(i, json.loads(m)) for i, m in meta] == [
            (1, {"a": [1, 2, {"b": None}], "c": "ü", "d": 1.25}),
            (2, [1, "two"]),
            (3, "just text"),
        ]
        # JSON is queryable as JSON, and the instants are exact in UTC
        assert rows(s, "SELECT meta->>'$.c', meta->'$.a[2]' FROM tiny.things WHERE id = 1") == [("ü", '{"b":null}')]
        assert rows(
            s, "SELECT epoch(updated_at)::BIGINT FROM tiny.things WHERE id = 1"
        ) == [(1709287200,)]


def test_harvest_nested_lists_and_dates(session):
    invoice = {
        "id": 100,
        "client": {"id": 1, "name": "Acme"},
        "estimate": None,
        "retainer": {"id": 5},
        "creator": {"id": 7, "name": "Bo"},
        "amount": 120.5,
        "state": "open",
        "issue_date": "2024-03-01",
        "due_date": "2024-03-31",
        "payment_options": ["ach", "credit_card"],
        "sent_at": "2024-03-01T08:15:00Z",
        "created_at": "2024-03-01T08:00:00Z",
        "updated_at": "2024-03-01T08:15:00Z",
    }
    role = {"id": 3, "name": "Admins", "user_ids": [11, 12], "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-02T00:00:00Z"}
    session.write_batch([TableWrite(INVOICES, [invoice], "merge"), TableWrite(ROLES, [role], "snapshot")])
    assert rows(
        session,
        """SELECT client__id, client__name, estimate__id, retainer__id, creator__name, amount,
                  issue_date, due_date, payment_options, sent_at FROM harvest.invoices""",
    ) == [(1, "Acme", None, 5, "Bo", 120.5, date(2024, 3, 1), date(2024, 3, 31), ["ach", "credit_card"],
           utc(2024, 3, 1, 8, 15))]
    assert rows(session, "SELECT id, user_ids FROM harvest.roles") == [(3, [11, 12])]


# ---- 4. unknown fields ---------------------------------------------------------------------


def contact(id_: int, updated_at: str = "2024-03-01T10:00:00Z", **extra) -> dict:
    return {
        "id": id_,
        "client": {"id": 1, "name": "Acme"},
        "first_name": f"First{id_}",
        "last_name": "Last",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": updated_at,
        **extra,
    }


def test_unknown_fields_become_columns_and_later_sessions_keep_filling_them(warehouse):
    first = contact(
        1,
        client={"id": 1, "name": "Acme", "currency": "EUR"},
        department="R&D",
        preferences={"lang": "en", "digest": True},
        score=7,
    )
    with warehouse.session() as s:
        s.ensure_tables([CONTACTS])
        counts = s.write_batch([TableWrite(CONTACTS, [first, contact(2)], "merge")])
        assert counts == {"contacts": WriteCounts(inserted=2, updated=0, deleted=0, unchanged=0)}
        assert columns_of(s, "harvest", "contacts") == [
            *CONTACT_DDL,
            ("client__currency", "VARCHAR"),
            ("department", "VARCHAR"),
            ("preferences", "JSON"),
            ("score", "JSON"),
        ]
        got = rows(s, "SELECT id, client__currency, department, preferences, score FROM harvest.contacts ORDER BY id")
        assert [(i, cur, dep, None if p is None else json.loads(p), sc) for i, cur, dep, p, sc in got] == [
            (1, "EUR", "R&D", {"lang": "en", "digest": True}, "7"),
            (2, None, None, None, None),
        ]

    later = contact(
        3,
        client={"id": 2, "name": "Globex", "currency": "USD"},
        department="Ops",
        preferences={"lang": "de"},
        score=9.5,
    )
    with warehouse.session() as s:
        s.ensure_tables([CONTACTS])
        extra = [(c.name, c.type) for c in s.columns(CONTACTS)][len(CONTACT_DDL) - 1 :]
        assert extra == [
            ("client__currency", "VARCHAR"),
            ("department", "VARCHAR"),
            ("preferences", "JSON"),
            ("score", "JSON"),
        ]
        counts = s.write_batch([TableWrite(CONTACTS, [later], "merge")])
        assert counts == {"contacts": WriteCounts(inserted=1, updated=0, deleted=0, unchanged=0)}
        got = rows(s, "SELECT client__currency, department, preferences, score FROM harvest.contacts WHERE id = 3")
        assert [(cur, dep, json.loads(p), sc) for cur, dep, p, sc in got] == [("USD", "Ops", {"lang": "de"}, "9.5")]
        # no duplicate columns were added, and an identical re-write is still a no-op
        assert len(columns_of(s, "harvest", "contacts")) == len(CONTACT_DDL) + 4
        before = rows(s, "SELECT * FROM harvest.contacts ORDER BY id")
        pause()
        counts = s.write_batch([TableWrite(CONTACTS, [first, contact(2), later], "merge")])
        assert counts == {"contacts": WriteCounts(inserted=0, updated=0, deleted=0, unchanged=3)}
        assert rows(s, "SELECT * FROM harvest.contacts ORDER BY id") == before


def test_unknown_field_found_in_a_later_batch_of_the_same_session(session):
    session.write_batch([TableWrite(CONTACTS, [contact(1)], "merge")])
    session.write_batch([TableWrite(CONTACTS, [contact(2, nickname="Bea")], "merge")])
    session.write_batch([TableWrite(CONTACTS, [contact(3, nickname="Cy")], "merge")])
    assert columns_of(session, "harvest", "contacts")[-1] == ("nickname", "VARCHAR")
    assert rows(session, "SELECT id, nickname FROM harvest.contacts ORDER BY id") == [
        (1, None),
        (2, "Bea"),
        (3, "Cy"),
    ]


def test_consumed_keys_are_not_columns_but_other_unknown_fields_are(session):
    invoice = {
        "id": 100,
        "client": {"id": 1, "name": "Acme"},
        "line_items": [{"id": 1, "kind": "Service"}],
        "portal_url": "https://example.test/i/100",
        "updated_at": "2024-03-01T00:00:00Z",
    }
    session.write_batch([TableWrite(INVOICES, [invoice], "merge", consumed_keys=("line_items",))])
    names = [n for n, _ in columns_of(session, "harvest", "invoices")]
    assert "line_items" not in names
    assert names[-1] == "portal_url"


def test_streams_that_ignore_unknown_fields_add_no_columns(session):
    references = [
        {"id": "card-1", "group_id": "board-1", "permalink": "https://trello.test/c/1", "service": "trello.com"},
    ]
    session.write_batch(
        [TableWrite(TIME_ENTRY_EXTERNAL_REFERENCE, references, "replace", parent_ids=[500], scope=[500])]
    )
    assert columns_of(session, "harvest", "time_entry_external_reference") == [
        ("time_entry_id", "BIGINT"),
        ("external_reference_id", "VARCHAR"),
        ("_synced_at", "TIMESTAMP WITH TIME ZONE"),
    ]
    assert rows(session, "SELECT time_entry_id, external_reference_id FROM harvest.time_entry_external_reference") == [
        (500, "card-1")
    ]


def test_unknown_key_containing_double_underscore_is_kept_in_later_sessions(warehouse):
    with warehouse.session() as s:
        s.ensure_tables([CONTACTS])
        s.write_batch([TableWrite(CONTACTS, [contact(1, ext__ref="A")], "merge")])
    with warehouse.session() as s:
        s.ensure_tables([CONTACTS])
        s.write_batch([TableWrite(CONTACTS, [contact(1, "2024-03-02T00:00:00Z", ext__ref="B")], "merge")])
        assert rows(s, "SELECT ext__ref FROM harvest.contacts") == [("B",)]


# ---- 5. replace ----------------------------------------------------------------------------


def line_item(id_: int, description: str, amount: float = 10.0) -> dict:
    return {"id": id_, "kind": "Service", "description": description, "quantity": 1.0, "unit_price": amount,
            "amount": amount, "taxed": False, "taxed2": False}


def line_items(s: WarehouseSession) -> list[tuple]:
    return rows(s, "SELECT invoice_id, id, description FROM harvest.invoice_line_items ORDER BY invoice_id, id")


def test_replace_makes_the_scoped_parents_children_exactly_the_incoming_rows(session):
    session.write_batch(
        [
            TableWrite(
                INVOICE_LINE_ITEMS,
                [line_item(11, "a"), line_item(12, "b"), line_item(21, "c"), line_item(31, "d")],
                "replace",
                parent_ids=[1, 1, 2, 3],
                scope=[1, 2, 3],
            )
        ]
    )
    assert line_items(session) == [(1, 11, "a"), (1, 12, "b"), (2, 21, "c"), (3, 31, "d")]
    before = synced(session, "harvest.invoice_line_items")
    pause()
    # invoice 1: 11 kept, 12 removed, 13 added; invoice 2: no items any more; 3 not in scope
    counts = session.write_batch(
        [
            TableWrite(
                INVOICE_LINE_ITEMS,
                [line_item(11, "a"), line_item(13, "e")],
                "replace",
                parent_ids=[1, 1],
                scope=[1, 2],
            )
        ]
    )
    assert counts == {"invoice_line_items": WriteCounts(inserted=1, updated=0, deleted=2, unchanged=1)}
    assert line_items(session) == [(1, 11, "a"), (1, 13, "e"), (3, 31, "d")]
    after = synced(session, "harvest.invoice_line_items")
    assert after[11] == before[11]
    assert after[31] == before[31]
    assert after[13] > before[11]


def test_replace_changed_child_and_identical_rewrite(session):
    def write(items, parent_ids):
        return session.write_batch(
            [TableWrite(INVOICE_LINE_ITEMS, items, "replace", parent_ids=parent_ids, scope=[1, 2])]
        )

    write([line_item(11, "a"), line_item(21, "b")], [1, 2])
    pause()
    counts = write([line_item(11, "a", amount=99.0), line_item(21, "b")], [1, 2])
    assert counts == {"invoice_line_items": WriteCounts(inserted=1, updated=0, deleted=1, unchanged=1)}
    assert rows(session, "SELECT id, amount FROM harvest.invoice_line_items ORDER BY id") == [(11, 99.0), (21, 10.0)]
    before = rows(session, "SELECT * FROM harvest.invoice_line_items ORDER BY id")
    pause()
    counts = write([line_item(11, "a", amount=99.0), line_item(21, "b")], [1, 2])
    assert counts == {"invoice_line_items": WriteCounts(inserted=0, updated=0, deleted=0, unchanged=2)}
    assert rows(session, "SELECT * FROM harvest.invoice_line_items ORDER BY id") == before


def test_replace_with_parent_and_children_in_one_batch(session):
    invoice = {"id": 1, "client": {"id": 1, "name": "Acme"}, "updated_at": "2024-03-01T00:00:00Z",
               "line_items": [line_item(11, "a")]}
    counts = session.write_batch(
        [
            TableWrite(INVOICES, [invoice], "merge", consumed_keys=("line_items",)),
            TableWrite(INVOICE_LINE_ITEMS, invoice["line_items"], "replace", parent_ids=[1], scope=[1]),
        ]
    )
    assert counts == {
        "invoices": WriteCounts(inserted=1, updated=0, deleted=0, unchanged=0),
        "invoice_line_items": WriteCounts(inserted=1, updated=0, deleted=0, unchanged=0),
    }
    assert line_items(session) == [(1, 11, "a")]


def test_a_stale_parent_does_not_replace_a_newer_parents_children(session):
    """Invoice 1 at 10:00 with line 100, then a stale copy at 09:00 with line 200."""

    def write(updated_at: str, item: dict, with_parent: bool = True) -> None:
        invoice = {"id": 1, "client": {"id": 1, "name": "Acme"}, "updated_at": updated_at, "line_items": [item]}
        parent = [TableWrite(INVOICES, [invoice], "merge", consumed_keys=("line_items",))] if with_parent else []
        session.write_batch(
            [
                *parent,
                TableWrite(INVOICE_LINE_ITEMS, [item], "replace", parent_ids=[1], scope=[1],
                           scope_versions=[updated_at], root=INVOICES),
            ]
        )

    write("2024-03-01T10:00:00Z", line_item(100, "ten"))
    write("2024-03-01T09:00:00Z", line_item(200, "nine"))
    assert rows(session, "SELECT id, updated_at FROM harvest.invoices") == [(1, utc(2024, 3, 1, 10))]
    assert line_items(session) == [(1, 100, "ten")]
    write("2024-03-01T08:00:00+01:00", line_item(201, "seven UTC"), with_parent=False)  # children alone
    assert line_items(session) == [(1, 100, "ten")]
    write("2024-03-01T10:00:00Z", line_item(100, "ten, edited"))  # the same version read again
    assert line_items(session) == [(1, 100, "ten, edited")]
    write("2024-03-01T11:00:00Z", line_item(300, "eleven"))
    assert line_items(session) == [(1, 300, "eleven")]


# ---- 6. snapshot ---------------------------------------------------------------------------


def role(id_: int, name: str, user_ids: list[int]) -> dict:
    return {"id": id_, "name": name, "user_ids": user_ids, "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z"}


def pair_synced(s: WarehouseSession) -> dict:
    return {(u, r): at for u, r, at in rows(s, "SELECT user_id, role_id, _synced_at FROM harvest.user_roles")}


def test_snapshot_makes_the_table_exactly_the_incoming_rows(session):
    def write(roles):
        user_ids = [u for r in roles for u in r["user_ids"]]
        parents = [r["id"] for r in roles for _ in r["user_ids"]]
        return session.write_batch(
            [
                TableWrite(ROLES, roles, "snapshot", consumed_keys=("user_ids",)),
                TableWrite(USER_ROLES, user_ids, "snapshot", parent_ids=parents, scope=[r["id"] for r in roles]),
            ]
        )

    write([role(1, "Admins", [11, 12]), role(2, "Viewers", [13]), role(3, "Editors", [11])])
    before_roles = synced(session, "harvest.roles")
    before_pairs = pair_synced(session)
    pause()
    counts = write([role(1, "Admins", [11, 12]), role(3, "Editors (renamed)", [12]), role(4, "Guests", [])])
    assert counts == {
        "roles": WriteCounts(inserted=2, updated=0, deleted=2, unchanged=1),
        "user_roles": WriteCounts(inserted=1, updated=0, deleted=2, unchanged=2),
    }
    assert rows(session, "SELECT id, name, user_ids FROM harvest.roles ORDER BY id") == [
        (1, "Admins", [11, 12]),
        (3, "Editors (renamed)", [12]),
        (4, "Guests", []),
    ]
    assert rows(session, "SELECT role_id, user_id FROM harvest.user_roles ORDER BY role_id, user_id") == [
        (1, 11),
        (1, 12),
        (3, 12),
    ]
    after_roles = synced(session, "harvest.roles")
    assert after_roles[1] == before_roles[1]
    assert after_roles[3] > before_roles[3]
    after_pairs = pair_synced(session)
    assert after_pairs[(11, 1)] == before_pairs[(11, 1)]
    assert after_pairs[(12, 1)] == before_pairs[(12, 1)]
    assert "user_ids" in [n for n, _ in columns_of(session, "harvest", "roles")]
    assert len(columns_of(session, "harvest", "roles")) == 6


def write_roles(session: WarehouseSession, roles: list[dict]) -> dict:
    user_ids = [u for r in roles for u in r["user_ids"]]
    parents = [r["id"] for r in roles for _ in r["user_ids"]]
    return session.write_batch(
        [
            TableWrite(ROLES, roles, "snapshot", consumed_keys=("user_ids",)),
            TableWrite(USER_ROLES, user_ids, "snapshot", parent_ids=parents),
        ]
    )


def test_a_snapshot_that_shrinks_a_table_by_more_than_its_share_is_refused(session):
    four = [role(1, "A", [11]), role(2, "B", [12]), role(3, "C", [13]), role(4, "D", [14])]
    write_roles(session, four)
    with pytest.raises(SnapshotShrinkError, match=r"harvest\.roles: .* 0 rows where the table holds 4.*allow_snapshot_shrink"):
        write_roles(session, [])
    with pytest.raises(SnapshotShrinkError, match=r"harvest\.roles"):
        write_roles(session, four[:1])
    assert rows(session, "SELECT count(*) FROM harvest.roles") == [(4,)]
    assert rows(session, "SELECT count(*) FROM harvest.user_roles") == [(4,)]
    write_roles(session, four[:2])  # half of the rows gone: within the default share of 0.5
    assert rows(session, "SELECT id FROM harvest.roles ORDER BY id") == [(1,), (2,)]
    session.allow_snapshot_shrink = True
    write_roles(session, [])
    assert rows(session, "SELECT count(*) FROM harvest.roles") == [(0,)]
    assert rows(session, "SELECT count(*) FROM harvest.user_roles") == [(0,)]


# ---- 7. bad input --------------------------------------------------------------------------


def user(id_: int, **fields) -> dict:
    return {"id": id_, "first_name": "U", "last_name": str(id_), "is_active": True, "weekly_capacity": 126000,
            "cost_rate": 50.0, "roles": ["Dev"], "updated_at": "2024-03-01T00:00:00Z", **fields}


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("weekly_capacity", "forty", "field 'weekly_capacity' should be BIGINT, got str 'forty'"),
        ("weekly_capacity", True, "field 'weekly_capacity' should be BIGINT, got bool 'True'"),
        ("weekly_capacity", 2**70, "field 'weekly_capacity' should be BIGINT, got int"),
        ("cost_rate", "cheap", "field 'cost_rate' should be DOUBLE, got str 'cheap'"),
        ("is_active", "yes", "field 'is_active' should be BOOLEAN, got str 'yes'"),
        ("is_active", 1, "field 'is_active' should be BOOLEAN, got int '1'"),
        ("roles", 5, "field 'roles' should be VARCHAR[], got int '5'"),
    ],
)
def test_a_value_that_does_not_fit_its_column_raises_record_error(session, field, value, expected):
    batch = [user(1), user(42, **{field: value}), user(3)]
    with pytest.raises(RecordError) as err:
        session.write_batch([TableWrite(USERS, batch, "merge")])
    message = str(err.value)
    assert message.startswith("harvest.users: record id=42: ")
    assert expected in message
    assert session.row_count(USERS) == 0


def test_a_missing_primary_key_raises_record_error(session):
    batch = [client(1, "Acme", "2024-03-01T00:00:00Z"), {"name": "No id", "updated_at": "2024-03-01T00:00:00Z"}]
    with pytest.raises(RecordError) as err:
        session.write_batch([TableWrite(CLIENTS, batch, "merge")])
    assert str(err.value) == "harvest.clients: record #1 of its page: primary key field 'id' is missing"
    assert session.row_count(CLIENTS) == 0


def test_a_missing_composite_key_part_raises_record_error(session):
    with pytest.raises(RecordError) as err:
        session.write_batch(
            [TableWrite(TIME_ENTRY_EXTERNAL_REFERENCE, [{"id": "a"}, {"group_id": "g"}], "replace",
                        parent_ids=[1, 1], scope=[1])]
        )
    assert "harvest.time_entry_external_reference: record #1 of its page" in str(err.value)
    assert "'external_reference_id' is missing" in str(err.value)


def test_a_string_where_a_nested_object_belongs_raises_record_error(session):
    batch = [contact(1), contact(3, client="Acme Corp")]
    with pytest.raises(RecordError) as err:
        session.write_batch([TableWrite(CONTACTS, batch, "merge")])
    assert str(err.value) == (
        "harvest.contacts: record id=3: field 'client' should be an object, got str 'Acme Corp'"
    )


def test_a_string_where_a_deeply_nested_object_belongs_raises_record_error(warehouse):
    with warehouse.session() as s:
        s.ensure_tables([THINGS])
        with pytest.raises(RecordError) as err:
            s.write_batch([TableWrite(THINGS, [{"id": 8, "owner": {"id": 1, "team": "T1"}}], "merge")])
        assert str(err.value) == "tiny.things: record id=8: field 'owner.team' should be an object, got str 'T1'"


def test_an_empty_string_where_a_nested_object_belongs_raises_record_error(session):
    with pytest.raises(RecordError, match=r"harvest.contacts: record id=4: field 'client'"):
        session.write_batch([TableWrite(CONTACTS, [contact(4, client="")], "merge")])


@pytest.mark.parametrize(
    ("field", "value", "cast"),
    [("created_at", "yesterday-ish", "TIMESTAMPTZ"), ("issue_date", "2024-02-30", "DATE")],
)
def test_an_unparseable_timestamp_or_date_raises_record_error(session, field, value, cast):
    stream = CONTACTS if cast == "TIMESTAMPTZ" else INVOICES
    good = {"id": 1, "updated_at": "2024-03-01T00:00:00Z"}
    bad = {"id": 77, "updated_at": "2024-03-01T00:00:00Z", field: value}
    with pytest.raises(RecordError) as err:
        session.write_batch([TableWrite(stream, [good, bad], "merge")])
    assert str(err.value) == f"{stream.table}: record id=77: field {field!r} should be {cast}, got {value!r}"


def test_a_number_where_varchar_belongs_is_stored_as_text(session):
    batch = [
        client(1, "Acme", "2024-03-01T00:00:00Z"),
        client(2, 12345, "2024-03-01T00:00:00Z", address=1.5, statement_key=True),
        client(3, "Nested", "2024-03-01T00:00:00Z", address={"street": "Main"}),
    ]
    session.write_batch([TableWrite(CLIENTS, batch, "merge")])
    assert rows(session, "SELECT id, name, address, statement_key FROM harvest.clients ORDER BY id") == [
        (1, "Acme", None, "key-1"),
        (2, "12345", "1.5", "true"),
        (3, "Nested", '{"street":"Main"}', "key-3"),
    ]


def test_a_fractional_number_where_bigint_belongs_raises_record_error(session):
    with pytest.raises(RecordError, match=r"harvest.users: record id=5: field 'weekly_capacity'"):
        session.write_batch([TableWrite(USERS, [user(5, weekly_capacity=1.5)], "merge")])


def test_a_boolean_where_double_belongs_raises_record_error(session):
    with pytest.raises(RecordError, match=r"harvest.users: record id=5: field 'cost_rate'"):
        session.write_batch([TableWrite(USERS, [user(5, cost_rate=True)], "merge")])


def test_a_string_where_a_list_belongs_raises_record_error(session):
    with pytest.raises(RecordError, match=r"harvest.users: record id=5: field 'roles'"):
        session.write_batch([TableWrite(USERS, [user(5, roles="Dev")], "merge")])


# ---- 8. atomicity --------------------------------------------------------------------------


def test_a_failing_second_write_rolls_back_the_whole_batch_and_the_cursor(session):
    session.write_batch(
        [TableWrite(CLIENTS, [client(1, "Acme", "2024-03-01T00:00:00Z")], "merge")],
        {CLIENTS: utc(2024, 3, 1)},
    )
    before = rows(session, "SELECT * FROM harvest.clients")
    # the second write fails at DuckDB's cast of created_at, before anything is written
    with pytest.raises(RecordError, match=r"harvest.contacts: record id=9: field 'created_at'"):
        session.write_batch(
            [
                TableWrite(
                    CLIENTS,
                    [client(1, "Acme v2", "2024-03-02T00:00:00Z"), client(2, "Globex", "2024-03-02T00:00:00Z",
                                                                       tier="gold")],
                    "merge",
                ),
                TableWrite(CONTACTS, [contact(9, created_at="not a time")], "merge"),
            ],
            {CLIENTS: utc(2024, 3, 2), CONTACTS: utc(2024, 3, 2)},
        )
    assert rows(session, "SELECT * FROM harvest.clients") == before
    assert rows(session, "SELECT count(*) FROM harvest.contacts") == [(0,)]
    assert "tier" not in [n for n, _ in columns_of(session, "harvest", "clients")]
    assert session.cursor(CLIENTS) == utc(2024, 3, 1)
    assert session.cursor(CONTACTS) is None


def test_a_second_write_rejected_before_the_transaction_writes_nothing(session):
    with pytest.raises(RecordError):
        session.write_batch(
            [
                TableWrite(CLIENTS, [client(1, "Acme", "2024-03-02T00:00:00Z", tier="gold")], "merge"),
                TableWrite(CONTACTS, [contact(9, client=[1, 2])], "merge"),
            ],
            {CLIENTS: utc(2024, 3, 2)},
        )
    assert session.row_count(CLIENTS) == 0
    assert "tier" not in [n for n, _ in columns_of(session, "harvest", "clients")]
    assert session.cursor(CLIENTS) is None
    # and the session is still usable
    session.write_batch([TableWrite(CLIENTS, [client(1, "Acme", "2024-03-02T00:00:00Z")], "merge")])
    assert session.row_count(CLIENTS) == 1


def test_the_session_stays_usable_after_a_rolled_back_batch(session):
    with pytest.raises(Exception):  # noqa: B017
        session.write_batch([TableWrite(CONTACTS, [contact(9, created_at="not a time")], "merge")])
    session.write_batch([TableWrite(CLIENTS, [client(1, "Acme", "2024-03-01T00:00:00Z")], "merge")])
    assert session.row_count(CLIENTS) == 1


def test_a_failed_batch_leaves_the_file_consistent_for_the_next_session(warehouse):
    with warehouse.session() as s:
        s.ensure_tables([CLIENTS, CONTACTS])
        with pytest.raises(Exception):  # noqa: B017
            s.write_batch(
                [
                    TableWrite(CLIENTS, [client(1, "Acme", "2024-03-01T00:00:00Z", tier="gold")], "merge"),
                    TableWrite(CONTACTS, [contact(9, updated_at="31/02/2024")], "merge"),
                ]
            )
    with warehouse.session() as s:
        s.ensure_tables([CLIENTS, CONTACTS])
        assert s.row_count(CLIENTS) == 0
        assert "tier" not in [c.name for c in s.columns(CLIENTS)]
        s.write_batch([TableWrite(CLIENTS, [client(1, "Acme", "2024-03-01T00:00:00Z", tier="gold")], "merge")])
        assert rows(s, "SELECT id, tier FROM harvest.clients") == [(1, "gold")]


# ---- 9. the file lock ----------------------------------------------------------------------

CHILD = r"""
import json, sys, time
from dagster_duckdb import DuckDBResource
from crm_assets.warehouse.store import Warehouse

path, timeout = sys.argv[1], float(sys.argv[2])
warehouse = Warehouse(duckdb=DuckDBResource(database=path), lock_timeout_seconds=timeout)
print(json.dumps({"ready": time.time()}), flush=True)
began = time.monotonic()
try:
    with warehouse.session() as s:
        entered = time.time()
        seen = s.conn.execute("SELECT count(*) FROM harvest.clients").fetchone()[0]
    print(json.dumps({"entered": entered, "waited": time.monotonic() - began, "seen": seen}), flush=True)
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "module": type(exc).__module__,
                      "waited": time.monotonic() - began}), flush=True)
"""

CHILD_START_SECONDS = 120


def start_child(db_path: str, timeout: float, stderr_path: Path) -> subprocess.Popen:
    """A separate Python process that opens `Warehouse(...).session()` on the same file."""
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    with open(stderr_path, "w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, db_path, str(timeout)],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": pythonpath},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )


def read_line(proc: subprocess.Popen, stderr_path: Path) -> dict:
    """The child's next JSON line, waiting at most CHILD_START_SECONDS."""
    readable, _, _ = select.select([proc.stdout], [], [], CHILD_START_SECONDS)
    if not readable:
        proc.kill()
        pytest.fail("the child process did not answer in time")
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=CHILD_START_SECONDS)
        pytest.fail(f"the child process died: {stderr_path.read_text()}")
    return json.loads(line)


def test_a_second_process_waits_for_the_first_session_to_close(warehouse, db_path, tmp_path):
    hold = 1.5
    err = tmp_path / "child.err"
    with warehouse.session() as s:
        s.ensure_tables([CLIENTS])
        s.write_batch([TableWrite(CLIENTS, [client(1, "Acme", "2024-03-01T00:00:00Z")], "merge")])
        proc = start_child(db_path, 60, err)
        try:
            read_line(proc, err)  # imported and about to open its session
            time.sleep(hold)
            assert proc.poll() is None, "the child finished while the first session was open"
            released = time.time()
        except BaseException:
            proc.kill()
            raise
    result = read_line(proc, err)
    proc.wait(timeout=CHILD_START_SECONDS)
    assert "error" not in result, (result, err.read_text())
    assert result["entered"] >= released
    assert hold - 0.2 <= result["waited"] < 30
    assert result["seen"] == 1


def test_a_short_lock_timeout_raises_while_the_lock_is_held(warehouse, db_path, tmp_path):
    err = tmp_path / "child.err"
    with warehouse.session() as s:
        s.ensure_tables([CLIENTS])
        proc = start_child(db_path, 1.0, err)
        try:
            read_line(proc, err)
            result = read_line(proc, err)
        finally:
            proc.kill()
            proc.wait(timeout=CHILD_START_SECONDS)
    assert (result.get("module", "").split(".")[0], result.get("error")) == ("filelock", "Timeout"), result
    assert 0.9 <= result["waited"] < 10
    # once the first session has closed, the same short timeout gets in at once
    proc = start_child(db_path, 1.0, err)
    read_line(proc, err)
    result = read_line(proc, err)
    proc.wait(timeout=CHILD_START_SECONDS)
    assert "error" not in result, (result, err.read_text())
    assert result["waited"] < 1.0
    assert result["seen"] == 0


def test_the_lock_file_sits_beside_the_database(warehouse, db_path):
    with warehouse.session():
        assert Path(f"{db_path}.lock").exists()


# ---- 10. check helpers ---------------------------------------------------------------------


def test_primary_key_problems(session):
    assert session.primary_key_problems(CLIENTS) == (0, 0, [])
    session.write_batch(
        [TableWrite(CLIENTS, [client(1, "Acme", "2024-03-01T00:00:00Z"), client(2, "Globex", "2024-03-01T00:00:00Z")],
                    "merge")]
    )
    assert session.primary_key_problems(CLIENTS) == (0, 0, [])
    session.conn.execute(
        """INSERT INTO harvest.clients (id, name) VALUES (1, 'dupe of 1'), (2, 'dupe of 2'), (2, 'again'),
           (NULL, 'no key')"""
    )
    nulls, dupes, sample = session.primary_key_problems(CLIENTS)
    assert (nulls, dupes, sorted(sample)) == (1, 2, [[1], [2]])


def test_primary_key_problems_on_a_composite_key(session):
    session.conn.execute(
        "INSERT INTO harvest.user_roles (user_id, role_id) VALUES (11, 1), (11, 1), (11, 2), (NULL, 1), (12, NULL)"
    )
    assert session.primary_key_problems(USER_ROLES) == (2, 1, [[11, 1]])


def test_dangling_references(session):
    session.write_batch([TableWrite(CLIENTS, [client(1, "Acme", "2024-03-01T00:00:00Z")], "merge")])
    session.write_batch([TableWrite(CONTACTS, [contact(10)], "merge")])  # client 1 exists
    assert session.dangling_references(CONTACTS, "client__id", CLIENTS) == (0, [])
    session.conn.execute(
        """INSERT INTO harvest.contacts (id, client__id) VALUES
           (11, 99), (12, 99), (13, 98), (14, NULL), (15, 1)"""
    )
    count, sample = session.dangling_references(CONTACTS, "client__id", CLIENTS)
    # counts distinct missing keys (99 is referenced twice), NULL is not dangling
    assert (count, sorted(sample)) == (2, [98, 99])


def test_row_count_and_table_exists(session):
    assert session.row_count(CLIENTS) == 0
    session.conn.execute("INSERT INTO harvest.clients (id) VALUES (1), (2), (3)")
    assert session.row_count(CLIENTS) == 3
    assert session.table_exists(CLIENTS)
    assert not session.table_exists(THINGS)
