""""Materialize all" from the UI, with the daemon running, succeeds with no lock errors.

The test starts `dagster-webserver` and `dagster-daemon run` over one fresh instance (a copy of
the shipped dagster.yaml: its run launcher, run monitoring and pools), a small sandbox account
whose sources start yesterday (so the partitions are few), and a fresh warehouse file. It then
sends the webserver what the UI's "Materialize all" sends when the selection holds partitioned
assets: `launchPartitionBackfill` with `allPartitions: true` over every materializable asset
(Harvest and Zoho tables, the marts, the Salesforce and Zoho CRM syncs), an asset backfill the
daemon turns into runs under the default multiprocess executor, while a second backfill (today's
Harvest partition) runs beside it: the test asserts that runs overlapped in time. No browser
needed: everything goes through the webserver's GraphQL API.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from crm_assets.sandbox import SandboxProcess
from crm_assets_tests.harvest_truth import assert_table_matches, expected_rows
from crm_assets_tests.ui.webserver import BIN, ROOT, Webserver, project_environment

FINISH_TIMEOUT_SECONDS = 360  # measured 150-210 s on a loaded 2-core machine
STOP_TIMEOUT_SECONDS = 3.0
LOCK_ERRORS = ("Could not set lock", "Conflicting lock")
CHECKED_TABLE = "time_entries"
FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
RUN_FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

ASSETS_QUERY = """
{ assetNodes { assetKey { path } isMaterializable isPartitioned
    partitionStats { numMaterialized numPartitions }
    assetMaterializations(limit: 1) { runId } } }
"""
LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""
BACKFILL_QUERY = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status error { message } }
    ... on Error { message }
  }
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    ... on Runs { results { runId status startTime endTime } }
  }
}
"""
RUN_MESSAGES = """
query RunMessages($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection { events {
      ... on MessageEvent { message }
      ... on ErrorEvent { error { message } }
    } }
  }
}
"""


@pytest.fixture(scope="module")
def small_account() -> Iterator[SandboxProcess]:
    with SandboxProcess(seed=11, scale=0.05, lifetime=600) as sb:
        yield sb


def start_daemon(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, object]:
    """`dagster-daemon run` for the project, in its own process group (it starts a code server)."""
    log = open(log_path, "w")  # noqa: SIM115 - closed in stop_group()
    process = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-m", "crm_assets.definitions"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    return process, log


