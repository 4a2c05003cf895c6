"""Zoho fixtures: the sandbox's accounts server and CRM over HTTP, real Dagster runs, real DuckDB."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from crm_assets.sandbox import SandboxProcess
from crm_assets.sources.factory import build_source_assets, daily_partitions
from crm_assets.sources.zoho import zoho_catalog
from crm_assets.sources.zoho.client import ZohoClient
from crm_assets.sources.zoho.reader import ZohoReader
from crm_assets.warehouse import Warehouse


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(seed=11, scale=1.0, lifetime=1800) as sb:
        yield sb


def zoho_client(sandbox: SandboxProcess, **options) -> ZohoClient:
    """The sandbox's credentials (`options` override them); no API URL, so the token's api_domain is used."""
    env = sandbox.env
    settings = {
        "client_id": env["ZOHO_CLIENT_ID"],
        "client_secret": env["ZOHO_CLIENT_SECRET"],
        "refresh_token": env["ZOHO_REFRESH_TOKEN"],
        "accounts_url": env["ZOHO_ACCOUNTS_URL"],
    }
    return ZohoClient(**{**settings, **options})


def zoho_resources(client: ZohoClient, duckdb_path: str) -> dict:
    return {"zoho": client, "warehouse": Warehouse(duckdb=DuckDBResource(database=duckdb_path))}


def zoho_assets_from(start_date: str) -> dg.AssetsDefinition:
    """The Zoho assets exactly as shipped, with partitions from `start_date` (the sandbox's)."""
    return build_source_assets(
        zoho_catalog(),
        resource_key="zoho",
        reader=ZohoReader,
        partitions_def=daily_partitions(start_date),
    )


def materialize_zoho(
    sandbox: SandboxProcess,
    resources: dict,
    first: str,
    last: str | None = None,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """The six Zoho tables for the days first..last as one real Dagster run."""
    return dg.materialize(
        [zoho_assets_from(sandbox.env["ZOHO_START_DATE"])],
        resources=resources,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last or first,
        },
        raise_on_error=raise_on_error,
    )
