"""The Zoho slice end to end: sandbox over HTTP → real Dagster runs → a real DuckDB file."""

from __future__ import annotations

import duckdb
import pytest

from crm_assets_tests.conftest import today
from crm_assets_tests.sources.zoho.conftest import materialize_zoho, zoho_client, zoho_resources
from crm_assets_tests.zoho_truth import TABLES, assert_table_matches


@pytest.fixture(scope="module")
def full_load(sandbox, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("zoho") / "crm.duckdb")
    # Pages of 50: users (240 of them) span several pages.
    resources = zoho_resources(zoho_client(sandbox, per_page=50), path)
    result = materialize_zoho(sandbox, resources, sandbox.env["ZOHO_START_DATE"], today())
    return path, result


@pytest.mark.parametrize("table", TABLES)
def test_full_backfill_equals_the_api_row_by_row(sandbox, full_load, table):
    path, result = full_load
    assert result.success
    with duckdb.connect(path, read_only=True) as conn:
        assert_table_matches(conn, table, sandbox.zoho_records(table))


def test_checks_pass_and_only_users_reconcile_a_count(full_load):
    _, result = full_load
    checks = {(c.asset_key.path[-1], c.check_name): c for c in result.get_asset_check_evaluations()}
    failed = sorted(k for k, c in checks.items() if not c.passed)
    assert not failed, failed
    assert {t for t, name in checks if name == "row_count_matches_api"} == {"users"}
    assert {t for t, name in checks if name == "references_resolve"} == {"users", "roles", "territories"}
    assert all((t, "primary_key_unique_and_not_null") in checks for t in TABLES)
    assert checks[("users", "row_count_matches_api")].metadata["api_total"].value == 240


def test_users_without_a_modified_time_belong_to_the_first_partition(sandbox, full_load):
    path, _ = full_load
    undated = {u["id"] for u in sandbox.zoho_records("users") if u["Modified_Time"] is None}
    assert undated, "the sandbox seeds some users whose Modified_Time is null"
    with duckdb.connect(path, read_only=True) as conn:
        stored = {
            r[0] for r in conn.execute('SELECT id FROM zoho.users WHERE "Modified_Time" IS NULL').fetchall()
        }
    assert stored == undated
