"""Zoho's limits and errors: 429 and 5xx are retried, other errors name the table and Zoho's code."""

from __future__ import annotations

import duckdb

from crm_assets_tests.conftest import today
from crm_assets_tests.sources.zoho.conftest import materialize_zoho, zoho_client, zoho_resources
from crm_assets_tests.zoho_truth import assert_table_matches


def test_throttling_and_server_errors_are_retried_and_the_run_succeeds(sandbox, tmp_path):
    path = str(tmp_path / "crm.duckdb")
    client = zoho_client(sandbox, backoff_seconds=0.01, max_backoff_seconds=0.05)
    sandbox.reset_zoho_stats()
    sandbox.inject_fault("zoho", 429, count=3)
    sandbox.inject_fault("zoho", 503, count=2)
    try:
        result = materialize_zoho(sandbox, zoho_resources(client, path), sandbox.env["ZOHO_START_DATE"], today())
    finally:
        sandbox.clear_faults("zoho")
    assert result.success
    users = [m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "users"][0]
    assert users.materialization.metadata["run_rows_written"].value == 240
    retried = sum(
        m.materialization.metadata["run_api_retries"].value
        for m in result.get_asset_materialization_events()
        if "run_api_retries" in m.materialization.metadata
    )
    assert retried >= 5
    with duckdb.connect(path, read_only=True) as conn:
        assert_table_matches(conn, "users", sandbox.zoho_records("users"))


def test_a_bad_request_names_the_table_and_zohos_code(sandbox, tmp_path):
    sandbox.inject_fault("zoho", 400, count=1)
    try:
        result = materialize_zoho(
            sandbox, zoho_resources(zoho_client(sandbox), str(tmp_path / "crm.duckdb")), today(),
            raise_on_error=False,
        )
    finally:
        sandbox.clear_faults("zoho")
    assert not result.success
    message = "\n".join(e.event_specific_data.error.message for e in result.get_step_failure_events())
    assert "zoho.currencies: GET" in message and "HTTP 400" in message
