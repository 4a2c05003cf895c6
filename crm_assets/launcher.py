"""`make demo` and `make dev`: run the platform against the sandbox, or real accounts.

When HARVEST_ACCESS_TOKEN is set the real API is used; otherwise a sandbox is started on
127.0.0.1 and its variables are exported to everything launched from here. DAGSTER_HOME is
the repository root, so the demo's runs show up in `make dev`'s UI.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path.cwd()


@contextlib.contextmanager
def platform_env() -> Iterator[str]:
    """Point the environment at real credentials if present, else at a fresh sandbox."""
    os.environ.setdefault("DAGSTER_HOME", str(ROOT))
    os.environ.setdefault("CRM_ASSETS_DUCKDB_PATH", str(ROOT / "data" / "crm.duckdb"))
    if os.getenv("HARVEST_ACCESS_TOKEN"):
        yield "real Harvest account"
        return
    from crm_assets.sandbox import SandboxProcess

    with SandboxProcess(seed=1, scale=1.0) as sandbox:
        os.environ.update(sandbox.env)
        yield f"sandbox at {sandbox.url}"


def demo() -> int:
    with platform_env() as target:
        import dagster as dg

        from crm_assets.definitions import defs
        from crm_assets.sources.harvest.assets import harvest_partitions

        keys = harvest_partitions.get_partition_keys()
        first, last = keys[0], keys[-1]
        print(f"crm_assets demo: {target}; backfilling {len(keys)} daily partitions {first}...{last}")
        job = defs.resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(
            instance=dg.DagsterInstance.get(),
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            },
            raise_on_error=False,
        )
        checks: dict[str, list[str]] = {}
        failed_checks = 0
        for evaluation in result.get_asset_check_evaluations():
            table = evaluation.asset_key.to_user_string()
            checks.setdefault(table, []).append(("ok " if evaluation.passed else "FAILED ") + evaluation.check_name)
            failed_checks += not evaluation.passed
        written = {
            e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
        print(f"\n{'table':42} {'rows':>8} {'written':>8}  checks")
        for key in sorted(written):
            meta = written[key]
            rows = meta["dagster/row_count"].value
            new = meta["rows_written"].value
            passed = sum(c.startswith("ok") for c in checks.get(key, []))
            bad = [c.split(" ", 1)[1] for c in checks.get(key, []) if not c.startswith("ok")]
            status = f"{passed} passed" + (f", {len(bad)} failed: {', '.join(bad)}" if bad else "")
            print(f"{key:42} {rows:>8} {new:>8}  {status}")
        ok = result.success and failed_checks == 0
        print(f"\nrun {result.run_id}: {'succeeded' if result.success else 'FAILED'}; "
              f"{sum(len(v) for v in checks.values())} checks, {failed_checks} failed; "
              f"warehouse {os.environ['CRM_ASSETS_DUCKDB_PATH']}")
        return 0 if ok else 1


def dev() -> int:
    with platform_env() as target:
        print(f"crm_assets dev: {target}; Dagster UI on http://127.0.0.1:3000", flush=True)
        cmd = ["dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", "3000"]
        bin_dir = Path(sys.executable).parent
        try:
            return subprocess.call([str(bin_dir / cmd[0]), *cmd[1:]])
        except KeyboardInterrupt:
            return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_assets.launcher")
    parser.add_argument("command", choices=["demo", "dev"])
    args = parser.parse_args()
    return demo() if args.command == "demo" else dev()


if __name__ == "__main__":
    sys.exit(main())
