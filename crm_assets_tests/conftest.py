"""Shared fixtures: a real sandbox process over HTTP, a real DuckDB file, real Dagster runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from crm_assets.sandbox import SandboxProcess
from crm_assets.sources.factory import build_source_assets, daily_partitions
from crm_assets.sources.harvest import harvest_catalog
from crm_assets.sources.harvest.assets import harvest_assets
from crm_assets.sources.harvest.client import HarvestClient
from crm_assets.sources.harvest.reader import HarvestReader
from crm_assets.warehouse import Warehouse
from crm_assets_tests.zoho_modules import zoho_sandbox, zsb  # noqa: F401  (one sandbox for the Zoho write tests)

SANDBOX_LIFETIME_SECONDS = 1800


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    """A sandbox per test module; modules that modify data do so on their own copy."""
    with SandboxProcess(seed=7, scale=1.0, lifetime=SANDBOX_LIFETIME_SECONDS) as sb:
        yield sb


def harvest_resources(
    sandbox: SandboxProcess, duckdb_path: str, batch_records: int = 10_000, **client_options
) -> dict:
    env = sandbox.env
    return {
        "harvest": HarvestClient(
            access_token=env["HARVEST_ACCESS_TOKEN"],
            account_id=env["HARVEST_ACCOUNT_ID"],
            api_url=env["HARVEST_API_URL"],
            **client_options,
        ),
        "warehouse": Warehouse(duckdb=DuckDBResource(database=duckdb_path), batch_records=batch_records),
    }


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def materialize_harvest(
    resources: dict,
    first: str,
    last: str | None = None,
    selection: list[str] | None = None,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
    assets: dg.AssetsDefinition = harvest_assets,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize Harvest tables for the days first..last as one real Dagster run (`assets`:
    the shipped Harvest assets, or the same built over other partitions)."""
    keys = None if selection is None else [dg.AssetKey(["harvest", name]) for name in selection]
    tags = {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last or first,
    }
    return dg.materialize(
        [assets],
        resources=resources,
        selection=keys,
        tags=tags,
        instance=instance,
        raise_on_error=raise_on_error,
        run_config=run_config,
    )


def harvest_assets_from(start_date: str) -> dg.AssetsDefinition:
    """The Harvest assets exactly as shipped, but with partitions from `start_date`."""
    return build_source_assets(
        harvest_catalog(), resource_key="harvest", reader=HarvestReader,
        partitions_def=daily_partitions(start_date),
    )
