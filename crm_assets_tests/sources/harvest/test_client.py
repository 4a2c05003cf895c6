"""The Harvest client against the sandbox: pagination by links, retries, errors, secrets."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from crm_assets.sources.harvest.client import HarvestApiError, HarvestClient
from crm_assets_tests.conftest import harvest_resources, materialize_harvest


def client(sandbox, **options) -> HarvestClient:
    env = sandbox.env
    return HarvestClient(
        access_token=env["HARVEST_ACCESS_TOKEN"], account_id=env["HARVEST_ACCOUNT_ID"],
        api_url=env["HARVEST_API_URL"], **options,
    )


@pytest.mark.parametrize("endpoint", ["clients", "time_entries"])  # cursor mode, page mode
def test_following_links_next_reads_every_record_once(sandbox, endpoint):
    truth = sandbox.harvest_records(endpoint)
    per_page = max(1, len(truth) // 3)
    sandbox.reset_harvest_stats()
    with client(sandbox, per_page=per_page).open() as api:
        pages = list(api.pages(f"/{endpoint}", endpoint))
    ids = [r["id"] for p in pages for r in p.records]
    assert sorted(ids) == sorted(r["id"] for r in truth)
    assert len(pages) == -(-len(truth) // per_page) > 2
    assert sandbox.harvest_stats()["requests"] == len(pages)


def test_429_waits_for_retry_after(sandbox):
    sandbox.inject_fault("harvest", status=429, count=2, retry_after=1)
    with client(sandbox).open() as api:
        began = time.monotonic()
        body = api.get(api.base + "/tasks")
        waited = time.monotonic() - began
    assert body["tasks"]
    assert api.retries == 2
    assert waited >= 1.9


def test_server_errors_are_retried_with_backoff_then_given_up(sandbox):
    sandbox.inject_fault("harvest", status=502, count=2)
    with client(sandbox, backoff_seconds=0.01).open() as api:
        assert api.get(api.base + "/tasks")["tasks"]
        assert api.retries == 2
    sandbox.inject_fault("harvest", status=500, count=5)
    with client(sandbox, backoff_seconds=0.01, max_retries=2).open() as api:
        with pytest.raises(HarvestApiError, match=r"gave up after 3 attempts; last: HTTP 500"):
            api.get(api.base + "/tasks")
    sandbox.inject_fault("harvest", status=500, count=0)


def test_a_bad_token_names_the_variable_and_never_the_token(sandbox):
    bad = HarvestClient(
        access_token="secret-token-value", account_id=sandbox.env["HARVEST_ACCOUNT_ID"],
        api_url=sandbox.env["HARVEST_API_URL"],
    )
    with bad.open() as api, pytest.raises(HarvestApiError) as caught:
        list(api.pages("/clients", "clients"))
    message = str(caught.value)
    assert "401" in message and "HARVEST_ACCESS_TOKEN" in message
    assert "secret-token-value" not in message


def test_missing_credentials_fail_the_run_with_a_clear_message(monkeypatch):
    from crm_assets.definitions import defs

    monkeypatch.delenv("HARVEST_ACCESS_TOKEN", raising=False)
    job = defs.resolve_implicit_global_asset_job_def()
    with pytest.raises(dg.DagsterInvalidConfigError, match="HARVEST_ACCESS_TOKEN"):
        job.execute_in_process(partition_key="2024-01-01")


def test_the_token_never_reaches_the_run_history(sandbox, tmp_path):
    token = sandbox.env["HARVEST_ACCESS_TOKEN"]
    with dg.instance_for_test() as instance:
        resources = harvest_resources(sandbox, str(tmp_path / "crm.duckdb"))
        result = materialize_harvest(resources, sandbox.env["HARVEST_START_DATE"], instance=instance)
        records = instance.get_records_for_run(result.run_id).records
        assert records
        assert all(token not in dg.serialize_value(r.event_log_entry) for r in records)


def test_read_ahead_yields_every_page_in_order_and_raises_the_fetch_error(sandbox):
    truth = [r["id"] for r in sandbox.harvest_records("time_entries")]
    with client(sandbox, per_page=700).open() as api:
        ids = [r["id"] for p in api.pages("/time_entries", "time_entries", read_ahead=True) for r in p.records]
    assert ids == truth
    with client(sandbox, per_page=700, max_retries=0).open() as api:
        pages = api.pages("/time_entries", "time_entries", read_ahead=True)
        first = next(pages)
        sandbox.inject_fault("harvest", status=500, count=5)
        with pytest.raises(HarvestApiError, match="HTTP 500"):
            list(pages)
    sandbox.clear_faults()
    assert first.records
