"""`make demo` and `make dev` as a new user meets them: where the demo's run comes from, what its
summary says, which credentials it uses, and a sandbox that lives exactly as long as they do."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from crm_assets import launcher
from crm_assets.destinations.specs import load_syncs
from crm_assets.marts import marts_models
from crm_assets.sources.harvest.assets import harvest_assets
from crm_assets.sources.zoho.assets import zoho_assets
from crm_assets_tests.conftest import harvest_resources, materialize_harvest
from crm_assets_tests.harvest_truth import ALL_TABLES, expected_rows
from crm_assets_tests.zoho_truth import TABLES as ZOHO_TABLES

ROOT = Path(__file__).resolve().parents[1]
SECRET = "leftover-secret-token-value"
DAGSTER = str(Path(sys.executable).parent / "dagster")
POOL = "duckdb"


@pytest.fixture
def platform(sandbox, tmp_path, monkeypatch):
    """The sandbox's variables, a fresh DAGSTER_HOME and warehouse, as `make demo` sets them."""
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("CRM_ASSETS_DUCKDB_PATH", str(tmp_path / "crm.duckdb"))
    home = launcher.prepare_dagster_home()
    with dg.DagsterInstance.get() as instance:
        yield instance, home


def last_days(n: int) -> tuple[str, str]:
    today = datetime.now(UTC).date()
    return (today - timedelta(days=n - 1)).isoformat(), today.isoformat()


def test_the_demo_run_comes_from_the_code_location_and_its_summary_tells_the_truth(
    sandbox, platform, tmp_path
):
    instance, home = platform
    first, last = last_days(2)
    run = launcher.run_backfill(instance, first, last, timeout=600)

    assert run.status == dg.DagsterRunStatus.SUCCESS
    origin = run.remote_job_origin
    assert origin is not None, "a run without a remote origin has no Target and no timeline row in the UI"
    assert origin.location_name == "crm_assets"
    assert origin.job_name == "__ASSET_JOB"
    assert run.tags["dagster/asset_partition_range_start"] == first
    assert run.tags["dagster/asset_partition_range_end"] == last
    assert (home / "history" / "runs.db").is_file(), "run history goes under DAGSTER_HOME"

    summary = launcher.summarize(instance, run, str(tmp_path / "crm.duckdb"))
    expected_tables = {f"harvest.{table}" for table in ALL_TABLES} | {f"zoho.{table}" for table in ZOHO_TABLES}
    assert set(summary.tables) == expected_tables
    for table in ("time_entries", "invoices", "invoice_line_items", "roles", "user_roles"):
        truth = len(expected_rows(sandbox, table, since=first))
        assert summary.tables[f"harvest.{table}"].rows == truth, table
        assert summary.tables[f"harvest.{table}"].written == truth, (
            f"{table}: a fresh warehouse writes every row"
        )
    assert summary.tables["zoho.roles"].rows == len(sandbox.zoho_records("roles"))
    declared = {(".".join(spec.asset_key.path), spec.name) for assets in (harvest_assets, zoho_assets)
                for spec in assets.check_specs}
    reported = {(table, name) for table, t in summary.tables.items() for name in (*t.passed, *t.failed)}
    assert reported == declared, "every check of every table is reported once"
    for table, t in summary.tables.items():
        assert "primary_key_unique_and_not_null" in t.passed, table
    # The example syncs ran into the sandbox's Salesforce and Zoho: from a fresh warehouse every row a
    # query selects is pushed or rejected (over two days of data, a contact whose client was not
    # updated lately points at an account the org does not have yet: a true rejection).
    specs = load_syncs()
    assert set(summary.syncs) == {".".join(s.asset_key) for s in specs}
    with duckdb.connect(str(tmp_path / "crm.duckdb"), read_only=True) as conn:
        for spec in specs:
            selected = conn.execute(f"select count(*) from ({spec.query})").fetchone()[0]
            sync_summary = summary.syncs[".".join(spec.asset_key)]
            assert sync_summary.pushed + sync_summary.rejected == selected, spec.name
            assert (sync_summary.passed, sync_summary.failed) == (
                (["no_rejections"], []) if sync_summary.rejected == 0 else ([], ["no_rejections"])
            )
    # The models were built in the same run, their dbt tests reported as their checks.
    models = {key.path[-1] for key in marts_models.keys}
    assert set(summary.models) == {f"marts.{model}" for model in models}
    with duckdb.connect(str(tmp_path / "crm.duckdb"), read_only=True) as conn:
        for model in models:
            rows = conn.execute(f"select count(*) from marts.{model}").fetchone()[0]
            assert summary.models[f"marts.{model}"].rows == rows, model
    assert {(f"marts.{c.asset_key.path[-1]}", c.name) for c in marts_models.check_keys} == {
        (model, name) for model, m in summary.models.items() for name in (*m.passed, *m.failed)
    }
    # Over two days, a time entry may name a project or user last changed earlier (not loaded):
    # only the references, a warning, may fail.
    assert all(name.startswith("relationships_") for m in summary.models.values() for name in m.failed)
    assert "marts.client_invoicing" in "\n".join(summary.lines())
    accounts = summary.syncs["salesforce.clients_to_accounts"]
    assert accounts.rejected == 0 and accounts.pushed == len(sandbox.salesforce_records("Account"))
    assert "salesforce.clients_to_accounts" in "\n".join(summary.lines())


