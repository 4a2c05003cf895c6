"""Every fault kind at 10% of requests to every API: the warehouse and the org end exactly as a
fault-free run leaves them, with no duplicate key.

The kinds run in three groups so that a request's chance of failing several times in a row stays
small against the retry limit: answers with an error status; broken transports with Salesforce's
own refusals (row locks, batches that fail whole); credentials dying mid-run.
"""

from __future__ import annotations

import pytest

from crm_assets_tests.reliability.conftest import (
    SLOW_SECONDS,
    FAST_RETRIES,
    backfill,
    duplicate_keys,
    fresh_org,
    org_digest,
    org_duplicates,
    push,
    warehouse_digest,
)

APIS = ("harvest", "harvest_id", "zoho", "zoho_accounts", "salesforce", "salesforce_login")
STATUS_FAULTS = ("429@0.1", "500@0.1", "502@0.1", "503@0.1")
TRANSPORT_FAULTS = ("reset@0.1", "truncate@0.1", "slow@0.1", f"slow={SLOW_SECONDS}")
EXPIRY_FAULTS = ("expire@0.1",)
SALESFORCE_FAULTS = ("lock@0.1", "batch_failed@0.1")


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
def test_a_faulted_backfill_and_push_end_equal_to_the_fault_free_ones(sandbox, baseline, tmp_path, rules, salesforce_rules):
    fresh_org(sandbox)
    apply_faults(sandbox, rules, salesforce_rules)
    path = str(tmp_path / "warehouse.duckdb")
    try:
        backfill(sandbox, path, **FAST_RETRIES)
        push(sandbox, path, fast=True)
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
