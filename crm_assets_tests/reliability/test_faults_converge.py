"""Every fault kind at 10% of requests to every API: the warehouse and the org end exactly as a
fault-free run leaves them, with no duplicate key.

The kinds run in three groups so that a request's chance of failing several times in a row stays
small against the retry limit: answers with an error status; broken transports with Salesforce's
own refusals (row locks, batches that fail whole); credentials dying mid-run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from crm_assets_tests.reliability.conftest import (
    SLOW_SECONDS,
    FAST_RETRIES,
    backfill,
    build_marts,
    duplicate_keys,
    fresh_org,
    org_digest,
    org_duplicates,
    push,
    tree_text,
    warehouse_digest,
)

APIS = ("harvest", "harvest_id", "zoho", "zoho_accounts", "salesforce", "salesforce_login")
# Retry-After 0 keeps the run short; that the wait is honoured is the source tests' business.
STATUS_FAULTS = ("429@0.1", "retry_after=0", "500@0.1", "502@0.1", "503@0.1")
TRANSPORT_FAULTS = ("reset@0.1", "truncate@0.1", "slow@0.1", f"slow={SLOW_SECONDS}")
EXPIRY_FAULTS = ("expire@0.1",)
SALESFORCE_FAULTS = ("lock@0.1", "batch_failed@0.1")


@pytest.fixture(scope="module")
def dagster_home() -> Iterator[Path]:
    """On tmpfs where there is one: SQLite run storage on a busy disk makes a run several times slower."""
    home = Path(tempfile.mkdtemp(prefix="crm-assets-reliability-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def instance(dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    """A persistent instance (run history, event logs, compute logs on disk) for the fault runs."""
    with dg.DagsterInstance.local_temp(str(dagster_home)) as inst:
        yield inst


def apply_faults(sb, rules: tuple[str, ...], salesforce_rules: tuple[str, ...] = ()) -> None:
    for api in APIS:
        for rule in rules:
            if rule.startswith("expire") and api in ("harvest_id", "zoho_accounts", "salesforce_login"):
                continue  # token endpoints hand out credentials; they have none to expire
            sb.add_fault_rule(api, rule)
    for kind in salesforce_rules:
        name, _, probability = kind.partition("@")
        sb.salesforce_fault(name, probability=float(probability))


@pytest.mark.parametrize(
    ("rules", "salesforce_rules"),
    [(STATUS_FAULTS, ()), (TRANSPORT_FAULTS, SALESFORCE_FAULTS), (EXPIRY_FAULTS, ())],
    ids=["statuses", "transport-and-locks", "expiry"],
)
def test_a_faulted_backfill_and_push_end_equal_to_the_fault_free_ones(
    sandbox, baseline, instance, tmp_path, rules, salesforce_rules
):
    fresh_org(sandbox)
    apply_faults(sandbox, rules, salesforce_rules)
    if rules == EXPIRY_FAULTS:
        # A push makes a handful of Salesforce calls, and a random expiry spares each session's
        # first: one planned expiry makes sure the org's renewal path is exercised every time.
        sandbox.plan_fault("salesforce", "expire")
    path = str(tmp_path / "warehouse.duckdb")
    try:
        backfill(sandbox, path, instance=instance, **FAST_RETRIES)
        build_marts(path)
        push(sandbox, path, instance=instance, fast=True)
        requests = sandbox.salesforce_requests()
    finally:
        fresh_faults = sandbox.call("GET", "/_sandbox/faults")
        sandbox.clear_faults()
        sandbox.salesforce_clear_faults()
    assert fresh_faults["random"], "the faults were configured"
    assert any(r.get("fault") for r in requests), "Salesforce saw faults"
    assert warehouse_digest(path) == baseline.warehouse
    assert duplicate_keys(path) == {}
    assert org_digest(sandbox) == baseline.org
    assert org_duplicates(sandbox) == {}


def issued_secrets(sb) -> set[str]:
    """Every credential the sandbox handed out or accepts: configured secrets, OAuth access and
    refresh tokens, Salesforce session ids."""
    env = sb.env
    configured = {env[name] for name in (
        "HARVEST_ACCESS_TOKEN", "HARVEST_CLIENT_SECRET", "HARVEST_REFRESH_TOKEN", "ZOHO_CLIENT_SECRET",
        "ZOHO_REFRESH_TOKEN", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN", "SALESFORCE_CLIENT_SECRET")}
    harvest_id = sb.call("GET", "/_sandbox/harvest_id/issued")
    zoho = sb.zoho_issued_tokens()
    issued = {t for tokens in (*harvest_id.values(), *zoho.values()) for t in tokens}
    return configured | issued | set(sb.salesforce_issued_sessions())


def test_no_secret_lands_under_dagster_home_after_the_fault_runs(sandbox, instance, dagster_home):
    runs = instance.get_runs()
    assert len(runs) >= 2, "the fault runs recorded their history here"
    secrets = issued_secrets(sandbox)
    assert len(secrets) > 10
    files = list(tree_text(dagster_home))
    assert any("compute_logs" in str(f) or f.suffix in (".err", ".out") for f, _ in files), "compute logs captured"
    leaks = [(str(f), secret[:6]) for f, text in files for secret in secrets if secret in text]
    assert leaks == []
