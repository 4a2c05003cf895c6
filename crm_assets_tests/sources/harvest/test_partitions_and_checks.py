"""What partitions hold and what the checks see: the first partition, missing days, check-only runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb

from crm_assets.sources.harvest.assets import harvest_assets
from crm_assets_tests.conftest import harvest_assets_from, harvest_resources, materialize_harvest, today
from crm_assets_tests.harvest_truth import ALL_TABLES, assert_table_matches, expected_rows

CHECKED_ROOTS = ["clients", "users", "time_entries", "invoices"]


def days_ago(n: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=n)).isoformat()


def check_outcomes(result: dg.ExecuteInProcessResult, names: tuple[str, ...] = ("fresh", "row_count_matches_api")) -> dict:
    return {
        (e.asset_key.path[-1], e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
        if e.check_name in names
    }


def test_the_first_partition_holds_every_record_changed_before_the_start_date(sandbox, tmp_path):
    """A start date after most records' last edit still loads them all, into its first day."""
    start = days_ago(100)
    before = [r for r in sandbox.harvest_records("clients") if r["updated_at"][:10] < start]
    assert before, "the sandbox must hold clients last changed before the start date"
    path = str(tmp_path / "crm.duckdb")
    assets = harvest_assets_from(start)
    result = materialize_harvest(harvest_resources(sandbox, path), start, today(), assets=assets)
    assert result.success
    with duckdb.connect(path, read_only=True) as conn:
        for table in ALL_TABLES:
            assert_table_matches(conn, table, expected_rows(sandbox, table))
    assert all(check_outcomes(result).values())


def test_the_first_partition_alone_is_everything_up_to_its_end(sandbox, tmp_path):
    start = days_ago(100)
    path = str(tmp_path / "crm.duckdb")
    materialize_harvest(harvest_resources(sandbox, path), start, assets=harvest_assets_from(start), selection=["clients"])
    end = (datetime.fromisoformat(start) + timedelta(days=1)).date().isoformat()
    with duckdb.connect(path, read_only=True) as conn:
        assert_table_matches(conn, "clients", [r for r in expected_rows(sandbox, "clients") if r["updated_at"][:10] < end])


def test_row_count_and_freshness_fail_while_days_are_missing_and_pass_once_loaded(sandbox, tmp_path):
    """The last two days alone: the tables are short of the API's totals and not complete."""
    start = sandbox.env["HARVEST_START_DATE"]
    assets = harvest_assets_from(start)
    path = str(tmp_path / "crm.duckdb")
    resources = harvest_resources(sandbox, path)
    recent = materialize_harvest(resources, days_ago(1), today(), selection=CHECKED_ROOTS, assets=assets)
    outcomes = check_outcomes(recent)
    assert outcomes and not any(outcomes.values()), outcomes
    with duckdb.connect(path, read_only=True) as conn:
        stored = conn.execute("SELECT count(*) FROM harvest.clients").fetchone()[0]
    assert stored < len(sandbox.harvest_records("clients"))

    # An older stretch that still leaves a gap before the recent days: still not complete.
    gap = materialize_harvest(resources, start, days_ago(10), selection=CHECKED_ROOTS, assets=assets)
    assert not any(v for (table, check), v in check_outcomes(gap).items() if check == "fresh")

    caught_up = materialize_harvest(resources, days_ago(9), days_ago(2), selection=CHECKED_ROOTS, assets=assets)
    outcomes = check_outcomes(caught_up)
    assert len(outcomes) == 2 * len(CHECKED_ROOTS) and all(outcomes.values()), outcomes


def checks_alone(resources: dict, tables: list[str], assets: dg.AssetsDefinition = harvest_assets):
    """What the UI's *Execute* on checks launches: the checks selected, no asset, no partition."""
    selection = dg.AssetSelection.checks_for_assets(*[dg.AssetKey(["harvest", t]) for t in tables])
    return dg.materialize([assets], resources=resources, selection=selection)


def test_checks_run_on_their_own_against_the_warehouse(sandbox, tmp_path):
    path = str(tmp_path / "crm.duckdb")
    resources = harvest_resources(sandbox, path)
    assets = harvest_assets_from(sandbox.env["HARVEST_START_DATE"])
    materialize_harvest(resources, sandbox.env["HARVEST_START_DATE"], today(), selection=["clients", "contacts"], assets=assets)
    sandbox.reset_harvest_stats()
    result = checks_alone(resources, ["clients", "contacts"], assets)
    assert result.success
    assert not result.get_asset_materialization_events()
    evaluations = {(e.asset_key.path[-1], e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {
        ("clients", "primary_key_unique_and_not_null"): True,
        ("clients", "row_count_matches_api"): True,
        ("clients", "fresh"): True,
        ("contacts", "primary_key_unique_and_not_null"): True,
        ("contacts", "row_count_matches_api"): True,
        ("contacts", "fresh"): True,
        ("contacts", "references_resolve"): True,
    }
    # no listing is read: one one-record page per row-count check, for the API's total
    assert sandbox.harvest_stats()["by_route"] == {"/clients": 1, "/contacts": 1}

    # a client deleted at the source shows as a surplus (one no contact points at, so that
    # the references test of this module keeps its ground truth consistent)
    referenced = {r["client"]["id"] for r in sandbox.harvest_records("contacts")}
    victim = next(r["id"] for r in sandbox.harvest_records("clients") if r["id"] not in referenced)
    sandbox.harvest_delete("clients", [victim])
    result = checks_alone(resources, ["clients"], assets)
    outcomes = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert outcomes["row_count_matches_api"].passed is False
    meta = outcomes["row_count_matches_api"].metadata
    assert meta["table_rows"].value == meta["api_total"].value + 1


def test_checks_alone_on_an_empty_warehouse_fail_without_an_error(sandbox, tmp_path):
    resources = harvest_resources(sandbox, str(tmp_path / "crm.duckdb"))
    result = checks_alone(resources, ["tasks"])
    assert result.success
    outcomes = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert outcomes == {"primary_key_unique_and_not_null": True, "row_count_matches_api": False, "fresh": False}


def test_references_fail_while_their_target_is_not_loaded(sandbox, tmp_path):
    path = str(tmp_path / "crm.duckdb")
    resources = harvest_resources(sandbox, path)
    first = sandbox.env["HARVEST_START_DATE"]
    result = materialize_harvest(resources, first, today(), selection=["contacts"])
    outcome = {e.check_name: e for e in result.get_asset_check_evaluations()}["references_resolve"]
    clients = {r["client"]["id"] for r in sandbox.harvest_records("contacts")}
    assert outcome.passed is False
    assert outcome.metadata["client__id_dangling"].value == len(clients)
    result = materialize_harvest(resources, first, today(), selection=["clients", "contacts"])
    outcome = {e.check_name: e for e in result.get_asset_check_evaluations()}["references_resolve"]
    assert outcome.passed is True