def test_a_failed_demo_run_makes_a_failed_summary(sandbox, platform, tmp_path):
    instance, _ = platform
    first, last = last_days(1)
    sandbox.inject_fault("harvest", 401, count=1000)
    try:
        run = launcher.run_backfill(instance, first, last, timeout=600)
    finally:
        sandbox.clear_faults("harvest")
    summary = launcher.summarize(instance, run, str(tmp_path / "crm.duckdb"))
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert not summary.ok
    assert "FAILED" in "\n".join(summary.lines())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_leftover_sandbox_exports_fail_within_seconds_naming_the_variables(tmp_path):
    """A sandbox's exports outlive it in the shell; the demo must not spend minutes retrying them."""
    dead_url = f"http://127.0.0.1:{free_port()}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HARVEST_", "CRM_ASSETS_"))},
        "HARVEST_ACCESS_TOKEN": SECRET,
        "HARVEST_ACCOUNT_ID": "1234567",
        "HARVEST_API_URL": f"{dead_url}/harvest/v2",
        "CRM_ASSETS_SANDBOX_URL": dead_url,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "CRM_ASSETS_DUCKDB_PATH": str(tmp_path / "crm.duckdb"),
    }
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "crm_assets.launcher", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert time.monotonic() - began < 60, "a dead API must fail fast"
    assert "HARVEST_API_URL" in output and f"{dead_url}/harvest/v2" in output
    assert "unset HARVEST_ACCESS_TOKEN" in output, "says how to get back to the sandbox"
    assert SECRET not in output
    assert "Traceback" not in output


