"""Fixtures and helpers of the Zoho sync tests: one sandbox for the session, real runs, real DuckDB.

Expected module contents are computed here from the test's own query results (:func:`as_zoho_value`)
and compared with the sandbox's raw records; nothing here calls the code under test except
through a Dagster run.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from crm_assets.destinations.assets import build_sync_definitions
from crm_assets.destinations.specs import SyncSpec, parse_sync
from crm_assets.sandbox import SandboxProcess
from crm_assets.sources.zoho.client import ZohoClient
from crm_assets.warehouse import Warehouse


@pytest.fixture(scope="session")
def zoho_sandbox() -> Iterator[SandboxProcess]:
    """One sandbox for every Zoho sync test (each test empties the modules first)."""
    with SandboxProcess(seed=13, scale=0.05, lifetime=900) as sb:
        yield sb


@pytest.fixture
def zsb(zoho_sandbox: SandboxProcess) -> SandboxProcess:
    """The session's sandbox with empty modules, no queued write faults and an empty request log."""
    zoho_sandbox.call("POST", "/_sandbox/zoho/modules/reset")
    zoho_sandbox.reset_zoho_stats()
    return zoho_sandbox


def zoho_client(sb: SandboxProcess, **options: Any) -> ZohoClient:
    env = sb.env
    settings = {
        "client_id": env["ZOHO_CLIENT_ID"],
        "client_secret": env["ZOHO_CLIENT_SECRET"],
        "refresh_token": env["ZOHO_REFRESH_TOKEN"],
        "accounts_url": env["ZOHO_ACCOUNTS_URL"],
        "backoff_seconds": 0.05,
    }
    return ZohoClient(**(settings | options))


def zoho_sync(**fields: Any) -> SyncSpec:
    entry = {"name": "zoho_test", "destination": "zoho", "object": "Accounts", "retry_initial_delay": 0.05,
             "retry_limit": 2}
    return parse_sync(entry | fields, "test")


def run_zoho(specs: list[SyncSpec], path: str, client: ZohoClient, **options: Any) -> dg.ExecuteInProcessResult:
    """The syncs' assets and checks as one real Dagster run."""
    defs = build_sync_definitions(specs)
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        resources={"warehouse": Warehouse(duckdb=DuckDBResource(database=path)), "zoho": client},
        **options,
    )


def zoho_counts(result: dg.ExecuteInProcessResult, spec: SyncSpec) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(f"zoho_crm__{spec.name}")
    return {k: v.value for k, v in event.metadata.items()}


def module_records(sb: SandboxProcess, module: str = "Accounts") -> list[dict[str, Any]]:
    """Every record of `module` exactly as the sandbox stores it."""
    return sb.call("GET", f"/_sandbox/zoho/modules/{module}")["records"]


def writes(sb: SandboxProcess) -> list[dict[str, Any]]:
    """The record writes the sandbox received (POST/PUT with their bodies), in order."""
    return [r for r in sb.zoho_requests("crm") if r["method"] in ("POST", "PUT")]


def as_zoho_value(value: Any) -> Any:
    """How Zoho stores a value the query returned: datetimes in seconds with an offset (sent in UTC)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "+00:00"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def stored_value(record: dict[str, Any], column: str) -> Any:
    """A record's field as the query spelled it; an owner or lookup by its id."""
    value = record[column]
    return value["id"] if isinstance(value, dict) else value
