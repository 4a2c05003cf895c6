"""The dbt models over Harvest data replicated from the sandbox: where they land, what they hold
(against the test's own arithmetic over the Harvest tables), their dbt tests as Dagster checks,
and a bad source table stopping everything downstream of it."""

from __future__ import annotations

import os
import shutil
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from crm_assets.definitions import defs
from crm_assets.destinations.assets import build_sync_definitions
from crm_assets.destinations.specs import load_syncs
from crm_assets.marts import PROJECT_DIR, ensure_manifest, marts_definitions, marts_models
from crm_assets_tests.conftest import harvest_assets_from, harvest_resources, today
from crm_assets_tests.destinations.conftest import query_rows, run_sql, salesforce_resource
from crm_assets_tests.models.conftest import HARVEST_MODELS, copy_of, first_day, model_keys


def approx_rows(rows: dict) -> dict:
    return {key: pytest.approx(values, abs=1e-6) for key, values in rows.items()}


def test_the_models_land_in_schema_marts(loaded_warehouse, marts_build):
    assert marts_build.success
    with duckdb.connect(loaded_warehouse, read_only=True) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables where table_schema like '%marts%'"
        ).fetchall()
    assert sorted(tables) == [("marts", name) for name in HARVEST_MODELS]
    built = {e.asset_key for e in marts_build.get_asset_materialization_events()}
    assert built == set(model_keys(HARVEST_MODELS))


def test_daily_project_hours_equal_the_time_entries_summed_by_the_test(loaded_warehouse, marts_build):
    expected: dict = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for e in query_rows(
        loaded_warehouse,
        "select project__id, spent_date, hours, billable, billable_rate from harvest.time_entries",
    ):
        row = expected[(e["project__id"], e["spent_date"])]
        row[0] += 1
        row[1] += e["hours"]
        if e["billable"]:
            row[2] += e["hours"]
            row[3] += e["hours"] * (e["billable_rate"] or 0)
    got = {
        (r["project_id"], r["spent_date"]): [
            r["entries"], r["hours"], r["billable_hours"], r["billable_amount"]
        ]
        for r in query_rows(loaded_warehouse, "select * from marts.project_daily_hours")
    }
    assert expected and got == approx_rows(expected)


def test_client_invoicing_equals_the_invoices_and_payments_added_up_by_the_test(
    loaded_warehouse, marts_build
):
    invoices = query_rows(
        loaded_warehouse, "select id, client__id, state, amount, due_amount, due_date from harvest.invoices"
    )
    payments = query_rows(loaded_warehouse, "select invoice_id, amount from harvest.invoice_payments")
    today_utc = datetime.now(UTC).date()
    expected = {}
    for (client_id,) in duckdb.connect(loaded_warehouse, read_only=True).execute(
        "select id from harvest.clients"
    ).fetchall():
        issued = [i for i in invoices if i["client__id"] == client_id and i["state"] != "draft"]
        ids = {i["id"] for i in issued}
        expected[client_id] = [
            len(issued),
            sum(i["amount"] for i in issued),
            sum(p["amount"] for p in payments if p["invoice_id"] in ids),
            sum(i["due_amount"] for i in issued if i["state"] == "open"),
            sum(i["due_amount"] for i in issued if i["state"] == "open" and i["due_date"] < today_utc),
            sum(i["due_amount"] for i in issued if i["state"] == "closed"),
        ]
    got = {
        r["client_id"]: [
            r["invoices"], r["invoiced_amount"], r["paid_amount"], r["outstanding_amount"],
            r["overdue_amount"], r["written_off_amount"],
        ]
        for r in query_rows(loaded_warehouse, "select * from marts.client_invoicing")
    }
    assert any(v[0] for v in expected.values()), "the sandbox account has invoices"
    assert got == approx_rows(expected)


def test_weekly_utilization_equals_the_test_s_own_weeks(loaded_warehouse, marts_build):
    capacity = {
        u["id"]: u["weekly_capacity"] / 3600
        for u in query_rows(loaded_warehouse, "select id, weekly_capacity from harvest.users")
    }
    hours: dict = defaultdict(lambda: [0.0, 0.0])
    entries = query_rows(
        loaded_warehouse, "select user__id, spent_date, hours, billable from harvest.time_entries"
    )
    for e in entries:
        day: date = e["spent_date"]
        week = hours[(e["user__id"], day - timedelta(days=day.weekday()))]
        week[0] += e["hours"]
        week[1] += e["hours"] if e["billable"] else 0.0
    expected = {
        key: [h, b, 100 * h / capacity[key[0]], 100 * b / capacity[key[0]]] for key, (h, b) in hours.items()
    }
    got = {
        (r["user_id"], r["week_start"]): [
            r["hours"], r["billable_hours"], r["utilization_pct"], r["billable_utilization_pct"]
        ]
        for r in query_rows(loaded_warehouse, "select * from marts.user_weekly_utilization")
    }
    assert expected and got == approx_rows(expected)


def test_dbt_tests_are_the_models_asset_checks_and_pass(marts_build):
    graph = defs.resolve_asset_graph()
    declared = {(c.asset_key, c.name) for c in graph.asset_check_keys if c.asset_key.path[0] == "marts"}
    names = " ".join(name for _, name in declared)
    for kind in ("unique_", "not_null_", "relationships_", "accepted_values_"):
        assert kind in names, kind
    evaluations = marts_build.get_asset_check_evaluations()
    built = set(model_keys(HARVEST_MODELS))
    assert {(e.asset_key, e.check_name) for e in evaluations} == {c for c in declared if c[0] in built}
    assert all(e.passed for e in evaluations)


