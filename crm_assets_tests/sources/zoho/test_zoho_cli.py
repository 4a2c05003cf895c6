"""The standard Dagster CLI materializes the Zoho tables, with the API domain from the token."""

from __future__ import annotations

import subprocess

import duckdb

from crm_assets_tests.conftest import today
from crm_assets_tests.sources.harvest.test_cli import cli_env, materialize_command
from crm_assets_tests.zoho_truth import TABLES, assert_table_matches


def test_cli_materializes_a_partition_range_without_zoho_api_url(sandbox, tmp_path):
    env = cli_env(sandbox, tmp_path)
    env.pop("ZOHO_API_URL", None)
    first = sandbox.env["ZOHO_START_DATE"]
    done = subprocess.run(
        materialize_command('key:"zoho/*"', first, today()),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with duckdb.connect(env["CRM_ASSETS_DUCKDB_PATH"], read_only=True) as conn:
        for table in TABLES:
            assert_table_matches(conn, table, sandbox.zoho_records(table))
