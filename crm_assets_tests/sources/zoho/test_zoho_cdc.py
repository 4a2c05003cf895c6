"""Change data capture: today's partition picks up exactly the records edited in the sandbox."""

from __future__ import annotations

import duckdb

from crm_assets_tests.conftest import today
from crm_assets_tests.sources.zoho.conftest import materialize_zoho, zoho_client, zoho_resources
from crm_assets_tests.zoho_truth import TABLES, assert_table_matches


def every_row(path: str) -> dict[str, dict[str, tuple]]:
    """Every row of every Zoho table by id, `_synced_at` included."""
    with duckdb.connect(path, read_only=True) as conn:
        out = {}
        for table in TABLES:
            cursor = conn.execute(f"SELECT * FROM zoho.{table}")
            names = [d[0] for d in cursor.description]
            out[table] = {row[names.index("id")]: tuple(map(str, row)) for row in cursor.fetchall()}
        return out


def test_todays_partition_changes_exactly_the_edited_rows(sandbox, tmp_path):
    path = str(tmp_path / "crm.duckdb")
    resources = zoho_resources(zoho_client(sandbox, per_page=100), path)
    assert materialize_zoho(sandbox, resources, sandbox.env["ZOHO_START_DATE"], today()).success
    before = every_row(path)

    users = [u["id"] for u in sandbox.zoho_records("users")[100:103]]
    territory = sandbox.zoho_records("territories")[5]["id"]
    assert sandbox.zoho_modify("users", ids=users) == users
    assert sandbox.zoho_modify("territories", ids=[territory]) == [territory]
    sandbox.reset_zoho_stats()
    assert materialize_zoho(sandbox, resources, today()).success
    after = every_row(path)

    changed = {t: {i for i in after[t] if after[t][i] != before[t].get(i)} for t in TABLES}
    assert changed["users"] == set(users)
    assert changed["territories"] == {territory}
    assert not changed["currencies"]
    assert {t: set(after[t]) for t in TABLES} == {t: set(before[t]) for t in TABLES}
    with duckdb.connect(path, read_only=True) as conn:
        for table in ("users", "territories"):
            assert_table_matches(conn, table, sandbox.zoho_records(table))

    crm = sandbox.zoho_requests(api="crm")
    user_lists = [r for r in crm if r["path"].endswith("/users")]
    assert user_lists and all("If-Modified-Since" in r["headers"] for r in user_lists)
    assert all(dict(r["query"]).get("type") == "AllUsers" for r in user_lists)
    territory_lists = [r for r in crm if r["path"].endswith("/settings/territories")]
    assert territory_lists and all(
        "modified_time" in dict(r["query"]).get("filters", "") for r in territory_lists
    )
