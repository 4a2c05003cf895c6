"""Every schedule and sensor of crm_assets, from the source catalogs and the sync specs.

What starts running by default: only ``record_run_failures`` (it writes to the warehouse and,
when configured, a webhook). Everything that reads an API or writes to a CRM — the sources'
schedules and change sensors, the syncs' schedules and automation sensors, the models'
automation sensor — is switched on by an operator (README, "Schedules and sensors"), so that a
fresh ``dagster dev`` never starts pulling or pushing by itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from crm_assets.catalog import Catalog
from crm_assets.destinations.specs import SyncSpec
from crm_assets.orchestration.change_sensors import change_sensor
from crm_assets.orchestration.failures import build_failure_sensor
from crm_assets.orchestration.schedules import (
    daily_schedule,
    intraday_schedule,
    models_automation_sensor,
    sync_automation_sensors,
    sync_schedules,
)


def build_orchestration(
    sources: Sequence[tuple[Catalog, dg.AssetsDefinition]], syncs: Sequence[SyncSpec]
) -> dg.Definitions:
    """Schedules and sensors for each (catalog, its assets) source and each sync."""
    schedules: list[dg.ScheduleDefinition] = []
    sensors: list[dg.SensorDefinition] = []
    for catalog, assets in sources:
        schedules += [daily_schedule(catalog.source, assets), intraday_schedule(catalog.source, assets)]
        sensors.append(change_sensor(catalog, assets))
    schedules += sync_schedules(syncs)
    sensors += [*sync_automation_sensors(syncs), models_automation_sensor(), build_failure_sensor(syncs)]
    return dg.Definitions(schedules=schedules, sensors=sensors)
