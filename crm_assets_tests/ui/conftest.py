"""A small warehouse with history, the Dagster webserver over it, and Debian's Chromium.

Where Chromium or the playwright package is missing, the browser tests skip saying why, unless
CRM_ASSETS_REQUIRE_BROWSER=1 (CI sets it after installing Chromium): then they fail.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from crm_assets_tests.conftest import harvest_assets_from, harvest_resources, materialize_harvest
from crm_assets_tests.ui.webserver import ROOT, Webserver, project_environment

SCREENSHOTS = ROOT / "test-output" / "ui"
CHROMIUM = "/usr/bin/chromium"
# No GPU, no sandbox (root in CI), and none of Chromium's own network traffic, which this
# machine's closed network refuses.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOADED_TABLES = ["clients", "projects", "users", "time_entries"]
LOADED_DAYS = 3
# A week of partitions: the UI computes every node's partition status on each page, and over
# the sandbox's full year that alone took the graph page twice as long.
PARTITION_DAYS = 7

_screenshots: list[Path] = []


@dataclass
class LoadedUI:
    """The webserver, and what the test loaded behind it."""

    server: Webserver
    start_date: str
    days: list[str]
    tables: list[str]
    checks_passed: dict[dg.AssetCheckKey, bool]
    duckdb_path: Path

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def dagster_ui(sandbox, tmp_path_factory) -> Iterator[LoadedUI]:
    """A few days of a few Harvest tables materialized into a fresh instance (a copy of the
    shipped dagster.yaml) and warehouse, and `dagster-webserver -m crm_assets.definitions`
    over both with the sandbox's environment, its sources starting a week ago; the webserver
    boots while the run runs."""
    tmp = tmp_path_factory.mktemp("dagster_ui")
    today = datetime.now(UTC).date()
    start_date = (today - timedelta(days=PARTITION_DAYS - 1)).isoformat()
    days = [(today - timedelta(days=n)).isoformat() for n in reversed(range(LOADED_DAYS))]
    env = project_environment(tmp, sandbox.env, start_date)
    home, duckdb_path = Path(env["DAGSTER_HOME"]), Path(env["CRM_ASSETS_DUCKDB_PATH"])
    # The UI's welcome pop-up covers the page until dismissed; dismissing writes this file.
    (home / ".nux").mkdir()
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    server = Webserver("crm_assets.definitions", cwd=ROOT, env=env, log_path=tmp / "webserver.log")
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            result = materialize_harvest(
                harvest_resources(sandbox, str(duckdb_path)),
                days[0],
                days[-1],
                selection=LOADED_TABLES,
                instance=instance,
                assets=harvest_assets_from(start_date),  # the partitions the webserver shows
            )
        checks_passed = {
            dg.AssetCheckKey(e.asset_key, e.check_name): e.passed
            for e in result.get_asset_check_evaluations()
        }
        server.wait_ready()
        yield LoadedUI(server, start_date, days, LOADED_TABLES, checks_passed, duckdb_path)
    finally:
        server.stop()


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (make install-dev installs it)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (never a browser Playwright downloads)."""
    missing = browser_missing()
    if missing:
        if os.getenv("CRM_ASSETS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CRM_ASSETS_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(f"browser test skipped: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True, timeout=60_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


def screenshot(page, name: str) -> Path:
    """Save what the page shows now as test output (test-output/ui/, gitignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    _screenshots.append(path)
    return path


def pytest_terminal_summary(terminalreporter) -> None:
    if _screenshots:
        terminalreporter.write_sep("-", "Dagster UI screenshots")
        for path in _screenshots:
            terminalreporter.write_line(str(path))
