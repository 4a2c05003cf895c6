"""The change sensors ask each API cheaply and request runs for exactly the tables that changed."""

from __future__ import annotations

import json

import dagster as dg

from crm_assets.orchestration.change_sensors import change_sensor
from crm_assets.sources.harvest import harvest_catalog
from crm_assets.sources.zoho import zoho_catalog
from crm_assets_tests.orchestration.conftest import World


class Ticker:
    """A sensor ticking against the world, its cursor carried from tick to tick as the daemon does."""

    def __init__(self, world: World, sensor: dg.SensorDefinition, assets: dg.AssetsDefinition):
        self.world, self.sensor, self.cursor = world, sensor, None
        self.repository = dg.Definitions(
            assets=[assets], sensors=[sensor], resources=world.resources
        ).get_repository_def()

    def tick(self) -> list[dg.RunRequest]:
        with dg.build_sensor_context(
            instance=self.world.instance,
            cursor=self.cursor,
            resources=self.world.resources,
            repository_def=self.repository,
        ) as context:
            result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor
        return list(result.run_requests or [])


def keys(source: str, *names: str) -> set[dg.AssetKey]:
    return {dg.AssetKey([source, n]) for n in names}


def test_harvest_changes_to_three_tables_request_exactly_those_tables(world: World):
    catalog = harvest_catalog()
    ticker = Ticker(world, change_sensor(catalog, world.harvest_assets), world.harvest_assets)
    sb = world.sandbox
    sb.reset_harvest_stats()
    assert ticker.tick() == []  # everything is loaded; roles' fingerprint is a baseline
    stats = sb.harvest_stats()["by_route"]
    # One request per root table, each asking for one record (roles has no change filter).
    assert sum(stats.values()) == len(catalog.roots)

    for stream in ("contacts", "tasks", "expense_categories"):
        sb.harvest_modify(stream, count=1)
    (request,) = ticker.tick()
    assert set(request.asset_selection) == keys("harvest", "contacts", "tasks", "expense_categories")
    assert request.partition_key == world.today
    assert ticker.tick() == []  # the same changes, already requested: nothing more while it runs

    assert world.run(request, world.harvest_assets).success
    assert ticker.tick() == []
    assert json.loads(ticker.cursor).keys() == {"roles"}  # only the fingerprint is kept


def test_a_changed_parent_brings_its_children_and_an_assignment_its_users_assignments(world: World):
    ticker = Ticker(world, change_sensor(harvest_catalog(), world.harvest_assets), world.harvest_assets)
    assert ticker.tick() == []
    world.sandbox.harvest_modify("invoices", count=1)
    world.sandbox.harvest_modify("project_users", count=1)
    (request,) = ticker.tick()
    assert set(request.asset_selection) == keys(
        "harvest", "invoices", "invoice_line_items", "invoice_messages", "invoice_payments",
        "project_users", "user_projects", "user_project_tasks",
    )
    assert world.run(request, world.harvest_assets).success
    assert ticker.tick() == []


def test_zoho_changes_request_exactly_the_changed_tables(world: World):
    ticker = Ticker(world, change_sensor(zoho_catalog(), world.zoho_assets), world.zoho_assets)
    sb = world.sandbox
    assert ticker.tick() == []  # organization, profiles and roles: baseline fingerprints

    for table in ("users", "territories", "currencies"):  # If-Modified-Since, filters, client-side
        sb.zoho_modify(table, count=1)
    sb.zoho_modify("roles", count=1)  # a full-table stream: its fingerprint changes
    (request,) = ticker.tick()
    assert set(request.asset_selection) == keys("zoho", "users", "territories", "currencies", "roles")
    assert request.partition_key == world.today

    assert world.run(request, world.zoho_assets).success
    assert ticker.tick() == []
