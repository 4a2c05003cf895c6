"""The 24 Harvest tables as daily-partitioned Dagster assets."""

from __future__ import annotations

import os

from crm_assets.sources.factory import build_source_assets, daily_partitions
from crm_assets.sources.harvest import harvest_catalog
from crm_assets.sources.harvest.reader import HarvestReader

DEFAULT_START_DATE = "2024-01-01"

harvest_partitions = daily_partitions(os.getenv("HARVEST_START_DATE") or DEFAULT_START_DATE)

harvest_assets = build_source_assets(
    harvest_catalog(),
    resource_key="harvest",
    reader=HarvestReader,
    partitions_def=harvest_partitions,
)