def stop_group(process: subprocess.Popen, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGTERM to the process group, SIGKILL to whatever of it outlasts `timeout`."""
    def signal_group(sig: int) -> bool:
        try:
            os.killpg(process.pid, sig)
            return True
        except ProcessLookupError:
            return False

    signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while signal_group(0) and time.monotonic() < deadline:
        process.poll()
        time.sleep(0.1)
    signal_group(signal.SIGKILL)
    process.wait(timeout=timeout)


def daemon_output(directory: Path, tail: int | None = 4000) -> str:
    text = (directory / "daemon.log").read_text(errors="replace")
    return text if tail is None else text[-tail:]


def run_messages(server: Webserver, run_id: str) -> list[str]:
    events = server.graphql(RUN_MESSAGES, {"runId": run_id})["logsForRun"].get("events", [])
    messages = []
    for event in events:
        messages.append(event.get("message") or "")
        if event.get("error"):
            messages.append(event["error"]["message"])
    return messages


def overlapping_runs(runs: list[dict]) -> list[tuple[str, str]]:
    """Pairs of runs whose start-to-end spans intersect."""
    spans = sorted((r["startTime"], r["endTime"], r["runId"]) for r in runs if r["startTime"] and r["endTime"])
    return [(a[2], b[2]) for i, a in enumerate(spans) for b in spans[i + 1:] if b[0] < a[1]]


def test_materialize_all_through_the_webserver_with_the_daemon_succeeds_without_lock_errors(
    small_account, tmp_path
):
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    env = project_environment(tmp_path, small_account.env, yesterday)
    home, warehouse = Path(env["DAGSTER_HOME"]), Path(env["CRM_ASSETS_DUCKDB_PATH"])
    # The instance's storage created once, before two processes would both create it.
    with dg.DagsterInstance.from_config(str(home)):
        pass
    daemon, daemon_log = start_daemon(env, tmp_path / "daemon.log")
    server = Webserver("crm_assets.definitions", cwd=ROOT, env=env, log_path=tmp_path / "webserver.log")
    try:
        server.wait_ready()
        nodes = server.graphql(ASSETS_QUERY)["assetNodes"]
        selection = [{"path": n["assetKey"]["path"]} for n in nodes if n["isMaterializable"]]
        groups = {key["path"][0] for key in selection}
        assert {"harvest", "zoho", "marts", "salesforce", "zoho_crm"} <= groups, groups

        launched = server.graphql(LAUNCH_BACKFILL, {"backfillParams": {
            "assetSelection": selection, "allPartitions": True,
        }})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        # A second user refreshes today's Harvest partition meanwhile: its run and the
        # backfill's runs share the warehouse file at the same time.
        today = server.graphql(LAUNCH_BACKFILL, {"backfillParams": {
            "assetSelection": [key for key in selection if key["path"][0] == "harvest"],
            "partitionNames": [datetime.now(UTC).date().isoformat()],
        }})["launchPartitionBackfill"]
        assert today["__typename"] == "LaunchBackfillSuccess", today
        backfill_ids = [launched["backfillId"], today["backfillId"]]

        began = time.monotonic()
        while True:
            answers = [server.graphql(BACKFILL_QUERY, {"id": i}) for i in backfill_ids]
            backfills = [a["partitionBackfillOrError"] for a in answers]
            runs = [r for a in answers for r in a["runsOrError"]["results"]]
            if all(b.get("status") in FINISHED for b in backfills) and all(r["status"] in RUN_FINISHED for r in runs):
                break
            assert daemon.poll() is None, f"dagster-daemon exited:\n{daemon_output(tmp_path)}"
            assert time.monotonic() - began < FINISH_TIMEOUT_SECONDS, (
                f"backfills not finished in {FINISH_TIMEOUT_SECONDS}s: {backfills}, runs {runs}\n"
                f"{daemon_output(tmp_path)}"
            )
            time.sleep(1)
        seconds = time.monotonic() - began

        messages = {r["runId"]: run_messages(server, r["runId"]) for r in runs}
        lock_errors = [m for ms in messages.values() for m in ms if any(e in m for e in LOCK_ERRORS)]
        failed = {r["runId"]: [m for m in messages[r["runId"]] if "fail" in m.lower()][-5:]
                  for r in runs if r["status"] != "SUCCESS"}
        nodes = server.graphql(ASSETS_QUERY)["assetNodes"]
        # The steps' own logs (each step is a subprocess of the run) end up in the daemon's output.
        lock_errors += [line for line in daemon_output(tmp_path, tail=None).splitlines()
                        if any(e in line for e in LOCK_ERRORS)]
    finally:
        stop_group(daemon)
        daemon_log.close()
        server.stop()

    overlapping = overlapping_runs(runs)
    print(f"Materialize all: {len(runs)} runs, finished in {seconds:.1f}s, "
          f"{len(overlapping)} pairs of runs ran at the same time")
    assert not lock_errors, lock_errors
    assert runs and not failed, failed
    assert all(b["status"] == "COMPLETED_SUCCESS" for b in backfills), backfills
    # Several runs at once, through the daemon's queue, sharing the warehouse file.
    assert overlapping, [(r["runId"], r["startTime"], r["endTime"]) for r in runs]
    for node in nodes:
        if not node["isMaterializable"]:
            continue
        name = "/".join(node["assetKey"]["path"])
        assert node["assetMaterializations"], f"{name} was not materialized"
        if node["isPartitioned"]:
            stats = node["partitionStats"]
            assert stats["numMaterialized"] == stats["numPartitions"], (name, stats)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert_table_matches(conn, CHECKED_TABLE, expected_rows(small_account, CHECKED_TABLE))
