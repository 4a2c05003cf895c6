"""Zoho OAuth against the sandbox's accounts server: tokens dying mid-run, revocation, errors
that arrive with HTTP 200, switched-off features, and no secret anywhere under DAGSTER_HOME."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from crm_assets.sources.errors import FatalSourceError
from crm_assets.sources.zoho.client import ZohoClient
from crm_assets_tests.conftest import today
from crm_assets_tests.sources.harvest.test_client import files_containing
from crm_assets_tests.sources.zoho.conftest import materialize_zoho, zoho_client, zoho_resources
from crm_assets_tests.zoho_truth import assert_table_matches

DEFAULT_TOKEN_SETTINGS = {"expires_in": 3600, "access_token_max_uses": 0, "mint_limit": None}


@pytest.fixture(autouse=True)
def default_settings(sandbox):
    yield
    sandbox.zoho_token_settings(**DEFAULT_TOKEN_SETTINGS)
    sandbox.zoho_settings(multi_currency=True, scope_missing=[])


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(e.event_specific_data.error.message for e in result.get_step_failure_events())


def new_refresh_token(sandbox) -> str:
    return sandbox.call("POST", "/_sandbox/zoho/tokens/refresh_tokens")["refresh_token"]


def test_tokens_dying_mid_run_are_refreshed_and_no_secret_reaches_dagster_home(
    sandbox, tmp_path, monkeypatch
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = sandbox.env
    for name in ("ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN", "ZOHO_ACCOUNTS_URL"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.delenv("ZOHO_API_URL", raising=False)
    # Each access token dies after 3 API calls while its answer still says expires_in 3600.
    sandbox.zoho_token_settings(access_token_max_uses=3)
    sandbox.reset_zoho_stats()
    # As definitions.py builds it: secrets through EnvVar, so no run config holds them.
    client = ZohoClient(
        client_id=dg.EnvVar("ZOHO_CLIENT_ID"),
        client_secret=dg.EnvVar("ZOHO_CLIENT_SECRET"),
        refresh_token=dg.EnvVar("ZOHO_REFRESH_TOKEN"),
        accounts_url=env["ZOHO_ACCOUNTS_URL"],
        per_page=20,
    )  # users: 12 pages
    path = str(tmp_path / "crm.duckdb")
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = materialize_zoho(
            sandbox, zoho_resources(client, path), env["ZOHO_START_DATE"], today(), instance=instance
        )
        assert result.success
        records = [
            r
            for run in instance.get_runs()
            for r in instance.get_records_for_run(run.run_id, limit=100_000).records
        ]
    with duckdb.connect(path, read_only=True) as conn:
        assert_table_matches(conn, "users", sandbox.zoho_records("users"))
    routes = sandbox.zoho_stats()["by_route"]
    assert routes["crm GET /crm/v8/users"] >= 12
    assert routes["accounts /oauth/v2/token issued"] >= 5

    issued = sandbox.zoho_issued_tokens()
    secrets = {"ZOHO_CLIENT_SECRET": env["ZOHO_CLIENT_SECRET"]}
    for kind, values in issued.items():
        secrets |= {f"{kind} {i}": v for i, v in enumerate(values)}
    assert files_containing(home, secrets) == []
    serialized = [dg.serialize_value(r.event_log_entry) for r in records]
    assert records and not [name for name, value in secrets.items() if any(value in s for s in serialized)]


def test_a_revoked_refresh_token_fails_the_run_naming_the_variable_and_no_secret(sandbox, tmp_path):
    token = new_refresh_token(sandbox)
    assert sandbox.zoho_revoke_refresh_token(token) == 1
    client = zoho_client(sandbox, refresh_token=token)
    result = materialize_zoho(
        sandbox, zoho_resources(client, str(tmp_path / "crm.duckdb")), today(), raise_on_error=False
    )
    assert not result.success
    message = failure_message(result)
    assert "invalid_code" in message and "ZOHO_REFRESH_TOKEN" in message
    assert token not in message and sandbox.env["ZOHO_CLIENT_SECRET"] not in message
    assert "Traceback" not in message and len(message.splitlines()) == 1


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("client_secret", "not-the-zoho-client-secret", "ZOHO_CLIENT_SECRET"),
        ("client_id", "1000.NOTACLIENT", "ZOHO_CLIENT_ID"),
    ],
)
def test_token_errors_sent_with_http_200_name_the_variable(sandbox, field, value, variable):
    session = zoho_client(sandbox, **{field: value}).open()
    with pytest.raises(FatalSourceError) as caught:
        session.get("/crm/v8/org")
    assert variable in str(caught.value) and value not in str(caught.value)


def test_missing_credentials_fail_in_one_line_naming_the_variables(sandbox, tmp_path):
    result = materialize_zoho(
        sandbox, zoho_resources(ZohoClient(), str(tmp_path / "crm.duckdb")), today(), raise_on_error=False
    )
    message = failure_message(result)
    assert not result.success and len(message.splitlines()) == 1
    assert "ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET and ZOHO_REFRESH_TOKEN" in message


def test_multi_currency_switched_off_means_no_currencies_not_a_failure(sandbox, tmp_path):
    sandbox.zoho_settings(multi_currency=False)
    path = str(tmp_path / "crm.duckdb")
    result = materialize_zoho(
        sandbox, zoho_resources(zoho_client(sandbox), path), sandbox.env["ZOHO_START_DATE"], today()
    )
    assert result.success
    with duckdb.connect(path, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM zoho.currencies").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM zoho.roles").fetchone()[0] == len(
            sandbox.zoho_records("roles")
        )


def test_a_missing_scope_stops_the_run_naming_the_table_and_zohos_error(sandbox, tmp_path):
    sandbox.zoho_settings(scope_missing=["users"])
    result = materialize_zoho(
        sandbox,
        zoho_resources(zoho_client(sandbox), str(tmp_path / "crm.duckdb")),
        today(),
        raise_on_error=False,
    )
    message = failure_message(result)
    assert not result.success
    assert "zoho.users" in message and "OAUTH_SCOPE_MISMATCH" in message


def test_a_throttled_token_endpoint_stops_at_once_saying_why(sandbox):
    sandbox.zoho_token_settings(mint_limit={"count": 1, "seconds": 600})
    zoho_client(sandbox).open().get("/crm/v8/org")  # spends the window's one token
    with pytest.raises(FatalSourceError) as caught:
        zoho_client(sandbox).open().get("/crm/v8/org")
    message = str(caught.value)
    assert "HTTP 400" in message and "Access Denied" in message and "ZOHO_REFRESH_TOKEN" in message
    assert sandbox.env["ZOHO_CLIENT_SECRET"] not in message and sandbox.env["ZOHO_REFRESH_TOKEN"] not in message