def test_the_models_sit_between_the_tables_they_read_and_the_syncs_reading_them():
    graph = defs.resolve_asset_graph()
    invoicing = graph.get(dg.AssetKey(["marts", "client_invoicing"]))
    assert invoicing.group_name == "marts" and invoicing.kinds == {"dbt", "duckdb"}
    assert invoicing.parent_keys == {
        dg.AssetKey(["harvest", name]) for name in ("clients", "invoices", "invoice_payments")
    }
    assert graph.get(dg.AssetKey(["marts", "team_members"])).parent_keys == {
        dg.AssetKey(["harvest", "users"]), dg.AssetKey(["zoho", "users"])
    }
    assert dg.AssetKey(["salesforce", "clients_to_accounts"]) in invoicing.child_keys
    assert invoicing.pools == {"duckdb"}


def test_a_duplicate_key_fails_the_blocking_check_and_nothing_downstream_runs(
    models_sandbox, loaded_warehouse, marts_build, tmp_path
):
    path = copy_of(loaded_warehouse, tmp_path)
    run_sql(path, "insert into harvest.clients select * from harvest.clients order by id limit 1")
    models_sandbox.salesforce_reset()
    (accounts,) = [s for s in load_syncs() if s.name == "clients_to_accounts"]
    start, keys = first_day(), [
        dg.AssetKey(["harvest", "clients"]),
        dg.AssetKey(["marts", "client_invoicing"]),
        dg.AssetKey(["salesforce", "clients_to_accounts"]),
    ]
    result = dg.materialize(
        [harvest_assets_from(start), marts_models, *build_sync_definitions([accounts]).assets],
        selection=keys,
        resources={
            **harvest_resources(models_sandbox, path),
            "dbt": marts_definitions().resources["dbt"],
            "salesforce": salesforce_resource(models_sandbox.env),
        },
        tags={"dagster/asset_partition_range_start": today(), "dagster/asset_partition_range_end": today()},
        raise_on_error=False,
    )
    assert not result.success
    (key_check,) = [
        e for e in result.get_asset_check_evaluations()
        if e.asset_key == keys[0] and e.check_name == "primary_key_unique_and_not_null"
    ]
    assert not key_check.passed
    assert {e.asset_key for e in result.get_asset_materialization_events()} == {keys[0]}
    # The steps of the model and of the sync never start.
    assert {e.step_key for e in result.all_events if e.step_key} == {"harvest_tables"}
    assert models_sandbox.salesforce_records("Account") == []
    assert not [r for r in models_sandbox.salesforce_requests() if "/services/" in r["path"]]
    with duckdb.connect(path, read_only=True) as conn:  # the mart is still the one built before
        rows, clients = conn.execute(
            "select count(*), count(distinct client_id) from marts.client_invoicing"
        ).fetchone()
    assert rows == clients


def test_the_manifest_is_parsed_again_only_when_the_project_changed(tmp_path):
    project = tmp_path / "dbt_project"
    shutil.copytree(PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "target").mkdir()
    manifest = project / "target" / "manifest.json"
    shutil.copy(ensure_manifest(), manifest)
    an_hour_ago = time.time() - 3600
    for path in project.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago))
    os.utime(manifest, (an_hour_ago + 60, an_hour_ago + 60))

    began = time.perf_counter()
    assert ensure_manifest(project) == manifest
    assert manifest.stat().st_mtime == an_hour_ago + 60, "a fresh manifest is only read"
    assert time.perf_counter() - began < 1.0

    model = project / "models" / "project_daily_hours.sql"
    model.write_text(model.read_text().replace("count(*) as entries", "count(*) as time_entries"))
    ensure_manifest(project)
    assert manifest.stat().st_mtime >= model.stat().st_mtime
    assert "count(*) as time_entries" in manifest.read_text()
    assert not [p for p in (project / "target").iterdir() if p.name.startswith("parse-")]


def test_every_asset_links_to_the_code_declaring_it():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        references = graph.get(key).metadata["dagster/code_references"].code_references
        first = references[0]
        path = getattr(first, "file_path", None) or getattr(first, "url", "")
        if key.path[0] in ("harvest", "zoho"):
            assert path.endswith(f"sources/{key.path[0]}/catalog.yaml"), key
            lines = Path(path).read_text().splitlines() if Path(path).is_file() else None
            if lines:  # a local file: the line is the table's entry
                assert lines[first.line_number - 1].strip() == f"- name: {key.path[-1]}", key
        elif key.path[0] == "marts":
            assert path.endswith(f"models/{key.path[-1]}.sql"), key
        else:
            assert path.endswith("syncs.yaml"), key


def test_every_source_table_has_a_freshness_policy_from_its_catalog():
    from crm_assets.sources.harvest import harvest_catalog
    from crm_assets.sources.zoho import zoho_catalog

    graph = defs.resolve_asset_graph()
    for catalog in (harvest_catalog(), zoho_catalog()):
        for stream in catalog.streams:
            node = graph.get(dg.AssetKey([stream.source, stream.name]))
            policy = node.freshness_policy
            assert isinstance(policy, dg.FreshnessPolicy) and hasattr(policy, "fail_window"), stream.table
            assert policy.warn_window.to_timedelta() == timedelta(hours=stream.freshness_hours)
            assert policy.fail_window.to_timedelta() == timedelta(hours=2 * stream.freshness_hours)
            assert node.owners and node.tags["layer"] == "raw" and stream.source in node.kinds
