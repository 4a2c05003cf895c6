"""Reverse-ETL fixtures: the sandbox's Salesforce over real HTTPS, a real DuckDB file, real runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from crm_assets.destinations.assets import build_sync_definitions
from crm_assets.destinations.salesforce import SalesforceResource
from crm_assets.destinations.specs import SyncSpec, parse_sync
from crm_assets.sandbox import SandboxProcess
from crm_assets.warehouse import Warehouse


@pytest.fixture(scope="module")
def salesforce_sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(seed=5, scale=0.05, lifetime=900) as sb:
        yield sb


@pytest.fixture
def sfsb(salesforce_sandbox: SandboxProcess) -> SandboxProcess:
    """The module's sandbox with an empty org, no faults and an empty request log."""
    salesforce_sandbox.salesforce_reset()
    salesforce_sandbox.salesforce_settings(polls_before_done=0)
    return salesforce_sandbox


@pytest.fixture
def warehouse_path(tmp_path: Path) -> str:
    return str(tmp_path / "warehouse.duckdb")


def run_sql(path: str, *statements: str) -> None:
    with duckdb.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)


def query_rows(path: str, sql: str) -> list[dict[str, Any]]:
    """The test's own reading of a query: rows as dicts under the aliases it spells."""
    with duckdb.connect(path) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        cursor = conn.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def as_org_value(value: Any) -> Any:
    """How the org stores a value the query returned (the sandbox's JSON shapes)."""
    if isinstance(value, datetime):
        stamp = value.astimezone(UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}+0000"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if value == "":
        return None  # Salesforce stores an empty text as null
    return value


def sync(**fields: Any) -> SyncSpec:
    entry = {"name": "test_sync", "destination": "salesforce", "retry_initial_delay": 0.05, "retry_limit": 2}
    entry.update(fields)
    return parse_sync(entry, "test")


def salesforce_resource(
    env: dict[str, str], method: str = "password", **overrides: Any
) -> SalesforceResource:
    common = {
        "login_url": env["SALESFORCE_LOGIN_URL"],
        "ca_bundle": env["SALESFORCE_CA_BUNDLE"],
        "poll_interval_seconds": 0.05,
    }
    if method == "password":
        common |= {
            "username": env["SALESFORCE_USERNAME"],
            "password": env["SALESFORCE_PASSWORD"],
            "security_token": env["SALESFORCE_SECURITY_TOKEN"],
        }
    elif method == "client_credentials":
        common |= {"client_id": env["SALESFORCE_CLIENT_ID"], "client_secret": env["SALESFORCE_CLIENT_SECRET"]}
    return SalesforceResource(**(common | overrides))


def run_syncs(
    specs: list[SyncSpec],
    path: str,
    resource: SalesforceResource,
    raise_on_error: bool = True,
    instance: dg.DagsterInstance | None = None,
    zoho: Any = None,
) -> dg.ExecuteInProcessResult:
    """Materialize the syncs' assets and their checks as one real Dagster run (`zoho`: the
    ZohoClient that Zoho syncs among `specs` write with)."""
    defs = build_sync_definitions(specs)
    resources = {"warehouse": Warehouse(duckdb=DuckDBResource(database=path)), "salesforce": resource}
    if zoho is not None:
        resources["zoho"] = zoho
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        resources=resources,
        raise_on_error=raise_on_error,
        instance=instance,
    )


def materialization(result: dg.ExecuteInProcessResult, spec: SyncSpec) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(f"salesforce__{spec.name}")
    return {k: v.value for k, v in event.metadata.items()}


def check_passed(result: dg.ExecuteInProcessResult) -> bool:
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation.passed


def batch_posts(sb: SandboxProcess) -> list[dict[str, Any]]:
    """Bulk batch uploads the sandbox received (each with its record count)."""
    return [r for r in sb.salesforce_requests() if r["method"] == "POST" and r["path"].endswith("/batch")]