def test_credentials_are_named_by_their_variables_never_their_values():
    assert launcher.harvest_credentials({}) is None
    assert launcher.harvest_credentials({"HARVEST_CLIENT_ID": "a", "HARVEST_CLIENT_SECRET": "b"}) is None
    token = launcher.harvest_credentials({"HARVEST_ACCESS_TOKEN": SECRET, "HARVEST_ACCOUNT_ID": "42"})
    assert "HARVEST_ACCESS_TOKEN" in token and "HARVEST_ACCOUNT_ID" in token and SECRET not in token
    oauth = launcher.harvest_credentials(
        {"HARVEST_CLIENT_ID": "id", "HARVEST_CLIENT_SECRET": SECRET, "HARVEST_REFRESH_TOKEN": SECRET}
    )
    assert "OAuth" in oauth and "HARVEST_REFRESH_TOKEN" in oauth and SECRET not in oauth


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/_sandbox/harvest/info", timeout=2).close()
        return True
    except (urllib.error.URLError, OSError):
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_the_dev_sandbox_has_no_deadline_and_dies_with_its_parent(tmp_path):
    """`make dev`'s sandbox serves as long as the launcher lives (no --lifetime), and a
    launcher killed without a chance to clean up still takes it along."""
    script = (
        "import os, sys, time\n"
        "from crm_assets import launcher\n"
        "with launcher.platform_env():\n"
        "    print(os.environ['CRM_ASSETS_SANDBOX_URL'], flush=True)\n"
        "    time.sleep(600)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARVEST_", "CRM_ASSETS_"))}
    env.update(DAGSTER_HOME=str(tmp_path / "home"), CRM_ASSETS_DUCKDB_PATH=str(tmp_path / "crm.duckdb"))
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        url = parent.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        (child,) = children_of(parent.pid)
        args = Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0")
        assert float(args[args.index("--lifetime") + 1]) == 0, f"the dev sandbox stops by itself: {args}"
        assert answers(url)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 20
        while answers(url):
            assert time.monotonic() < deadline, "the sandbox outlived its killed parent"
            time.sleep(0.2)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=30)


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_what_the_ui_and_the_instance_write_stays_out_of_git_status():
    """Dismissing the UI's welcome pop-up writes .nux/ into DAGSTER_HOME; history goes to data/."""
    paths = [".nux/nux.yaml", "data/dagster/history/runs.db", "data/dagster/.nux/nux.yaml", "data/crm.duckdb"]
    done = subprocess.run(
        ["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.stdout.split() == paths, done.stderr


def run_holding_a_step(instance: dg.DagsterInstance, proc: subprocess.Popen, timeout: float) -> dg.DagsterRun:
    """The CLI's run once its Harvest step is executing (and holds the `duckdb` pool's slot
    if the step is in that pool)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        runs = instance.get_runs()
        if runs and instance.get_records_for_run(
            runs[0].run_id, of_type=dg.DagsterEventType.STEP_START, limit=1
        ).records:
            return runs[0]
        time.sleep(0.2)
    raise AssertionError(f"no step started within {timeout:.0f}s")


def test_a_killed_run_is_failed_and_its_pool_slot_given_back_by_the_daemon(sandbox, platform):
    """SIGKILL a CLI backfill mid-step (nothing survives it to clean up), then let the
    daemon's run monitoring, configured by the shipped dagster.yaml, do one iteration at a
    time as `dagster-daemon` would: the run is marked failed, its slot is given back, and
    the next run goes through with no manual step."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import EmptyWorkspaceTarget
    from dagster._daemon.daemon import MonitoringDaemon

    instance, home = platform
    assert "MONITORING" in instance.get_required_daemon_types(), "`dagster dev` starts the monitoring daemon"
    day = last_days(1)[0]
    command = [DAGSTER, "asset", "materialize", "-m", "crm_assets.definitions",
               "--select", 'key:"harvest/*"', "--partition-range", f"{day}...{day}"]
    # Every Harvest request is answered 429 "retry after 30 s": the step waits inside its slot.
    sandbox.inject_fault("harvest", 429, count=100_000, retry_after=30)
    proc = subprocess.Popen(command, cwd=home.parent, env=os.environ.copy(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        killed = run_holding_a_step(instance, proc, timeout=90)
        held = {slot.run_id for slot in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots}
        if harvest_assets.op.pool == POOL:
            assert held == {killed.run_id}, "the killed step held the pool's only slot"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        sandbox.clear_faults("harvest")
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.STARTED, "nobody is left to fail it"

    daemon = MonitoringDaemon(interval_seconds=instance.run_monitoring_poll_interval_seconds)
    free_after = instance.run_monitoring_settings["free_slots_after_run_end_seconds"]
    deadline = time.monotonic() + free_after + 20
    with WorkspaceProcessContext(instance, EmptyWorkspaceTarget()) as context:
        while True:
            list(daemon.run_iteration(context))
            claimed = instance.event_log_storage.get_concurrency_info(POOL).claimed_slots
            if instance.get_run_by_id(killed.run_id).is_finished and not {s.run_id for s in claimed} & held:
                break
            assert time.monotonic() < deadline, f"the daemon left the killed run's slot claimed: {claimed}"
            time.sleep(1.0)
    assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
    # The next run needs the pool (if its steps are in it) and must not wait for the dead one.
    resources = harvest_resources(sandbox, os.environ["CRM_ASSETS_DUCKDB_PATH"])
    began = time.monotonic()
    result = materialize_harvest(resources, day, selection=["roles"], instance=instance)
    assert result.success and time.monotonic() - began < 60
