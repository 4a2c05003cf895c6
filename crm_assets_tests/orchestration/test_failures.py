"""The run-failure sensor records, tags and posts each failed run, and pauses a sync that keeps
failing on its configuration."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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


@contextlib.contextmanager
def instance_dir(tmp_path: Path) -> Iterator[str]:
    """A folder for the test's SQLite instance: in memory where the system offers one (much faster)."""
    shm = Path("/dev/shm")
    if shm.is_dir():
        with tempfile.TemporaryDirectory(dir=shm) as folder:
            yield folder
    else:
        yield str(tmp_path)


def remote_sync_instigators(instance: dg.DagsterInstance) -> tuple[Any, Any]:
    """The sync's schedule and automation sensor as the daemon sees them: loaded from the code location."""
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="crm_assets.definitions", working_directory=str(ROOT)),
        location_name="crm_assets",
    )
    with origin.create_location(instance) as location:
        (repository,) = location.get_repositories().values()
        return repository.get_schedule(f"{SYNC}_schedule"), repository.get_sensor(f"{SYNC}_automation")


def test_configuration_failures_are_recorded_posted_and_pause_the_sync(
    world: World, webhook: Webhook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The shipped sync, reading the table itself rather than the model over it (not built here):
    # the login is refused before the query's result matters.
    specs = [
        dataclasses.replace(s, query=f"select id::varchar as {s.key}, name as Name from harvest.clients")
        if s.name == SYNC else s
        for s in load_syncs() if s.destination == "salesforce"
    ]
    key = dg.AssetKey(["salesforce", SYNC])
    step = key.to_python_identifier()
    syncs = build_sync_definitions(specs)
    env = world.sandbox.env
    refused = SalesforceResource(
        login_url=env["SALESFORCE_LOGIN_URL"],
        ca_bundle=env["SALESFORCE_CA_BUNDLE"],
        username=env["SALESFORCE_USERNAME"],
        password=WRONG_PASSWORD,
        security_token=env["SALESFORCE_SECURITY_TOKEN"],
    )
    monkeypatch.setenv("SALESFORCE_PASSWORD", WRONG_PASSWORD)  # a secret the messages must not show
    warehouse = Warehouse(duckdb=DuckDBResource(database=world.warehouse_path))
    resources = {"warehouse": warehouse, "salesforce": refused}
    sensor = build_failure_sensor(specs)

    with instance_dir(tmp_path) as folder, dg.instance_for_test(temp_dir=folder) as instance:
        schedule, automation = remote_sync_instigators(instance)
        instance.start_schedule(schedule)  # the operator switched both on
        instance.start_sensor(automation)

        def status(remote: Any) -> InstigatorStatus:
            return instance.get_instigator_state(remote.get_remote_origin_id(), remote.selector_id).status

        def tick(cursor: str | None) -> dg.SensorExecutionData:
            with dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"warehouse": warehouse}
            ) as context:
                return sensor.evaluate_tick(context)

        cursor = tick(None).cursor  # the first tick only sets the cursor
        run_ids = []
        for attempt in range(PAUSE_AFTER):
            # The first alert goes to a webhook that cannot be reached: logged, never raised.
            monkeypatch.setenv(ALERT_WEBHOOK, webhook.url if attempt else unused_url())
            result = dg.materialize(
                syncs.assets, selection=[key], resources=resources, instance=instance,
                raise_on_error=False,
            )
            assert not result.success
            run_ids.append(result.run_id)
            ticked = tick(cursor)
            cursor = ticked.cursor
            assert [r.error for r in ticked.dagster_run_reactions] == [None]
            tags = instance.get_run_by_id(result.run_id).tags
            assert tags["crm_assets/failure_kind"] == "configuration"
            if attempt < PAUSE_AFTER - 1:
                assert status(schedule) == status(automation) == InstigatorStatus.RUNNING

        assert status(schedule) == status(automation) == InstigatorStatus.STOPPED
        assert tags["crm_assets/paused_syncs"] == SYNC
        (observation,) = instance.fetch_observations(key, limit=1).records
        notice = observation.asset_observation.description
        assert f"paused after {PAUSE_AFTER} configuration failures" in notice

    recorded = rows(
        world.warehouse_path,
        f"SELECT run_id, step, failure_kind, error FROM crm_assets_state.run_failures "
        f"WHERE step = '{step}' ORDER BY failed_at",
    )
    assert [r[0] for r in recorded] == run_ids
    for _, _, kind, error in recorded:
        assert kind == "configuration" and "Salesforce login refused" in error
        assert WRONG_PASSWORD not in error
    ((failures, paused_runs),) = rows(
        world.warehouse_path,
        f"SELECT failures, run_ids FROM crm_assets_state.sync_pauses WHERE sync = '{SYNC}'",
    )
    assert failures == PAUSE_AFTER and paused_runs.split(",") == run_ids[::-1]

    assert [p["run_id"] for p in webhook.posts] == run_ids[1:]
    assert [p["paused_syncs"] for p in webhook.posts] == [[]] * (PAUSE_AFTER - 2) + [[SYNC]]
    assert webhook.posts[-1]["failures"][0]["step"] == step
    assert WRONG_PASSWORD not in json.dumps(webhook.posts)
