"""Reliability fixtures: one small sandbox for the session, a fault-free baseline, and the
test's own digests of the warehouse and of the Salesforce org.

A "full backfill" here uses partitions that start yesterday: the first partition holds every
record changed before it, so two partitions cover the whole of each table while Dagster writes
two partitions' worth of bookkeeping instead of four hundred.
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from crm_assets.destinations.specs import SyncSpec, load_syncs
from crm_assets.sandbox import SandboxProcess
from crm_assets.sources.factory import build_source_assets, daily_partitions
from crm_assets.sources.harvest import harvest_catalog
from crm_assets.sources.harvest.client import HarvestClient
from crm_assets.sources.harvest.reader import HarvestReader
from crm_assets.sources.zoho import zoho_catalog
from crm_assets.sources.zoho.client import ZohoClient
from crm_assets.sources.zoho.reader import ZohoReader
from crm_assets.warehouse import Warehouse
from crm_assets_tests.destinations.conftest import run_syncs, salesforce_resource
from crm_assets_tests.models.conftest import materialize_marts
from crm_assets_tests.zoho_modules import module_records as zoho_module_records

SEED, SCALE = 23, 0.05
SOURCE_SCHEMAS = ("harvest", "zoho")
# Fields the org sets itself, different on every insert.
ZOHO_SYSTEM_FIELDS = {"id", "Created_Time", "Modified_Time", "Created_By", "Modified_By"}
ORG_SYSTEM_FIELDS = {"Id", "OwnerId", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp"}
# Quick retries and a short timeout, so that a run through faults takes seconds; the sandbox's slow
# answers wait SLOW_SECONDS, longer than CLIENT_TIMEOUT.
CLIENT_TIMEOUT, SLOW_SECONDS = 0.6, 1.2
FAST_RETRIES = {"timeout_seconds": CLIENT_TIMEOUT, "max_retries": 10, "backoff_seconds": 0.05, "max_backoff_seconds": 0.2}


def first_day() -> str:
    return (datetime.now(UTC).date() - timedelta(days=1)).isoformat()


def last_day() -> str:
    return datetime.now(UTC).date().isoformat()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(seed=SEED, scale=SCALE, lifetime=900) as sb:
        yield sb


def clients(sb: SandboxProcess, **options: Any) -> dict[str, Any]:
    """Harvest over OAuth (so that its tokens can die mid-run) and Zoho, with `options`."""
    env = sb.env
    harvest = HarvestClient(client_id=env["HARVEST_CLIENT_ID"], client_secret=env["HARVEST_CLIENT_SECRET"],
                            refresh_token=env["HARVEST_REFRESH_TOKEN"], id_url=env["HARVEST_ID_URL"],
                            account_id=env["HARVEST_ACCOUNT_ID"], api_url=env["HARVEST_API_URL"], **options)
    zoho = ZohoClient(client_id=env["ZOHO_CLIENT_ID"], client_secret=env["ZOHO_CLIENT_SECRET"],
                      refresh_token=env["ZOHO_REFRESH_TOKEN"], accounts_url=env["ZOHO_ACCOUNTS_URL"], **options)
    return {"harvest": harvest, "zoho": zoho}


def source_assets() -> list[dg.AssetsDefinition]:
    partitions = daily_partitions(first_day())
    return [
        build_source_assets(harvest_catalog(), resource_key="harvest", reader=HarvestReader, partitions_def=partitions),
        build_source_assets(zoho_catalog(), resource_key="zoho", reader=ZohoReader, partitions_def=partitions),
    ]


def backfill(sb: SandboxProcess, path: str, instance: dg.DagsterInstance | None = None, raise_on_error: bool = True,
             selection: list[str] | None = None, **options: Any) -> dg.ExecuteInProcessResult:
    """Every Harvest and Zoho table (or `selection`, keys like ``harvest/clients``) over the
    whole sandbox, as one real Dagster run."""
    return dg.materialize(
        source_assets(),
        resources={**clients(sb, **options), "warehouse": Warehouse(duckdb=DuckDBResource(database=path))},
        selection=None if selection is None else [dg.AssetKey(k.split("/")) for k in selection],
        tags={"dagster/asset_partition_range_start": first_day(), "dagster/asset_partition_range_end": last_day()},
        instance=instance,
        raise_on_error=raise_on_error,
    )


def example_syncs(fast: bool = False) -> list[SyncSpec]:
    specs = load_syncs()
    if fast:
        specs = [dataclasses.replace(s, retry_initial_delay=0.05, retry_limit=10) for s in specs]
    return specs


def build_marts(path: str) -> None:
    """The models the example syncs read, built from the warehouse's tables (no API involved)."""
    names = sorted({table for s in example_syncs() for schema, table in s.tables if schema == "marts"})
    materialize_marts(path, names)


