"""The single entry point: every asset, check and resource of crm_assets."""

from __future__ import annotations

import os

import dagster as dg
from dagster_duckdb import DuckDBResource

from crm_assets.sources.harvest.assets import harvest_assets
from crm_assets.sources.harvest.client import DEFAULT_API_URL, HarvestClient
from crm_assets.warehouse import Warehouse

DEFAULT_DUCKDB_PATH = "data/crm.duckdb"

defs = dg.Definitions(
    assets=[harvest_assets],
    resources={
        "harvest": HarvestClient(
            access_token=dg.EnvVar("HARVEST_ACCESS_TOKEN"),
            account_id=dg.EnvVar("HARVEST_ACCOUNT_ID"),
            api_url=os.getenv("HARVEST_API_URL") or DEFAULT_API_URL,
        ),
        "warehouse": Warehouse(
            duckdb=DuckDBResource(database=os.getenv("CRM_ASSETS_DUCKDB_PATH") or DEFAULT_DUCKDB_PATH)
        ),
    },
)
