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
