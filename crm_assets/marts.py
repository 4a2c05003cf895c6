"""The dbt models (crm_assets/dbt_project) as Dagster assets `marts/<model>` in group `marts`.

Each model's dbt sources are the tables the `harvest/*` and `zoho/*` assets write, so the graph
runs from the APIs through the marts to the syncs that read them. dbt's tests become asset
checks on the models they test.

The manifest is built here, never committed: loading the definitions runs `dbt parse` when
`target/manifest.json` is missing or older than a file of the project, and otherwise just
reads it. Processes that load the code location at the same time (the webserver's code server
and a run worker, say) take a file lock, so one parses and the others read its result.

DuckDB admits one writing process per file, so the dbt step holds the warehouse's file lock for
its whole dbt invocation (as every other writer does for its writes) and runs in pool `duckdb`.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from filelock import FileLock

from crm_assets.orchestration.automation import UPSTREAM_CHANGED
from crm_assets.warehouse import Warehouse

PROJECT_DIR = Path(__file__).with_name("dbt_project")
MARTS = "marts"
OWNERS = ["team:data-platform"]
# What `dbt parse` reads: a change to any of these makes the manifest stale.
PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "models", "macros")
DUCKDB_PATH_VARIABLE = "CRM_ASSETS_DUCKDB_PATH"


def _newest_project_file(project_dir: Path) -> float:
    newest = 0.0
    for name in PROJECT_FILES:
        path = project_dir / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        newest = max([newest, *(p.stat().st_mtime for p in files)])
    return newest


def manifest_is_fresh(project_dir: Path, manifest: Path) -> bool:
    return manifest.is_file() and manifest.stat().st_mtime >= _newest_project_file(project_dir)


def _dbt_executable() -> str:
    beside_python = Path(sys.executable).with_name("dbt")
    return str(beside_python) if beside_python.exists() else "dbt"


def ensure_manifest(project_dir: Path = PROJECT_DIR) -> Path:
    """`target/manifest.json` of the project, parsed again first when it is missing or stale.

    dbt parses into a scratch folder and the manifest is moved into place in one step, so a
    reader never sees half a file.
    """
    target = project_dir / "target"
    manifest = target / "manifest.json"
    if manifest_is_fresh(project_dir, manifest):
        return manifest
    target.mkdir(exist_ok=True)
    with FileLock(target / ".parse.lock", timeout=600):
        if manifest_is_fresh(project_dir, manifest):  # another process parsed it meanwhile
            return manifest
        newest = _newest_project_file(project_dir)
        scratch = Path(tempfile.mkdtemp(prefix="parse-", dir=target))
        try:
            env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_LOG_PATH": str(scratch)}
            parsed = subprocess.run(
                [_dbt_executable(), "parse", "--quiet", "--project-dir", str(project_dir),
                 "--profiles-dir", str(project_dir), "--target-path", str(scratch)],
                cwd=project_dir, env=env, capture_output=True, text=True, timeout=600,
            )
            if parsed.returncode != 0:
                raise RuntimeError(f"dbt parse of {project_dir} failed:\n{parsed.stdout}{parsed.stderr}")
            os.replace(scratch / "manifest.json", manifest)
            # Fresh from now on even if a file's clock is ahead (a copy from another machine).
            if manifest.stat().st_mtime < newest:
                os.utime(manifest, (newest, newest))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return manifest


class MartsTranslator(DagsterDbtTranslator):
    """Models are `marts/<model>`; a source is the asset that writes its table (`harvest/clients`)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey([MARTS, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return MARTS if dbt_resource_props["resource_type"] == "model" else None

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        return UPSTREAM_CHANGED if dbt_resource_props["resource_type"] == "model" else None

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return OWNERS

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        return {**super().get_tags(dbt_resource_props), "layer": MARTS}

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        # `schema.table` as the source tables name theirs; dbt's own name leads with the
        # database, which is the warehouse file's name on the machine that parsed the project.
        schema = dbt_resource_props["schema"]
        name = dbt_resource_props.get("alias") or dbt_resource_props["name"]
        return {**super().get_metadata(dbt_resource_props), "dagster/table_name": f"{schema}.{name}"}


project = DbtProject(project_dir=PROJECT_DIR, profiles_dir=PROJECT_DIR)


@dbt_assets(
    manifest=ensure_manifest(),
    project=project,
    name="marts_models",
    dagster_dbt_translator=MartsTranslator(DagsterDbtTranslatorSettings(enable_code_references=True)),
    pool="duckdb",
)
def marts_models(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse) -> Iterator[Any]:
    """`dbt build` of the selected models and their tests, holding the warehouse file meanwhile."""
    with warehouse.lock():
        invocation = _build(context, dbt, warehouse)
        yield from invocation.stream()


def _build(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse) -> Any:
    """Start `dbt build` against the warehouse resource's file (profiles.yml reads its path from
    CRM_ASSETS_DUCKDB_PATH; dbt runs in the project folder, so the path is made absolute).

    The variable is set only while dbt is started: the subprocess takes a copy of the environment.
    """
    database = warehouse.duckdb.database
    path = database if database.startswith("md:") or database == ":memory:" else os.path.abspath(database)
    previous = os.environ.get(DUCKDB_PATH_VARIABLE)
    os.environ[DUCKDB_PATH_VARIABLE] = path
    try:
        return dbt.cli(["build"], context=context)
    finally:
        if previous is None:
            del os.environ[DUCKDB_PATH_VARIABLE]
        else:
            os.environ[DUCKDB_PATH_VARIABLE] = previous


def marts_definitions() -> dg.Definitions:
    """The models and the dbt resource (the warehouse resource is bound by definitions.py)."""
    dbt = DbtCliResource(project_dir=project, dbt_executable=_dbt_executable())
    return dg.Definitions(assets=[marts_models], resources={"dbt": dbt})
