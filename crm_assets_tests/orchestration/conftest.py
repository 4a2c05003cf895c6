"""One sandbox, one warehouse and one in-memory Dagster instance for the orchestration tests.

The warehouse starts in step with the sandbox: Harvest and Zoho partitions begin yesterday, and
loading that first partition reads every record (it has no lower bound; the sandbox's data
ends before today), so every table has its cursor. A test that changes the sandbox runs what
it requested, leaving the warehouse in step again for the next one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from crm_assets.sandbox import SandboxProcess
from crm_assets.warehouse import Warehouse
from crm_assets_tests.conftest import harvest_assets_from, harvest_resources
from crm_assets_tests.sources.zoho.conftest import zoho_assets_from, zoho_client


@dataclass
class World:
    sandbox: SandboxProcess
    warehouse_path: str
    instance: dg.DagsterInstance
    harvest_assets: dg.AssetsDefinition
    zoho_assets: dg.AssetsDefinition
    resources: dict
    yesterday: str
    today: str

    def run(
        self, request: dg.RunRequest, assets: dg.AssetsDefinition, **options
    ) -> dg.ExecuteInProcessResult:
        """Execute a schedule's or sensor's run request as one real run."""
        return dg.materialize(
            [assets],
            resources=self.resources,
            selection=list(request.asset_selection or assets.keys),
            partition_key=request.partition_key,
            tags=dict(request.tags),
            instance=self.instance,
            **options,
        )


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("orchestration")
    now = datetime.now(UTC)
    today, yesterday = now.date().isoformat(), (now - timedelta(days=1)).date().isoformat()
    path = str(Path(home) / "warehouse.duckdb")
    # An in-memory instance: a SQLite one makes each load several times slower.
    instance = dg.DagsterInstance.ephemeral()
    with SandboxProcess(seed=13, scale=0.05, lifetime=900) as sb:
        resources = {
            **harvest_resources(sb, path),
            "zoho": zoho_client(sb),
            "warehouse": Warehouse(duckdb=DuckDBResource(database=path)),
        }
        world = World(sb, path, instance, harvest_assets_from(yesterday), zoho_assets_from(yesterday),
                      resources, yesterday, today)
        whole = dg.RunRequest(partition_key=yesterday)
        assert world.run(whole, world.harvest_assets).success
        assert world.run(whole, world.zoho_assets).success
        yield world
