"""The Harvest client against the sandbox: pagination by links, retries, errors, secrets."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import dagster as dg
import pytest
import requests
from dagster_duckdb import DuckDBResource

from crm_assets.sources.errors import FatalSourceError
from crm_assets.sources.harvest.client import HarvestApiError, HarvestClient
from crm_assets.warehouse import Warehouse
from crm_assets_tests.conftest import harvest_resources, materialize_harvest

OAUTH_VARIABLES = ("HARVEST_CLIENT_ID", "HARVEST_CLIENT_SECRET", "HARVEST_REFRESH_TOKEN")


def step_failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The failed step's own error message (Dagster wraps it in a step-execution error)."""
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failures, "the run has no failed step"
    error = failures[0].step_failure_data.error
    while error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
        error = error.cause
    return error.message


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
    assert isinstance(caught.value, FatalSourceError) and api.requests == 1


def test_missing_credentials_fail_the_run_in_one_line_naming_the_variables(monkeypatch, tmp_path):
    from crm_assets.definitions import harvest_client

    for name in ("HARVEST_ACCESS_TOKEN", "HARVEST_ACCOUNT_ID", *OAUTH_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    resources = {"harvest": harvest_client(),
                 "warehouse": Warehouse(duckdb=DuckDBResource(database=str(tmp_path / "crm.duckdb")))}
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = materialize_harvest(resources, "2024-01-01", selection=["clients"], instance=instance,
                                     raise_on_error=False)
    assert not result.success
    message = step_failure_message(result)
    assert "\n" not in message.strip()
    assert all(name in message for name in ("HARVEST_ACCESS_TOKEN", *OAUTH_VARIABLES))


def test_half_an_oauth_configuration_names_what_is_missing(sandbox):
    env = sandbox.env
    with pytest.raises(FatalSourceError, match="HARVEST_CLIENT_SECRET and HARVEST_REFRESH_TOKEN not set"):
        HarvestClient(client_id=env["HARVEST_CLIENT_ID"], api_url=env["HARVEST_API_URL"]).open()
    with pytest.raises(FatalSourceError, match="HARVEST_ACCOUNT_ID is not set"):
        HarvestClient(access_token=env["HARVEST_ACCESS_TOKEN"], api_url=env["HARVEST_API_URL"]).open()


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


def test_a_page_that_is_not_json_stops_at_once_naming_the_url(sandbox):
    sandbox.call("POST", "/_sandbox/faults", {"api": "harvest", "kind": "echo", "status": 200})
    began = time.monotonic()
    with client(sandbox).open() as api, pytest.raises(FatalSourceError) as caught:
        api.get(api.base + "/tasks")
    assert time.monotonic() - began < 2 and api.requests == 1
    assert "not JSON" in str(caught.value) and "HARVEST_API_URL" in str(caught.value)


@pytest.mark.parametrize("status, variable", [(404, "HARVEST_API_URL"), (403, "HARVEST_ACCESS_TOKEN")])
def test_404_and_403_stop_at_once_naming_the_variable(sandbox, status, variable):
    sandbox.inject_fault("harvest", status=status)
    with client(sandbox).open() as api, pytest.raises(FatalSourceError, match=f"HTTP {status}.*{variable}"):
        api.get(api.base + "/tasks")
    assert api.requests == 1


def test_a_wrong_api_url_stops_at_once(sandbox):
    wrong = HarvestClient(access_token=sandbox.env["HARVEST_ACCESS_TOKEN"], account_id=sandbox.env["HARVEST_ACCOUNT_ID"],
                          api_url=sandbox.url + "/harvest/v1")
    with wrong.open() as api, pytest.raises(FatalSourceError, match="HTTP 404.*HARVEST_API_URL"):
        list(api.pages("/clients", "clients"))
    assert api.requests == 1


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("api_url, reason", [
    (f"http://127.0.0.1:{refused_port()}/v2", "refused"),
    ("http://crm-assets-no-such-host.invalid/v2", "does not resolve"),
], ids=["refused", "unresolvable"])  # stable ids: pytest-xdist workers must collect the same names
def test_an_unreachable_host_stops_at_once(api_url, reason):
    began = time.monotonic()
    with HarvestClient(access_token="x" * 20, account_id="1", api_url=api_url).open() as api:
        with pytest.raises(FatalSourceError, match=f"{reason}.*HARVEST_API_URL"):
            list(api.pages("/clients", "clients"))
    assert time.monotonic() - began < 10 and api.requests == 1


def test_paging_stops_past_the_announced_page_count(sandbox):
    sandbox.call("POST", "/_sandbox/faults", {"api": "harvest", "kind": "endless", "count": 50})
    try:
        with client(sandbox).open() as api, pytest.raises(HarvestApiError, match="announced 1; stopped"):
            list(api.pages("/clients", "clients"))
        assert api.requests <= 3
    finally:
        sandbox.clear_faults()


@pytest.mark.parametrize("status", [200, 400])
def test_an_error_page_echoing_the_token_is_redacted(sandbox, status):
    token = sandbox.env["HARVEST_ACCESS_TOKEN"]
    echo = {"api": "harvest", "kind": "echo", "status": status}
    sandbox.call("POST", "/_sandbox/faults", echo)
    raw = requests.get(sandbox.harvest_url + "/tasks", headers=sandbox.harvest_headers(), timeout=10).text
    assert token in raw[:120]  # what the client used to quote
    sandbox.call("POST", "/_sandbox/faults", echo)
    with client(sandbox).open() as api, pytest.raises(HarvestApiError) as caught:
        api.get(api.base + "/tasks")
    assert "Authorization: Bearer [redacted]" in str(caught.value) and token not in str(caught.value)
    assert api.redact(f"x{token}y") == "x[redacted]y"


def files_containing(root: Path, secrets: dict[str, str]) -> list[tuple[str, str]]:
    """(file, secret name) for every file under `root` holding one of `secrets`' values."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [(str(path), name) for name, value in secrets.items() if value.encode() in data]
    return found


def test_a_token_echoed_by_an_error_page_reaches_no_file_of_dagster_home(sandbox, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = sandbox.env
    for name in ("HARVEST_ACCESS_TOKEN", "HARVEST_ACCOUNT_ID", "HARVEST_API_URL"):
        monkeypatch.setenv(name, env[name])
    for name in OAUTH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRM_ASSETS_DUCKDB_PATH", str(tmp_path / "crm.duckdb"))
    from crm_assets.definitions import duckdb_path, harvest_client

    resources = {"harvest": harvest_client(), "warehouse": Warehouse(duckdb=DuckDBResource(database=duckdb_path()))}
    sandbox.call("POST", "/_sandbox/faults", {"api": "harvest", "kind": "echo", "status": 200, "count": 30})
    try:
        with dg.instance_for_test(temp_dir=str(home)) as instance:
            result = materialize_harvest(resources, env["HARVEST_START_DATE"], selection=["clients", "tasks"],
                                         instance=instance, raise_on_error=False)
            records = instance.get_records_for_run(result.run_id, limit=100_000).records
    finally:
        sandbox.clear_faults()
    assert not result.success
    assert "[redacted]" in step_failure_message(result)
    token = env["HARVEST_ACCESS_TOKEN"]
    assert all(token not in dg.serialize_value(r.event_log_entry) for r in records)
    assert files_containing(home, {"HARVEST_ACCESS_TOKEN": token}) == []