def push(sb: SandboxProcess, path: str, instance: dg.DagsterInstance | None = None, fast: bool = False,
         raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    """Every example sync in crm_assets/syncs.yaml into the sandbox's Salesforce and Zoho CRM,
    one real run (the models they read must be built)."""
    options = {"timeout_seconds": CLIENT_TIMEOUT} if fast else {}
    zoho = clients(sb, **(FAST_RETRIES if fast else {}))["zoho"]
    return run_syncs(example_syncs(fast), path, salesforce_resource(sb.env, **options), instance=instance,
                     raise_on_error=raise_on_error, zoho=zoho)


# -- the test's own reading of the results --


def table_keys() -> dict[str, tuple[str, ...]]:
    """Every source table and its primary key, as the source documents (the catalogs) give them."""
    return {s.table: s.primary_key for c in (harvest_catalog(), zoho_catalog()) for s in c.streams}


def warehouse_digest(path: str) -> dict[str, tuple[int, str]]:
    """(rows, sha256) of every source table, columns in name order and without ``_synced_at``."""
    out: dict[str, tuple[int, str]] = {}
    with duckdb.connect(path, read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        tables = conn.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN ('harvest', 'zoho')"
        ).fetchall()
        for schema, table in tables:
            columns = sorted(
                c for (c,) in conn.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?", [schema, table]
                ).fetchall() if c != "_synced_at"
            )
            listed = ", ".join(f'"{c}"' for c in columns)
            rows = conn.execute(f'SELECT {listed} FROM "{schema}"."{table}" ORDER BY ALL').fetchall()
            out[f"{schema}.{table}"] = (len(rows), hashlib.sha256(repr((columns, rows)).encode()).hexdigest())
    return out


def duplicate_keys(path: str) -> dict[str, int]:
    """Tables where a primary key is null or appears twice, with the number of offending rows."""
    found: dict[str, int] = {}
    with duckdb.connect(path, read_only=True) as conn:
        present = {f"{s}.{t}" for s, t in conn.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
        for table, key in table_keys().items():
            if table not in present:
                continue
            cols = ", ".join(f'"{k}"' for k in key)
            nulls = " OR ".join(f'"{k}" IS NULL' for k in key)
            (bad,) = conn.execute(
                f"SELECT (SELECT count(*) FROM {table} WHERE {nulls}) + "
                f"(SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {table} GROUP BY {cols}))"
            ).fetchone()
            if bad:
                found[table] = int(bad)
    return found


def org_digest(sb: SandboxProcess) -> dict[str, tuple[int, str]]:
    """(records, sha256) per object the example syncs write, deleted ones included, without the
    fields the org sets itself and with every lookup id replaced by its target's external key."""
    specs = [s for s in example_syncs() if s.destination == "salesforce"]
    records = {s.object: sb.salesforce_records(s.object, deleted="include") for s in specs}
    key_of = {s.object: s.key for s in specs}
    external = {r["Id"]: f"{obj}:{r[key_of[obj]]}" for obj, rs in records.items() for r in rs}
    out = {}
    for obj, rs in records.items():
        shown = sorted(repr(sorted((k, external.get(v, v) if isinstance(v, str) else v) for k, v in r.items()
                                   if k not in ORG_SYSTEM_FIELDS)) for r in rs)
        out[obj] = (len(rs), hashlib.sha256("\n".join(shown).encode()).hexdigest())
    for spec in (s for s in example_syncs() if s.destination == "zoho"):
        rs = zoho_module_records(sb, spec.object)
        shown = sorted(repr(sorted((k, v) for k, v in r.items() if k not in ZOHO_SYSTEM_FIELDS)) for r in rs)
        out[f"zoho:{spec.object}"] = (len(rs), hashlib.sha256("\n".join(shown).encode()).hexdigest())
    return out


def org_duplicates(sb: SandboxProcess) -> dict[str, int]:
    """Objects holding two records (live or deleted) for one sync key."""
    found = {}
    for spec in example_syncs():
        if spec.destination == "zoho":
            keys = [r.get(spec.key) for r in zoho_module_records(sb, spec.object)]
        else:
            keys = [r[spec.key] for r in sb.salesforce_records(spec.object, deleted="include")]
        if len(keys) != len(set(keys)):
            found[spec.object] = len(keys) - len(set(keys))
    return found


@dataclasses.dataclass(frozen=True)
class Baseline:
    path: str  # its warehouse file: copy it before writing to it
    warehouse: dict[str, tuple[int, str]]
    org: dict[str, tuple[int, str]]
    backfill_seconds: float
    push_seconds: float


@pytest.fixture(scope="session")
def baseline(sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """The fault-free result every faulted or killed run must reproduce."""
    fresh_org(sandbox)
    path = str(tmp_path_factory.mktemp("baseline") / "warehouse.duckdb")
    began = time.monotonic()
    backfill(sandbox, path)
    backfilled = time.monotonic()
    build_marts(path)
    pushed = time.monotonic()
    push(sandbox, path)
    done = time.monotonic()
    digest = warehouse_digest(path)
    assert len(digest) == len(table_keys()) and sum(bool(rows) for rows, _ in digest.values()) > 20, digest
    assert not duplicate_keys(path)
    org = org_digest(sandbox)
    assert all(count for count, _ in org.values()), org
    return Baseline(path, digest, org, backfilled - began, done - pushed)


def fresh_org(sb: SandboxProcess) -> None:
    """An empty org and empty Zoho modules, no faults anywhere, Bulk batches done at their first poll."""
    sb.clear_faults()
    sb.salesforce_reset()
    sb.call("POST", "/_sandbox/zoho/modules/reset")
    sb.salesforce_settings(polls_before_done=0)


def kill_at(work: Callable[[], Any], seconds: float) -> int | None:
    """Run `work` in a forked child and SIGKILL it after `seconds` unless it ended first;
    the child's exit code, or None when it was killed."""
    child = multiprocessing.get_context("fork").Process(target=work)  # the child ends in os._exit
    child.start()
    child.join(seconds)
    if child.is_alive():
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        return None
    return child.exitcode


def tree_text(folder: Path) -> Iterator[tuple[Path, str]]:
    for file in folder.rglob("*"):
        if file.is_file():
            yield file, file.read_bytes().decode("utf-8", "replace")
