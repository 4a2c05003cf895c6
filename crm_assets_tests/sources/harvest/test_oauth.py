"""OAuth against the sandbox's Harvest ID: refresh, expiry mid-run, rotation, accounts, secrets."""

from __future__ import annotations

import json
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from crm_assets.sandbox import SandboxProcess
from crm_assets.sources.errors import FatalSourceError
from crm_assets.sources.harvest.client import HarvestClient
from crm_assets.warehouse import Warehouse
from crm_assets_tests.conftest import materialize_harvest, today
from crm_assets_tests.sources.harvest.test_client import files_containing

ID_ADMIN = "/_sandbox/harvest_id"
STRICT_SETTINGS = {"reuse_refresh_tokens": False}
RUN_DAYS = 10
DEFAULT_SETTINGS = {"expires_in": 1209600, "max_uses": 0, "reuse_refresh_tokens": True}


@pytest.fixture(scope="module")
def sb():
    with SandboxProcess(seed=5, scale=0.3, lifetime=1200) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def default_settings(sb):
    sb.call("POST", f"{ID_ADMIN}/settings", DEFAULT_SETTINGS)
    yield
    sb.call("POST", f"{ID_ADMIN}/settings", DEFAULT_SETTINGS)


def new_refresh_token(sb) -> str:
    """A refresh token of its own for each test, as a fresh authorization gives."""
    return sb.call("POST", f"{ID_ADMIN}/refresh_tokens")["refresh_token"]


def oauth_client(sb, refresh_token: str, state_path: Path | None = None, **options) -> HarvestClient:
    env = sb.env
    return HarvestClient(
        client_id=env["HARVEST_CLIENT_ID"], client_secret=env["HARVEST_CLIENT_SECRET"], refresh_token=refresh_token,
        id_url=env["HARVEST_ID_URL"], api_url=env["HARVEST_API_URL"],
        token_state_path=str(state_path) if state_path else None, **options,
    )


