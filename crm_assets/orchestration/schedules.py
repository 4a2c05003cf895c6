"""Schedules: each source's daily and intraday loads, each sync's cron.

A standard partitioned schedule asks for the last partition only: with today's open day as the
last one, a record edited late on day D after D's last run would never be read again (its
``updated_at`` stays on D). So the daily schedule asks for the day that just closed *and* the
new open day as one range run (the source assets have a single-run backfill policy, so that is
one pass over the API), and the intraday schedule refreshes the open day.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from crm_assets.destinations.specs import SyncSpec
from crm_assets.orchestration.automation import sync_automation_sensor_name, sync_schedule_name

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# Shortly after midnight UTC, when the day before has closed.
DAILY_CRON = "15 0 * * *"
INTRADAY_CRON = "45 * * * *"


def day_key(partitions_def: dg.DailyPartitionsDefinition, instant: datetime) -> str:
    """The key of the daily partition that holds `instant` (days start at midnight in the
    partitions' time zone, as the sources' partitions do)."""
    return instant.astimezone(ZoneInfo(partitions_def.timezone)).strftime(partitions_def.fmt)


def _source_partitions(assets: dg.AssetsDefinition) -> dg.DailyPartitionsDefinition:
    partitions_def = assets.partitions_def
    if not isinstance(partitions_def, dg.DailyPartitionsDefinition):
        raise TypeError(f"{assets.node_def.name}: the source schedules need daily partitions")
    return partitions_def


def _source_schedule(
    source: str,
    assets: dg.AssetsDefinition,
    kind: str,
    cron: str,
    description: str,
    request: Callable[[dg.DailyPartitionsDefinition, datetime], dg.RunRequest],
) -> dg.ScheduleDefinition:
    """`<source>_<kind>`: every table of the source, off by default, asking `request` what to run."""
    partitions_def = _source_partitions(assets)

    @dg.schedule(
        name=f"{source}_{kind}",
        cron_schedule=cron,
        execution_timezone="UTC",
        target=dg.AssetSelection.assets(*assets.keys),
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=description,
        tags={"source": source},
    )
    def _tick(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        return request(partitions_def, context.scheduled_execution_time)

    return _tick


def daily_schedule(source: str, assets: dg.AssetsDefinition, cron: str = DAILY_CRON) -> dg.ScheduleDefinition:
    """`<source>_daily`: the day that just closed and today's open day, as one range run."""

    def closed_day_and_today(partitions_def: dg.DailyPartitionsDefinition, now: datetime) -> dg.RunRequest:
        today = day_key(partitions_def, now)
        first_day = day_key(partitions_def, partitions_def.start)
        yesterday = max(day_key(partitions_def, now - timedelta(days=1)), first_day)
        return dg.RunRequest(
            run_key=f"{source}_daily:{today}", tags={RANGE_START_TAG: yesterday, RANGE_END_TAG: today}
        )

    return _source_schedule(
        source, assets, "daily", cron,
        f"Every {source} table for yesterday and today (UTC) in one run: changes made late "
        "yesterday, after yesterday's last run, are read once more.",
        closed_day_and_today,
    )


def intraday_schedule(
    source: str, assets: dg.AssetsDefinition, cron: str = INTRADAY_CRON
) -> dg.ScheduleDefinition:
    """`<source>_intraday`: today's open partition (hourly by default, off the daily's minute)."""

    def today(partitions_def: dg.DailyPartitionsDefinition, now: datetime) -> dg.RunRequest:
        return dg.RunRequest(
            run_key=f"{source}_intraday:{now.isoformat()}", partition_key=day_key(partitions_def, now)
        )

    return _source_schedule(
        source, assets, "intraday", cron, f"Every {source} table for today (UTC): today's changes so far.", today
    )


def sync_schedules(specs: Sequence[SyncSpec]) -> list[dg.ScheduleDefinition]:
    """`<sync>_schedule` for each sync with a `schedule` cron."""
    return [
        dg.ScheduleDefinition(
            name=sync_schedule_name(s.name),
            target=dg.AssetSelection.assets(dg.AssetKey(list(s.asset_key))),
            cron_schedule=s.schedule,
            execution_timezone="UTC",
            default_status=dg.DefaultScheduleStatus.STOPPED,
            description=f"Pushes sync {s.name} on its cron (syncs.yaml `schedule`).",
        )
        for s in specs
        if s.schedule
    ]


def sync_automation_sensors(specs: Sequence[SyncSpec]) -> list[dg.AutomationConditionSensorDefinition]:
    """`<sync>_automation` for each sync: runs it when its upstream tables change.

    One sensor per sync, so that pausing one sync (see :mod:`.failures`) stops only its own.
    """
    return [
        dg.AutomationConditionSensorDefinition(
            name=sync_automation_sensor_name(s.name),
            target=dg.AssetSelection.assets(dg.AssetKey(list(s.asset_key))),
            default_status=dg.DefaultSensorStatus.STOPPED,
            description=f"Pushes sync {s.name} when a table its query reads changes.",
        )
        for s in specs
    ]


def models_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """`marts_automation`: rebuilds the dbt models of group `marts` when their sources change."""
    return dg.AutomationConditionSensorDefinition(
        name="marts_automation",
        target=dg.AssetSelection.groups("marts"),
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Builds the marts models whose upstream tables changed.",
    )
