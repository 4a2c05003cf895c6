"""`make demo` and `make dev`: run the platform against the sandbox, or real accounts.

With real Harvest credentials in the environment (HARVEST_ACCESS_TOKEN, or the OAuth trio
HARVEST_CLIENT_ID, HARVEST_CLIENT_SECRET, HARVEST_REFRESH_TOKEN) the real API is used, after a
quick probe that HARVEST_API_URL answers at all; otherwise a sandbox is started on 127.0.0.1
for as long as this process lives and its variables are exported to everything launched from
here (the sandbox serves Zoho CRM too, and its ZOHO_* variables are exported with Harvest's;
the run covers both sources, so with real accounts they need the same start date). The same
run builds the dbt models over them and runs the syncs, and the summary lists all three.
DAGSTER_HOME defaults to data/dagster (holding a copy of the shipped dagster.yaml), so the
demo's run shows up in `make dev`'s UI.

The demo launches its run the way the UI does: through the workspace (workspace.yaml), from
the code location's remote job, by the instance's run launcher. The run therefore carries its
code location, its target and its partition range wherever the UI lists runs.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

ROOT = Path.cwd()
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = PACKAGE_ROOT / "workspace.yaml"
INSTANCE_CONFIG = PACKAGE_ROOT / "dagster.yaml"
LOCATION_NAME = "crm_assets"
ASSET_JOB = "__ASSET_JOB"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
HARVEST_OAUTH_VARIABLES = ("HARVEST_CLIENT_ID", "HARVEST_CLIENT_SECRET", "HARVEST_REFRESH_TOKEN")
SANDBOX_VARIABLES = (
    "HARVEST_ACCESS_TOKEN",
    "HARVEST_ACCOUNT_ID",
    "HARVEST_API_URL",
    "HARVEST_START_DATE",
    "ZOHO_CLIENT_ID",
    "ZOHO_CLIENT_SECRET",
    "ZOHO_REFRESH_TOKEN",
    "ZOHO_ACCOUNTS_URL",
    "ZOHO_START_DATE",
    "CRM_ASSETS_SANDBOX_URL",
)
PROBE_TIMEOUT_SECONDS = 5.0
# The run worker writes its log to this process's stdout; DEBUG would add a line per event.
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


class LauncherError(RuntimeError):
    """Something the user must fix before the platform can run; the message says what."""


# -- where things live --


def prepare_dagster_home(env: Mapping[str, str] = os.environ) -> Path:
    """The instance folder: DAGSTER_HOME if set, else data/dagster; it gets the shipped
    dagster.yaml when it has none (data/dagster's copy is kept equal to the shipped file)."""
    default = ROOT / "data" / "dagster"
    home = Path(env.get("DAGSTER_HOME") or default).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or (
        home == default.resolve() and not filecmp.cmp(config, INSTANCE_CONFIG, shallow=False)
    ):
        shutil.copyfile(INSTANCE_CONFIG, config)
    return home


# -- credentials --


def harvest_credentials(env: Mapping[str, str]) -> str | None:
    """Which real Harvest credentials `env` holds, named by their variables (never their
    values), or None when it holds none."""
    if env.get("HARVEST_ACCESS_TOKEN"):
        named = [name for name in ("HARVEST_ACCESS_TOKEN", "HARVEST_ACCOUNT_ID") if env.get(name)]
        return f"personal access token ({', '.join(named)})"
    if all(env.get(name) for name in HARVEST_OAUTH_VARIABLES):
        return f"OAuth app ({', '.join(HARVEST_OAUTH_VARIABLES)})"
    return None


def unreachable(url: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> str | None:
    """Why nothing answers HTTP at `url`, or None when something does (any status will do:
    the probe sends no credentials, so 401 or 404 is the expected answer)."""
    request = urllib.request.Request(url, headers={"User-Agent": "crm_assets launcher (reachability probe)"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as exc:
        return str(exc.reason)
    except (OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__


def check_real_api(env: Mapping[str, str]) -> str:
    """The API base the real credentials will be used against, once it has answered."""
    from crm_assets.sources.harvest.client import DEFAULT_API_URL

    url = env.get("HARVEST_API_URL") or DEFAULT_API_URL
    problem = unreachable(url)
    if problem is None:
        return url
    hint = "check HARVEST_API_URL (unset it for the default https://api.harvestapp.com/v2)"
    if env.get("CRM_ASSETS_SANDBOX_URL"):
        hint = (
            "these look like a stopped sandbox's exports (CRM_ASSETS_SANDBOX_URL is set): "
            f"`unset {' '.join(SANDBOX_VARIABLES)}` to run against a fresh sandbox"
        )
    raise LauncherError(f"HARVEST_API_URL={url} does not answer ({problem}); {hint}")


@contextlib.contextmanager
def platform_env() -> Iterator[str]:
    """Point the environment at real credentials if present, else at a fresh sandbox that
    lives exactly as long as this process; yields a line saying which."""
    os.environ["DAGSTER_HOME"] = str(prepare_dagster_home())
    os.environ.setdefault("CRM_ASSETS_DUCKDB_PATH", str(ROOT / "data" / "crm.duckdb"))
    credentials = harvest_credentials(os.environ)
    if credentials:
        url = check_real_api(os.environ)
        yield f"real Harvest account with the {credentials} at {url}"
        return
    from crm_assets.sandbox import SandboxProcess

    with SandboxProcess(seed=1, scale=1.0) as sandbox:
        os.environ.update(sandbox.env)
        yield f"sandbox at {sandbox.url} with its own credentials (no HARVEST_ACCESS_TOKEN or OAuth set)"


# -- launching and following a run --


def run_backfill(
    instance: dg.DagsterInstance,
    first: str,
    last: str,
    timeout: float = 4 * 3600,
) -> dg.DagsterRun:
    """Launch every asset and check of the code location for the days first..last as one run,
    as the UI would (remote job origin, run launcher), and wait until the run ends.

    The run worker is a child of the workspace's code server, so the workspace stays open
    until the run is over. Launched directly, not submitted: the shipped dagster.yaml queues
    submitted runs, and only a daemon (`dagster dev` runs one) takes them off the queue.
    """
    from dagster._core.definitions.selector import JobSubsetSelector
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(WORKSPACE)])) as process_context:
        workspace = process_context.create_request_context()
        try:
            location = workspace.get_code_location(LOCATION_NAME)
        except dg.DagsterError as exc:
            raise LauncherError(str(exc)) from None
        (repository,) = location.get_repositories().values()
        remote_job = location.get_job(
            JobSubsetSelector(
                location_name=location.name,
                repository_name=repository.name,
                job_name=ASSET_JOB,
                op_selection=None,
            )
        )
        plan = location.get_execution_plan(
            remote_job, RUN_CONFIG, step_keys_to_execute=None, known_state=None, instance=instance
        )
        run = instance.create_run(
            job_name=remote_job.name,
            run_id=None,
            run_config=RUN_CONFIG,
            status=None,
            tags={**remote_job.tags, RANGE_START_TAG: first, RANGE_END_TAG: last},
            root_run_id=None,
            parent_run_id=None,
            step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
            execution_plan_snapshot=plan.execution_plan_snapshot,
            job_snapshot=remote_job.job_snapshot,
            parent_job_snapshot=remote_job.parent_job_snapshot,
            asset_selection=None,
            asset_check_selection=None,
            resolved_op_selection=None,
            op_selection=None,
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
            asset_graph=repository.asset_graph,
        )
        instance.launch_run(run.run_id, workspace)
        print(
            f"run {run.run_id} launched for {first}...{last}; its log follows (`make dev` shows it too)",
            flush=True,
        )
        return wait_for_run(instance, run.run_id, timeout)


def wait_for_run(instance: dg.DagsterInstance, run_id: str, timeout: float) -> dg.DagsterRun:
    """The run once it has ended; cancelled (and an error) when it outlasts `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return run
        if time.monotonic() > deadline:
            instance.run_coordinator.cancel_run(run_id)
            raise LauncherError(f"run {run_id} did not finish within {timeout:.0f}s; it was cancelled")
        time.sleep(1.0)


# -- the summary --


@dataclass
class TableSummary:
    rows: int | None = None
    written: int | None = None
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@dataclass
class SyncSummary:
    """One reverse-ETL sync in the run: records pushed (inserted + updated) and rejected."""

    pushed: int | None = None
    rejected: int | None = None
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


SYNC_PREFIXES = ("salesforce", "zoho_crm")
MODEL_PREFIX = "marts"


@dataclass
class RunSummary:
    run_id: str
    succeeded: bool
    tables: dict[str, TableSummary]
    syncs: dict[str, SyncSummary] = field(default_factory=dict)
    models: dict[str, TableSummary] = field(default_factory=dict)  # marts.<model>: rows, dbt tests

    @property
    def failed_checks(self) -> int:
        return sum(len(t.failed) for t in self._all())

    def _all(self) -> list[TableSummary | SyncSummary]:
        return [*self.tables.values(), *self.models.values(), *self.syncs.values()]

    @property
    def ok(self) -> bool:
        return self.succeeded and self.failed_checks == 0

    def lines(self) -> list[str]:
        out = [f"{'table':42} {'rows':>8} {'written':>8}  checks"]
        for table, t in sorted(self.tables.items()):
            out.append(f"{table:42} {_count(t.rows):>8} {_count(t.written):>8}  {_checks(t)}")
        if self.models:
            out.append(f"\n{'model':42} {'rows':>8} {'':>8}  checks")
            for model, m in sorted(self.models.items()):
                out.append(f"{model:42} {_count(m.rows):>8} {'':>8}  {_checks(m)}")
        if self.syncs:
            out.append(f"\n{'sync':42} {'pushed':>8} {'rejected':>8}  checks")
            for name, y in sorted(self.syncs.items()):
                out.append(f"{name:42} {_count(y.pushed):>8} {_count(y.rejected):>8}  {_checks(y)}")
        total = sum(len(t.passed) + len(t.failed) for t in self._all())
        out.append(
            f"\nrun {self.run_id}: {'succeeded' if self.succeeded else 'FAILED'}; "
            f"{total} checks, {self.failed_checks} failed"
        )
        return out


def summarize(instance: dg.DagsterInstance, run: dg.DagsterRun, duckdb_path: str) -> RunSummary:
    """Per table: rows in the warehouse now, rows this run wrote, and this run's check results;
    per sync: records pushed and rejected, and its check."""
    from crm_assets.sources.harvest import harvest_catalog
    from crm_assets.sources.zoho import zoho_catalog

    tables = {s.table: TableSummary() for catalog in (harvest_catalog(), zoho_catalog()) for s in catalog.streams}
    for table, rows in _warehouse_counts(duckdb_path, list(tables)).items():
        tables[table].rows = rows
    syncs: dict[str, SyncSummary] = {}
    models: dict[str, TableSummary] = {}
    for entry in _run_events(instance, run.run_id, dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        if materialization.asset_key.path[0] == MODEL_PREFIX:
            models.setdefault(_table(materialization.asset_key), TableSummary())
            continue
        if materialization.asset_key.path[0] in SYNC_PREFIXES:
            meta = {k: v.value for k, v in materialization.metadata.items()}
            syncs[_table(materialization.asset_key)] = SyncSummary(
                pushed=meta.get("inserted", 0) + meta.get("updated", 0), rejected=meta.get("rejected")
            )
            continue
        summary = tables.setdefault(_table(materialization.asset_key), TableSummary())
        meta = materialization.metadata
        if "run_rows_written" in meta:
            summary.written = meta["run_rows_written"].value
        elif "rows_written" in meta:  # before run totals had their own name
            summary.written = max(summary.written or 0, meta["rows_written"].value)
    for entry in _run_events(instance, run.run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        if evaluation.asset_key.path[0] in SYNC_PREFIXES:
            summary = syncs.setdefault(_table(evaluation.asset_key), SyncSummary())
        elif evaluation.asset_key.path[0] == MODEL_PREFIX:
            summary = models.setdefault(_table(evaluation.asset_key), TableSummary())
        else:
            summary = tables.setdefault(_table(evaluation.asset_key), TableSummary())
        (summary.passed if evaluation.passed else summary.failed).append(evaluation.check_name)
    for model, rows in _warehouse_counts(duckdb_path, list(models)).items():
        models[model].rows = rows
    return RunSummary(run.run_id, run.status == dg.DagsterRunStatus.SUCCESS, tables, syncs, models)


def _warehouse_counts(duckdb_path: str, tables: list[str]) -> dict[str, int]:
    if not Path(duckdb_path).exists():
        return {}
    counts = {}
    with duckdb.connect(duckdb_path, read_only=True) as conn:
        present = {
            f"{schema}.{name}"
            for schema, name in conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables"
            ).fetchall()
        }
        for table in tables:
            if table in present:
                counts[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return counts


def _run_events(
    instance: dg.DagsterInstance, run_id: str, event_type: dg.DagsterEventType
) -> Iterator[dg.EventLogEntry]:
    cursor = None
    while True:
        page = instance.get_records_for_run(run_id, cursor=cursor, of_type=event_type, limit=5000)
        cursor = page.cursor
        yield from (record.event_log_entry for record in page.records)
        if not page.has_more:
            return


def _table(key: dg.AssetKey) -> str:
    return ".".join(key.path)


def _checks(summary: TableSummary | SyncSummary) -> str:
    failed = f", {len(summary.failed)} failed: {', '.join(summary.failed)}" if summary.failed else ""
    return f"{len(summary.passed)} passed{failed}"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


# -- the commands --


def demo() -> int:
    with platform_env() as target:
        from crm_assets.sources.harvest.assets import harvest_partitions
        from crm_assets.sources.zoho.assets import zoho_partitions

        if zoho_partitions != harvest_partitions:  # one run covers one partition range of both
            raise LauncherError(
                "the demo backfills Harvest and Zoho in one run: set ZOHO_START_DATE to HARVEST_START_DATE"
            )
        keys = harvest_partitions.get_partition_keys()
        first, last = keys[0], keys[-1]
        print(
            f"crm_assets demo: {target}; backfilling {len(keys)} daily partitions {first}...{last}",
            flush=True,
        )
        with dg.DagsterInstance.get() as instance:
            _release_dead_runs(instance)
            run = run_backfill(instance, first, last)
            summary = summarize(instance, run, os.environ["CRM_ASSETS_DUCKDB_PATH"])
        print("\n" + "\n".join(summary.lines()))
        warehouse, home = os.environ["CRM_ASSETS_DUCKDB_PATH"], os.environ["DAGSTER_HOME"]
        print(f"warehouse {warehouse}; run history in DAGSTER_HOME={home} (`make dev` shows it)")
        return 0 if summary.ok else 1


def _release_dead_runs(instance: dg.DagsterInstance) -> None:
    from crm_assets.instance import release_dead_runs

    for run_id in release_dead_runs(instance):
        print(f"run {run_id} was killed earlier: marked failed, its pool slots given back", flush=True)


def dev() -> int:
    with platform_env() as target:
        with dg.DagsterInstance.get() as instance:
            _release_dead_runs(instance)
        print(
            f"crm_assets dev: {target}; DAGSTER_HOME={os.environ['DAGSTER_HOME']}; "
            "Dagster UI on http://127.0.0.1:3000",
            flush=True,
        )
        dagster = Path(sys.executable).parent / "dagster"
        try:
            return subprocess.call(
                [str(dagster), "dev", "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", "3000"]
            )
        except KeyboardInterrupt:
            return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_assets.launcher")
    parser.add_argument("command", choices=["demo", "dev"])
    args = parser.parse_args()
    try:
        return demo() if args.command == "demo" else dev()
    except LauncherError as exc:
        print(f"crm_assets {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
