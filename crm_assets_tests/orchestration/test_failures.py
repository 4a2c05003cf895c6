"""The run-failure sensor records, tags and posts each failed run, and pauses a sync that keeps
failing on its configuration."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.scheduler.instigation import InstigatorStatus
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_duckdb import DuckDBResource

from crm_assets.destinations.assets import build_sync_definitions
from crm_assets.destinations.salesforce import SalesforceResource
from crm_assets.destinations.specs import load_syncs
from crm_assets.orchestration.failures import ALERT_WEBHOOK, PAUSE_AFTER, build_failure_sensor
from crm_assets.warehouse import Warehouse
from crm_assets_tests.orchestration.conftest import World

ROOT = Path(__file__).resolve().parents[2]
SYNC = "clients_to_accounts"
WRONG_PASSWORD = "not-the-sandbox-password-7Qv"
SECRET_PATH = "/hooks/T0001/B0002/xoxb-webhook-secret"


class Webhook:
    """A local HTTP server playing the alert webhook: it keeps every JSON body posted to it."""

    def __init__(self) -> None:
        posts = self.posts = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{SECRET_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def unused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{SECRET_PATH}"


def rows(path: str, sql: str) -> list[tuple]:
    with duckdb.connect(path) as conn:
        return conn.execute(sql).fetchall()


def test_configuration_failures_are_recorded_posted_and_pause_the_sync(
    world: World, webhook: Webhook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    specs = load_syncs()
    key = dg.AssetKey(["salesforce", SYNC])
    syncs = build_sync_definitions(specs)
    env = world.sandbox.env
    refused = SalesforceResource(
        login_url=env["SALESFORCE_LOGIN_URL"], ca_bundle=env["SALESFORCE_CA_BUNDLE"],
        username=env["SALESFORCE_USERNAME"], password=WRONG_PASSWORD, security_token=env["SALESFORCE_SECURITY_TOKEN"],
    )
    monkeypatch.setenv("SALESFORCE_PASSWORD", WRONG_PASSWORD)  # a secret the messages must not show
    warehouse = Warehouse(duckdb=DuckDBResource(database=world.warehouse_path))
    sensor = build_failure_sensor(specs)

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        # The operator has switched the sync's schedule and automation sensor on.
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(module_name="crm_assets.definitions", working_directory=str(ROOT)),
            location_name="crm_assets",
        )
        with origin.create_location(instance) as location:
            (repository,) = location.get_repositories().values()
            schedule = repository.get_schedule(f"{SYNC}_schedule")
            automation = repository.get_sensor(f"{SYNC}_automation")
        instance.start_schedule(schedule)
        instance.start_sensor(automation)

        cursor = None

        def fail_once() -> dg.ExecuteInProcessResult:
            nonlocal cursor
            result = dg.materialize(
                syncs.assets, selection=[key], resources={"warehouse": warehouse, "salesforce": refused},
                instance=instance, raise_on_error=False,
            )
            assert not result.success
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"warehouse": warehouse}) as ctx:
                tick = sensor.evaluate_tick(ctx)
            cursor = tick.cursor
            assert [r.error for r in tick.dagster_run_reactions] == [None]  # the sensor itself did not fail
            return result

        with dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse}) as ctx:
            cursor = sensor.evaluate_tick(ctx).cursor  # the first tick only sets the cursor

        def status(remote) -> InstigatorStatus:
            return instance.get_instigator_state(remote.get_remote_origin_id(), remote.selector_id).status

        # A webhook that cannot be reached is logged, never raised; the failure is still recorded.
        monkeypatch.setenv(ALERT_WEBHOOK, unused_url())
        first = fail_once()
        (row,) = rows(
            world.warehouse_path,
            f"SELECT step, job, failure_kind, error FROM crm_assets_state.run_failures WHERE run_id = '{first.run_id}'",
        )
        assert row[0] == key.to_python_identifier() and row[2] == "configuration"
        assert "Salesforce login refused" in row[3] and WRONG_PASSWORD not in row[3]
        assert instance.get_run_by_id(first.run_id).tags["crm_assets/failure_kind"] == "configuration"

        monkeypatch.setenv(ALERT_WEBHOOK, webhook.url)
        for _ in range(PAUSE_AFTER - 2):
            fail_once()
        assert status(schedule) == status(automation) == InstigatorStatus.RUNNING
        assert len(webhook.posts) == PAUSE_AFTER - 2

        last = fail_once()
        post = webhook.posts[-1]
        assert post["run_id"] == last.run_id and post["failure_kind"] == "configuration"
        assert post["paused_syncs"] == [SYNC]
        assert WRONG_PASSWORD not in json.dumps(webhook.posts)
        assert status(schedule) == status(automation) == InstigatorStatus.STOPPED
        (observation,) = instance.fetch_observations(key, limit=1).records
        assert "paused after 3 configuration failures" in observation.asset_observation.description
        ((failures, run_ids),) = rows(
            world.warehouse_path, f"SELECT failures, run_ids FROM crm_assets_state.sync_pauses WHERE sync = '{SYNC}'"
        )
        assert failures == PAUSE_AFTER and run_ids.split(",")[0] == last.run_id
        assert rows(world.warehouse_path, "SELECT count(*) FROM crm_assets_state.run_failures")[0][0] >= PAUSE_AFTER
