"""A sync runs by itself after a table its query reads changes, and not after a bad load."""

from __future__ import annotations

import dagster as dg
import duckdb

from crm_assets.destinations.assets import build_sync_definitions
from crm_assets.destinations.salesforce import SalesforceResource
from crm_assets.destinations.specs import load_syncs
from crm_assets_tests.orchestration.conftest import World


def requested(result: dg.EvaluateAutomationConditionsResult, keys: set[dg.AssetKey]) -> set[dg.AssetKey]:
    return {k for k in keys if result.get_num_requested(k)}


def test_a_sync_is_requested_after_its_upstream_table_materializes_with_passing_checks(world: World):
    specs = load_syncs()
    syncs = build_sync_definitions(specs)
    sync_keys = {dg.AssetKey(list(s.asset_key)) for s in specs}
    graph = dg.Definitions(
        assets=[world.harvest_assets, *syncs.assets],
        resources={**world.resources, "salesforce": SalesforceResource()},
    )
    # The syncs reading harvest.clients, and the syncs after them in the lineage (a contact's
    # account lookup needs its account pushed first): they run in the same tick.
    expected = {dg.AssetKey(list(s.asset_key)) for s in specs if ("harvest", "clients") in s.tables}
    assert expected  # the shipped syncs push Harvest clients
    asset_graph = graph.resolve_asset_graph()
    while grown := {k for k in sync_keys - expected if asset_graph.get(k).parent_keys & expected}:
        expected |= grown
    clients = dg.RunRequest(partition_key=world.today, asset_selection=[dg.AssetKey(["harvest", "clients"])])

    baseline = dg.evaluate_automation_conditions(graph, instance=world.instance)
    nothing_new = dg.evaluate_automation_conditions(graph, instance=world.instance, cursor=baseline.cursor)
    assert requested(nothing_new, sync_keys) == set()

    # A duplicate key: the blocking check fails, so no sync may push the table.
    with duckdb.connect(world.warehouse_path) as conn:
        conn.execute("INSERT INTO harvest.clients SELECT * FROM harvest.clients LIMIT 1")
    assert not world.run(clients, world.harvest_assets, raise_on_error=False).success
    after_bad = dg.evaluate_automation_conditions(
        graph, instance=world.instance, cursor=nothing_new.cursor
    )
    assert requested(after_bad, sync_keys) == set()

    with duckdb.connect(world.warehouse_path) as conn:
        conn.execute(
            "DELETE FROM harvest.clients "
            "WHERE rowid NOT IN (SELECT min(rowid) FROM harvest.clients GROUP BY id)"
        )
    assert world.run(clients, world.harvest_assets).success
    after_good = dg.evaluate_automation_conditions(graph, instance=world.instance, cursor=after_bad.cursor)
    assert requested(after_good, sync_keys) == expected

    handled = dg.evaluate_automation_conditions(graph, instance=world.instance, cursor=after_good.cursor)
    assert requested(handled, sync_keys) == set()
