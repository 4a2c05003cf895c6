"""Models fixtures: one sandbox and one loaded warehouse per module, the marts built over it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from crm_assets.marts import marts_definitions, marts_models
from crm_assets.sandbox import SandboxProcess
from crm_assets.warehouse import Warehouse
from crm_assets_tests.conftest import harvest_assets_from, harvest_resources, materialize_harvest, today

# The Harvest tables the marts read (team_members also reads zoho.users: it is built by the
# launcher's test, which loads both sources).
HARVEST_TABLES = ["clients", "expenses", "invoices", "invoice_payments", "projects", "time_entries", "users"]
HARVEST_MODELS = ["client_invoicing", "project_budget_burn", "project_daily_hours", "user_weekly_utilization"]


def first_day() -> str:
    """Two days back: the first partition holds every older record too, so three partitions
    load the whole account (and Dagster records three events per table, not four hundred)."""
    return (datetime.now(UTC).date() - timedelta(days=2)).isoformat()


def model_keys(names: list[str]) -> list[dg.AssetKey]:
    return [dg.AssetKey(["marts", name]) for name in names]


def materialize_marts(
    duckdb_path: str, names: list[str] = HARVEST_MODELS, raise_on_error: bool = True
) -> dg.ExecuteInProcessResult:
    """`dbt build` of the models `names` and their tests as one real Dagster run."""
    return dg.materialize(
        [marts_models],
        selection=model_keys(names),
        resources={
            "dbt": marts_definitions().resources["dbt"],
            "warehouse": Warehouse(duckdb=DuckDBResource(database=duckdb_path)),
        },
        raise_on_error=raise_on_error,
    )


@pytest.fixture(scope="module")
def models_sandbox() -> Iterator[SandboxProcess]:
    """A small account (Harvest, and the Salesforce org the syncs write)."""
    with SandboxProcess(seed=5, scale=0.05, lifetime=900) as sb:
        yield sb


@pytest.fixture(scope="module")
def loaded_warehouse(models_sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Harvest tables the marts read, loaded whole from the sandbox (the models not built)."""
    path = str(tmp_path_factory.mktemp("models") / "warehouse.duckdb")
    start = first_day()
    materialize_harvest(
        harvest_resources(models_sandbox, path), start, today(), selection=HARVEST_TABLES,
        assets=harvest_assets_from(start),
    )
    return path


@pytest.fixture(scope="module")
def marts_build(loaded_warehouse: str) -> dg.ExecuteInProcessResult:
    """The run that built the marts over the loaded warehouse."""
    return materialize_marts(loaded_warehouse)


def copy_of(path: str, directory: Path) -> str:
    """A copy of a warehouse file, for a test that changes it."""
    copy = directory / Path(path).name
    copy.write_bytes(Path(path).read_bytes())
    return str(copy)