def refresh_is_refused(sb, refresh_token: str) -> bool:
    import requests

    answer = requests.post(sb.env["HARVEST_ID_URL"] + "/api/v2/oauth2/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": refresh_token,
        "client_id": sb.env["HARVEST_CLIENT_ID"], "client_secret": sb.env["HARVEST_CLIENT_SECRET"]})
    return answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_oauth_runs_survive_expiring_tokens_keep_the_rotated_one_and_leave_no_secret(sb, tmp_path, monkeypatch):
    home, warehouse_dir = tmp_path / "dagster_home", tmp_path / "warehouse"
    home.mkdir()
    warehouse_dir.mkdir()
    env = sb.env
    first_refresh_token = new_refresh_token(sb)
    for name in ("HARVEST_ACCESS_TOKEN", "HARVEST_ACCOUNT_ID"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HARVEST_API_URL", "HARVEST_ID_URL", "HARVEST_CLIENT_ID", "HARVEST_CLIENT_SECRET"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("HARVEST_REFRESH_TOKEN", first_refresh_token)
    monkeypatch.setenv("CRM_ASSETS_DUCKDB_PATH", str(warehouse_dir / "crm.duckdb"))
    # Every access token dies after 4 API requests: each run meets several mid-run 401s.
    sb.call("POST", f"{ID_ADMIN}/settings", {**STRICT_SETTINGS, "max_uses": 4})
    from crm_assets.definitions import duckdb_path, harvest_client

    selection = ["clients", "invoices", "invoice_messages"]
    first_day = (datetime.now(UTC).date() - timedelta(days=RUN_DAYS)).isoformat()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        for _ in range(2):  # the second run can only start from the refresh token the first one kept
            # Small pages, so that a run makes enough requests to outlive several tokens.
            harvest = harvest_client().model_copy(update={"per_page": 1})
            resources = {"harvest": harvest, "warehouse": Warehouse(duckdb=DuckDBResource(database=duckdb_path()))}
            result = materialize_harvest(resources, first_day, today(), selection=selection, instance=instance)
            assert result.success
            assert refresh_is_refused(sb, first_refresh_token)
        records = [r for run in instance.get_runs() for r in instance.get_records_for_run(run.run_id, limit=100_000).records]

    state = sb.call("GET", f"{ID_ADMIN}/state")
    assert state["api_rejected_tokens"].get("expired", 0) >= 2
    assert state["requests"]["accounts"] >= 2  # HARVEST_ACCOUNT_ID unset: taken from Harvest ID
    since = f"{first_day}T00:00:00Z"
    recent_clients = {r["id"] for r in sb.harvest_records("clients") if r["updated_at"] >= since}
    with duckdb.connect(duckdb_path(), read_only=True) as db:
        assert {row[0] for row in db.execute("select id from harvest.clients").fetchall()} == recent_clients
    state_file = warehouse_dir / "harvest_oauth.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert json.loads(state_file.read_text())["refresh_token"] != first_refresh_token

    issued = sb.call("GET", f"{ID_ADMIN}/issued")
    secrets = {"HARVEST_CLIENT_SECRET": env["HARVEST_CLIENT_SECRET"]}
    secrets |= {f"refresh token {i}": t for i, t in enumerate(issued["refresh_tokens"])}
    secrets |= {f"access token {i}": t for i, t in enumerate(issued["access_tokens"])}
    assert len(issued["access_tokens"]) >= 4
    assert files_containing(home, secrets) == []
    serialized = [dg.serialize_value(r.event_log_entry) for r in records]
    assert records and not [name for name, value in secrets.items() if any(value in s for s in serialized)]


def test_the_rotated_refresh_token_is_used_until_the_variable_holds_a_new_one(sb, tmp_path):
    sb.call("POST", f"{ID_ADMIN}/settings", STRICT_SETTINGS)
    state_path = tmp_path / "harvest_oauth.json"
    configured = new_refresh_token(sb)
    for _ in range(2):  # the second session finds the first one's rotated token in the file
        with oauth_client(sb, configured, state_path).open() as api:
            assert api.get(api.base + "/company")["name"]
    assert refresh_is_refused(sb, configured)
    replacement = new_refresh_token(sb)  # a new authorization: the variable wins over the file
    with oauth_client(sb, replacement, state_path).open() as api:
        assert api.get(api.base + "/company")["name"]
    assert refresh_is_refused(sb, replacement)
    assert json.loads(state_path.read_text())["refresh_token"] not in (configured, replacement)


def test_a_token_is_refreshed_before_it_expires(sb):
    sb.call("POST", f"{ID_ADMIN}/settings", {"expires_in": 3})
    rejected_before = sb.call("GET", f"{ID_ADMIN}/state")["api_rejected_tokens"].get("expired", 0)
    with oauth_client(sb, new_refresh_token(sb)).open() as api:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert api.get(api.base + "/company")["name"]
            time.sleep(0.2)
        assert api.oauth.refreshes >= 3
    assert sb.call("GET", f"{ID_ADMIN}/state")["api_rejected_tokens"].get("expired", 0) == rejected_before


def test_the_only_harvest_account_is_used_and_several_are_listed(sb):
    with oauth_client(sb, new_refresh_token(sb)).open() as api:
        assert api.http.headers["Harvest-Account-Id"] == sb.env["HARVEST_ACCOUNT_ID"]  # not the Forecast one
        assert api.get(api.base + "/company")["name"]
    sb.call("POST", f"{ID_ADMIN}/accounts", {"id": 4242, "name": "Second Studio", "product": "harvest"})
    try:
        with pytest.raises(FatalSourceError) as caught:
            oauth_client(sb, new_refresh_token(sb)).open()
    finally:
        sb.call("DELETE", f"{ID_ADMIN}/accounts/4242")
    message = str(caught.value)
    assert "HARVEST_ACCOUNT_ID" in message
    assert f"{sb.env['HARVEST_ACCOUNT_ID']} (Sandbox Studio)" in message and "4242 (Second Studio)" in message


def test_a_refused_refresh_token_stops_at_once_naming_the_variable_and_no_secret(sb):
    token = "sbx-rt-this-one-was-never-issued"
    began = time.monotonic()
    with pytest.raises(FatalSourceError) as caught:
        oauth_client(sb, token).open()
    message = str(caught.value)
    assert time.monotonic() - began < 2
    assert "invalid_grant" in message and "HARVEST_REFRESH_TOKEN" in message
    assert token not in message and sb.env["HARVEST_CLIENT_SECRET"] not in message


def test_a_wrong_harvest_id_url_names_it(sb):
    client = oauth_client(sb, new_refresh_token(sb)).model_copy(update={"id_url": sb.url + "/harvest_idx"})
    with pytest.raises(FatalSourceError, match="HTTP 404.*HARVEST_ID_URL"):
        client.open()
