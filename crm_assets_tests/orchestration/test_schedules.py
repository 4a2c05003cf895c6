"""The daily schedule reads the closed day again, so a late edit is not lost; the intraday one
refreshes today."""

from __future__ import annotations

from datetime import UTC, datetime, time

import dagster as dg
import duckdb

from crm_assets.destinations.specs import load_syncs
from crm_assets.orchestration.schedules import daily_schedule, intraday_schedule, sync_schedules
from crm_assets_tests.orchestration.conftest import World


def at(day: str, hour: int, minute: int) -> datetime:
    return datetime.combine(datetime.fromisoformat(day).date(), time(hour, minute), UTC)


def tick(schedule: dg.ScheduleDefinition, world: World, when: datetime) -> dg.RunRequest:
    """One tick at `when`, evaluated as the daemon does: with the code location's definitions."""
    repository = dg.Definitions(
        assets=[world.harvest_assets], schedules=[schedule], resources=world.resources
    ).get_repository_def()
    result = schedule.evaluate_tick(
        dg.build_schedule_context(scheduled_execution_time=when, repository_def=repository)
    )
    (request,) = result.run_requests
    return request


def warehouse_name(world: World, client_id: int) -> str:
    with duckdb.connect(world.warehouse_path) as conn:
        return conn.execute("SELECT name FROM harvest.clients WHERE id = ?", [client_id]).fetchone()[0]


def test_daily_tick_requests_the_closed_day_and_today_in_one_run(world: World):
    request = tick(daily_schedule("harvest", world.harvest_assets), world, at(world.today, 0, 15))
    assert request.partition_key is None
    assert request.tags["dagster/asset_partition_range_start"] == world.yesterday
    assert request.tags["dagster/asset_partition_range_end"] == world.today
    intraday = tick(intraday_schedule("harvest", world.harvest_assets), world, at(world.today, 9, 45))
    assert intraday.partition_key == world.today
    assert "dagster/asset_partition_range_start" not in intraday.tags


def test_record_edited_late_on_day_d_is_in_the_warehouse_after_the_next_daily_tick(world: World):
    sb = world.sandbox
    late = f"{world.yesterday}T23:50:00Z"
    client = min(
        (c for c in sb.harvest_records("clients") if c["updated_at"] < late), key=lambda c: c["id"]
    )
    change = {"name": "Edited late yesterday", "updated_at": late}
    sb.harvest_modify("clients", ids=[client["id"]], set=change)
    edited = next(c for c in sb.harvest_records("clients") if c["id"] == client["id"])
    assert edited["updated_at"] == late and edited["name"] == "Edited late yesterday"

    # Today's partition alone (what a standard partitioned schedule asks for) misses it.
    intraday = tick(intraday_schedule("harvest", world.harvest_assets), world, at(world.today, 0, 45))
    assert world.run(intraday, world.harvest_assets).success
    assert warehouse_name(world, client["id"]) == client["name"]

    daily = tick(daily_schedule("harvest", world.harvest_assets), world, at(world.today, 0, 15))
    assert world.run(daily, world.harvest_assets).success
    assert warehouse_name(world, client["id"]) == edited["name"]


def test_each_sync_cron_is_a_schedule_of_that_sync():
    specs = [s for s in load_syncs() if s.schedule]
    schedules = {s.name: s for s in sync_schedules(specs)}
    for spec in specs:
        schedule = schedules[f"{spec.name}_schedule"]
        assert schedule.cron_schedule == spec.schedule
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
