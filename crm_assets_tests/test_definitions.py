"""The definitions surface: loadable by Dagster's own tools, and reviewed through a snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from crm_assets.definitions import defs

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = Path(__file__).with_name("snapshots") / "definitions.json"
BIN = Path(sys.executable).parent


def surface() -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": list(node.owners),
            "deps": sorted(d.to_user_string() for d in node.parent_keys),
            "partitions": type(node.partitions_def).__name__ if node.partitions_def else None,
            "backfill_policy": str(node.backfill_policy.policy_type) if node.backfill_policy else None,
            "pool": sorted(node.pools) if node.pools else None,
            "table": node.metadata.get("dagster/table_name"),
            "checks": sorted(
                (c.name, graph.get(c).blocking) for c in graph.asset_check_keys if c.asset_key == key
            ),
            "automation": node.automation_condition.get_label() if node.automation_condition else None,
        }
    repository = defs.get_repository_def()
    schedules = {
        s.name: {"cron": s.cron_schedule, "default_status": s.default_status.value}
        for s in repository.schedule_defs
    }
    sensors = {s.name: {"default_status": s.default_status.value} for s in repository.sensor_defs}
    return {"assets": assets, "resources": sorted(defs.resources), "schedules": schedules, "sensors": sensors}


def test_definitions_match_the_reviewed_snapshot():
    current = json.loads(json.dumps(surface()))
    if os.getenv("UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), "run UPDATE_SNAPSHOTS=1 pytest and review the diff"


def source_table_keys(graph) -> list[dg.AssetKey]:
    """Keys of the replicated tables (reverse-ETL syncs write elsewhere and own no table; the
    marts are checked by their dbt tests)."""
    return [key for key in graph.get_all_asset_keys() if graph.get(key).group_name not in ("reverse_etl", "marts")]


def test_every_column_of_a_model_has_a_description():
    graph = defs.resolve_asset_graph()
    models = [key for key in graph.get_all_asset_keys() if graph.get(key).group_name == "marts"]
    assert models
    for key in models:
        schema = graph.get(key).metadata["dagster/column_schema"]
        assert schema.columns and all(c.description for c in schema.columns), key.to_user_string()


def test_every_table_has_a_blocking_primary_key_check():
    graph = defs.resolve_asset_graph()
    for key in source_table_keys(graph):
        checks = {c.name: graph.get(c).blocking for c in graph.asset_check_keys if c.asset_key == key}
        assert checks.get("primary_key_unique_and_not_null") is True, key


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def test_dagster_cli_validates_the_code_location():
    env = {**os.environ, "HARVEST_ACCESS_TOKEN": "x", "HARVEST_ACCOUNT_ID": "1"}
    validate = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    check = subprocess.run(
        [str(BIN / "dg"), "check", "defs"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "success" in (check.stdout + check.stderr).lower()


def test_every_column_the_ui_shows_has_a_description():
    graph = defs.resolve_asset_graph()
    for key in source_table_keys(graph):
        schema = graph.get(key).metadata["dagster/column_schema"]
        undescribed = [c.name for c in schema.columns if not c.description]
        assert not undescribed, f"{key.to_user_string()}: {undescribed}"


def test_each_sync_is_an_asset_reading_the_tables_of_its_query_with_a_check_and_a_schedule():
    graph = defs.resolve_asset_graph()
    projects = graph.get(dg.AssetKey(["salesforce", "projects_to_harvest_projects"]))
    assert projects.group_name == "reverse_etl" and projects.kinds == {"duckdb", "salesforce"}
    # The table and the model its SQL reads, and the sync upserting the accounts its lookup
    # column points at.
    assert projects.parent_keys == {
        dg.AssetKey(["harvest", "projects"]),
        dg.AssetKey(["marts", "project_budget_burn"]),
        dg.AssetKey(["salesforce", "clients_to_accounts"]),
    }
    checks = {c.name for c in graph.asset_check_keys if c.asset_key == projects.key}
    assert checks == {"no_rejections"}
    assert {s.name for s in defs.schedules} >= {"projects_to_harvest_projects_schedule"}
