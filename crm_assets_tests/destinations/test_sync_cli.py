"""`dagster asset materialize --select 'key:"salesforce/*"'` runs the shipped syncs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from crm_assets.destinations.specs import load_syncs
from crm_assets_tests.destinations.conftest import query_rows
from crm_assets_tests.destinations.test_example_syncs import load_whole_tables, marts_read_by

ROOT = Path(__file__).resolve().parents[2]


def test_the_dagster_cli_materializes_every_sync_without_leaving_a_secret(sfsb, warehouse_path, tmp_path):
    load_whole_tables(sfsb, warehouse_path)
    salesforce_syncs = [s for s in load_syncs() if s.destination == "salesforce"]
    models = " or ".join(f'key:"marts/{name}"' for name in marts_read_by(salesforce_syncs))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, **sfsb.env, "DAGSTER_HOME": str(home), "CRM_ASSETS_DUCKDB_PATH": warehouse_path}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "crm_assets.definitions",
            "--select",
            f'{models} or key:"salesforce/*"',  # the syncs and the models they read
        ],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for spec in salesforce_syncs:
        rows = query_rows(warehouse_path, spec.query)
        assert len(sfsb.salesforce_records(spec.object)) == len(rows) > 0, spec.name
    secrets = [
        sfsb.env[n] for n in ("SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN", "SALESFORCE_CLIENT_SECRET")
    ]
    secrets += sfsb.salesforce_issued_sessions()
    leaks = [
        str(p) for p in home.rglob("*") if p.is_file() and any(s.encode() in p.read_bytes() for s in secrets)
    ]
    assert leaks == []
