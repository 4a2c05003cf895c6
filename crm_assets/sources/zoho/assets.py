"""The six Zoho CRM tables as daily-partitioned Dagster assets."""

from __future__ import annotations

import os

from crm_assets.sources.factory import build_source_assets, daily_partitions
from crm_assets.sources.zoho import zoho_catalog
from crm_assets.sources.zoho.reader import ZohoReader

DEFAULT_START_DATE = "2024-01-01"

zoho_partitions = daily_partitions(os.getenv("ZOHO_START_DATE") or DEFAULT_START_DATE)

zoho_assets = build_source_assets(
    zoho_catalog(),
    resource_key="zoho",
    reader=ZohoReader,
    partitions_def=zoho_partitions,
)
