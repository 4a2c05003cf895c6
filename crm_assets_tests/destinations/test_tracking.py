"""Change tracking and rejections against a real DuckDB file, and value conversion."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import duckdb
import orjson
import pyarrow as pa
import pytest

from crm_assets.destinations.specs import parse_sync
from crm_assets.destinations.tracking import OUTCOME_SCHEMA, SyncQueryError, SyncTracking
from crm_assets.destinations.values import convert_record, encode_records


def _spec(**fields):
    entry = {
        "name": "people",
        "destination": "salesforce",
        "object": "Contact",
        "mode": "update",
        "upsert": True,
        "key": "Ext__c",
        "query": "select id::varchar as Ext__c, name as LastName from src.people",
    }
    entry.update(fields)
    return parse_sync(entry, "test")


@pytest.fixture
def conn(tmp_path):
    c = duckdb.connect(str(tmp_path / "w.duckdb"))
    c.execute("create schema src")
    c.execute("create table src.people as select i as id, 'name ' || i as name from range(1, 101) t(i)")
    yield c
    c.close()


def _read(conn, spec, tmp_path, run="run-1"):
    spool = tmp_path / "spool.arrow"
    result = SyncTracking(conn).read_changes(spec, run, spool, rows_per_batch=30)
    table = pa.ipc.open_file(str(spool)).read_all()
    return result, table


def _outcomes(table, fail: set[str] = frozenset()):
    keys = table.column("__crm_row_key").to_pylist()
    hashes = table.column("__crm_row_hash").to_pylist()
    rows = [
        {
            "row_key": k,
            "row_hash": h,
            "success": k not in fail,
            "record_id": None if k in fail else f"003{k}",
            "error_code": "STRING_TOO_LONG" if k in fail else None,
            "message": "too long" if k in fail else None,
            "record": orjson.dumps({"Ext__c": k}).decode() if k in fail else None,
        }
        for k, h in zip(keys, hashes, strict=True)
    ]
    return pa.Table.from_pylist(rows, schema=OUTCOME_SCHEMA).to_reader()


def test_only_changed_rows_are_read_again(conn, tmp_path):
    spec = _spec()
    first, table = _read(conn, spec, tmp_path)
    assert (first.selected, first.to_send, first.unchanged) == (100, 100, 0)
    assert first.columns == ["Ext__c", "LastName"]  # the aliases as spelled, not DESCRIBE's names
    SyncTracking(conn).record_outcomes(spec, "run-1", _outcomes(table))
    again, table = _read(conn, spec, tmp_path, "run-2")
    assert (again.to_send, again.unchanged, table.num_rows) == (0, 100, 0)
    conn.execute("update src.people set name = name || ' (changed)' where id <= 10")
    changed, table = _read(conn, spec, tmp_path, "run-3")
    assert changed.to_send == 10
    assert sorted(table.column("Ext__c").to_pylist(), key=int) == [str(i) for i in range(1, 11)]


def test_rejected_rows_are_kept_sent_again_and_cleared(conn, tmp_path):
    spec = _spec()
    tracking = SyncTracking(conn)
    _, table = _read(conn, spec, tmp_path)
    tracking.record_outcomes(spec, "run-1", _outcomes(table, fail={"5", "6"}))
    assert tracking.open_rejections("people") == 2
    row = conn.execute(
        "select sync, run_id, key, record, error_code, message from reverse_etl.rejections where key = '5'"
    ).fetchone()
    assert row[:3] == ("people", "run-1", "5") and orjson.loads(row[3]) == {"Ext__c": "5"}
    assert row[4:] == ("STRING_TOO_LONG", "too long")
    _, table = _read(conn, spec, tmp_path, "run-2")
    assert sorted(table.column("Ext__c").to_pylist()) == ["5", "6"]  # unchanged, but rejected: sent again
    tracking.record_outcomes(spec, "run-2", _outcomes(table))
    assert tracking.open_rejections("people") == 0


def test_a_row_that_leaves_the_result_leaves_its_rejection(conn, tmp_path):
    spec = _spec()
    tracking = SyncTracking(conn)
    _, table = _read(conn, spec, tmp_path)
    tracking.record_outcomes(spec, "run-1", _outcomes(table, fail={"7"}))
    conn.execute("delete from src.people where id = 7")
    _read(conn, spec, tmp_path, "run-2")
    assert tracking.open_rejections("people") == 0


def test_null_keys_are_rejected_and_duplicate_keys_refused(conn, tmp_path):
    conn.execute("update src.people set id = null where id in (1, 2)")
    result, table = _read(conn, _spec(), tmp_path)
    assert (result.null_keys, result.to_send, table.num_rows) == (2, 98, 98)
    assert SyncTracking(conn).open_rejections("people") == 2
    conn.execute("update src.people set id = 3 where id = 4")
    with pytest.raises(SyncQueryError, match="Ext__c = '3' in 2 rows"):
        _read(conn, _spec(), tmp_path)


def test_truncate_sends_every_row_each_time(conn, tmp_path):
    spec = _spec(mode="truncate", upsert=False, key=None)
    first, table = _read(conn, spec, tmp_path)
    SyncTracking(conn).record_outcomes(spec, "run-1", _outcomes(table))
    again, _ = _read(conn, spec, tmp_path, "run-2")
    assert (first.to_send, again.to_send) == (100, 100)


def test_duplicate_column_names_are_refused(conn, tmp_path):
    spec = _spec(query="select id::varchar as Ext__c, name as LastName, name as lastname from src.people")
    with pytest.raises(SyncQueryError, match="more than once: LastName, lastname"):
        _read(conn, spec, tmp_path)


def test_values_are_converted_faithfully():
    record = {
        "D": date(2024, 2, 29),
        "T": datetime(2024, 3, 1, 1, 2, 3, 456789, tzinfo=timezone(timedelta(hours=2))),
        "Naive": datetime(2024, 3, 1, 1, 2, 3),
        "Amount": Decimal("12345678901234567.89"),
        "Sum": 0.1 + 0.2,
        "Flag": False,
        "Gone": None,
        "Nan": float("nan"),
        "Picks": ["a", "b"],
    }
    body = encode_records([convert_record(record)])
    assert body == (
        b'[{"D":"2024-02-29","T":"2024-02-29T23:02:03.456Z","Naive":"2024-03-01T01:02:03.000Z",'
        b'"Amount":12345678901234567.89,"Sum":0.3,"Flag":false,"Gone":null,"Nan":null,"Picks":"a;b"}]'
    )
    assert orjson.loads(body)[0]["T"] == datetime(2024, 2, 29, 23, 2, 3, 456000, tzinfo=UTC).isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")


def test_a_query_that_fails_names_the_sync(conn, tmp_path):
    with pytest.raises(
        SyncQueryError, match="sync people: the query fails: Catalog Error: Table with name missing"
    ):
        _read(conn, _spec(query="select 1 as Ext__c from src.missing"), tmp_path)
