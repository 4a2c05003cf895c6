"""What a user sees in the Dagster UI, served by `dagster-webserver` over a small loaded
warehouse: its GraphQL API against the definitions, and the asset graph, a sync's lineage, a
table's partitions and its checks tab in headless Chromium (screenshots in test-output/ui/)."""

from __future__ import annotations

import contextlib
from collections import Counter
from urllib.parse import quote

import dagster as dg
import duckdb
import pytest

from crm_assets.definitions import defs
from crm_assets_tests.conftest import harvest_assets_from
from crm_assets_tests.ui.conftest import screenshot

PAGE_TIMEOUT_MS = 30_000
LIVE_DATA_TIMEOUT_MS = 10_000
VIEWPORT = {"width": 1600, "height": 1000}
# Around a graph: navigation and asset tree to its left, title, tabs and toolbar above it.
GRAPH_CHROME_PX = {"width": 600, "height": 250}
FULL_NODE_SCALE = 0.6
ZOOM_STEPS, ZOOM_WAIT_MS, ZOOM_WHEEL_PX = 6, 5_000, 150
TABLE = dg.AssetKey(["harvest", "time_entries"])
MARTS = "marts"
# Class names of the UI's CSS modules (hash suffixes vary by build, the prefixes do not).
GRAPH_SVG = 'svg[class*="AssetGraphExplorer_svgContainer"]'
LINEAGE_SVG = 'svg[class*="AssetNodeLineageGraph_sVGContainer"]'
NODE_NAMES = (
    "Array.from(document.querySelectorAll('[class*=\"AssetNode_assetName\"] [data-tooltip]'))"
    ".map(e => e.dataset.tooltip)"
)
CHECK_ROW = '[class*="AssetChecks_checkRow"]'
PARTITION_ROW = '[class*="AssetEventList_assetListRow"]'

ASSETS_QUERY = """
{ assetNodes { assetKey { path } groupName
    assetChecksOrError { __typename ... on AssetChecks { checks { name blocking } } } }
  repositoriesOrError { __typename ... on RepositoryConnection { nodes {
    schedules { name cronSchedule scheduleState { status } }
    sensors { name sensorState { status } } } } } }
"""
STATE_QUERY = """
{ assetNodes { assetKey { path } partitionStats { numMaterialized numPartitions numFailed }
    assetChecksOrError { ... on AssetChecks { checks { name
      executionForLatestMaterialization { status } } } } } }
"""


def repository() -> dg.RepositoryDefinition:
    return defs.get_repository_def()


def ui_status(passed: bool) -> str:
    return "Succeeded" if passed else "Failed"


def expected_checks(key: dg.AssetKey, dagster_ui) -> dict[str, bool]:
    """Each check of `key` in the definitions, with the result the test's run recorded."""
    names = {c.name for c in repository().asset_graph.asset_check_keys if c.asset_key == key}
    return {name: dagster_ui.checks_passed[dg.AssetCheckKey(key, name)] for name in names}


# -- GraphQL --


def test_graphql_reports_the_assets_checks_schedules_and_sensors_of_the_definitions(dagster_ui):
    repo = repository()
    graph = repo.asset_graph
    data = dagster_ui.server.graphql(ASSETS_QUERY)

    served = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in data["assetNodes"]}
    assert served == {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    served_checks = {
        ("/".join(n["assetKey"]["path"]), c["name"]): c["blocking"]
        for n in data["assetNodes"]
        for c in n["assetChecksOrError"]["checks"]
    }
    assert served_checks == {
        (c.asset_key.to_user_string(), c.name): graph.get(c).blocking for c in graph.asset_check_keys
    }

    (location,) = data["repositoriesOrError"]["nodes"]
    assert {s["name"]: (s["cronSchedule"], s["scheduleState"]["status"]) for s in location["schedules"]} == {
        s.name: (s.cron_schedule, s.default_status.value) for s in repo.schedule_defs
    }, "a fresh instance shows each schedule in its default state"
    assert {s["name"]: s["sensorState"]["status"] for s in location["sensors"]} == {
        s.name: s.default_status.value for s in repo.sensor_defs
    }


def test_graphql_reports_the_loaded_partitions_and_check_results(dagster_ui):
    graph = repository().asset_graph
    nodes = {"/".join(n["assetKey"]["path"]): n for n in dagster_ui.server.graphql(STATE_QUERY)["assetNodes"]}
    loaded = {f"harvest/{table}" for table in dagster_ui.tables}
    harvest_days = harvest_assets_from(dagster_ui.start_date).partitions_def.get_partition_keys()

    stats = {key: n["partitionStats"] for key, n in nodes.items() if n["partitionStats"]}
    assert {key: s["numMaterialized"] for key, s in stats.items()} == {
        key.to_user_string(): len(dagster_ui.days) if key.to_user_string() in loaded else 0
        for key in graph.get_all_asset_keys()
        if graph.get(key).partitions_def
    }, "the loaded days of the loaded tables, nothing else"
    harvest_partitions = {s["numPartitions"] for key, s in stats.items() if key.startswith("harvest/")}
    assert harvest_partitions == {len(harvest_days)}
    assert not any(s["numFailed"] for s in stats.values())

    served = {
        (key, c["name"]): (c["executionForLatestMaterialization"] or {}).get("status")
        for key, n in nodes.items()
        for c in n["assetChecksOrError"]["checks"]
    }
    recorded = {
        (c.asset_key.to_user_string(), c.name): "SUCCEEDED" if passed else "FAILED"
        for c, passed in dagster_ui.checks_passed.items()
    }
    assert served == {
        (c.asset_key.to_user_string(), c.name): recorded.get((c.asset_key.to_user_string(), c.name))
        for c in graph.asset_check_keys
    }, "each check's latest result as the run recorded it, none for tables never loaded"


# -- the browser --


@pytest.fixture
def page(browser, dagster_ui):
    context = browser.new_context(viewport=VIEWPORT, base_url=dagster_ui.url)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def shown_asset_names(page) -> Counter:
    return Counter(page.evaluate(NODE_NAMES))


def show_whole_graph(page, svg_selector: str) -> None:
    """Unless the page already shows the whole graph with its nodes in full, make the page
    large enough for it at full size and load it again.

    A graph opens fitted to its pane; the UI draws only the nodes inside the pane, and below
    a zoom of 0.6 draws them as bare, truncated names.
    """
    svg = page.locator(svg_selector)
    svg.wait_for()
    width, height = float(svg.get_attribute("width")), float(svg.get_attribute("height"))
    box, viewport = svg.bounding_box(), page.viewport_size
    if (
        box["width"] / width >= FULL_NODE_SCALE
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= viewport["width"]
        and box["y"] + box["height"] <= viewport["height"]
    ):
        return
    page.set_viewport_size({
        "width": max(viewport["width"], int(width) + GRAPH_CHROME_PX["width"]),
        "height": max(viewport["height"], int(height) + GRAPH_CHROME_PX["height"]),
    })
    page.reload()


def wait_for_asset_names(page, count: int, name: str) -> None:
    """Wait until the page shows `count` asset nodes; on a timeout the screenshot `name` shows
    what it did show."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # only with a browser

    for _ in range(ZOOM_STEPS):
        with contextlib.suppress(PlaywrightTimeout):
            page.wait_for_function(f"n => {NODE_NAMES}.length >= n", arg=count, timeout=ZOOM_WAIT_MS)
            return
        # Fitted into its pane the graph may be drawn below the zoom that shows full names:
        # zoom in around its centre, (the pane was made large enough to hold it at full size).
        box = page.locator("svg").filter(has=page.locator('[class*="AssetNode"]')).first.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.keyboard.down("Control")  # the graph pans on a bare wheel and zooms on a pinch
        page.mouse.wheel(0, -ZOOM_WHEEL_PX)
        page.keyboard.up("Control")
    shot = screenshot(page, name)
    pytest.fail(f"{count} asset nodes expected, {dict(shown_asset_names(page))} shown; see {shot}")


def settle(page) -> None:
    """Give the nodes' live data (status, checks, partitions) a bounded time to arrive, so the
    screenshot shows it; nothing asserted depends on it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # only with a browser

    with contextlib.suppress(PlaywrightTimeout):
        page.get_by_text("Loading...").first.wait_for(state="hidden", timeout=LIVE_DATA_TIMEOUT_MS)


def test_the_asset_graph_shows_every_asset_from_the_harvest_tables_to_the_syncs(page):
    graph = repository().asset_graph
    keys = graph.get_all_asset_keys()
    groups = sorted({graph.get(key).group_name for key in keys})
    # Groups start collapsed in the global graph; `expanded` opens them (ids as the UI writes them).
    path = "/asset-groups?expanded=" + quote(",".join(f"global@global:{g}" for g in groups))
    page.goto(path)
    show_whole_graph(page, GRAPH_SVG)
    wait_for_asset_names(page, len(keys), "asset_graph")
    settle(page)
    shot = screenshot(page, "asset_graph")

    expected = Counter(key.path[-1] for key in keys)
    assert shown_asset_names(page) == expected, f"graph nodes differ from the definitions; see {shot}"
    syncs = [key for key in keys if graph.get(key).group_name == "reverse_etl"]
    tables = [key for key in keys if key.path[0] == "harvest"]
    assert syncs and tables
    marts = [key for key in keys if graph.get(key).group_name == MARTS]
    if marts:
        assert all(shown_asset_names(page)[key.path[-1]] for key in marts), f"marts nodes missing; see {shot}"


def ancestors(graph, key: dg.AssetKey) -> set[dg.AssetKey]:
    found: set[dg.AssetKey] = set()
    todo = [key]
    while todo:
        for parent in graph.get(todo.pop()).parent_keys:
            if parent not in found:
                found.add(parent)
                todo.append(parent)
    return found


def test_a_syncs_lineage_runs_from_harvest_tables_through_marts_to_the_sync(page):
    graph = repository().asset_graph
    syncs = [key for key in graph.get_all_asset_keys() if graph.get(key).group_name == "reverse_etl"]
    # The sync whose lineage passes through marts if any does, then the one reading most tables.
    sync = max(syncs, key=lambda s: (
        any(graph.get(a).group_name == MARTS for a in ancestors(graph, s)), len(ancestors(graph, s))
    ))
    upstream = ancestors(graph, sync)
    # A depth no path can exceed: the whole upstream lineage.
    depth = len(graph.get_all_asset_keys())
    page.goto(f"/assets/{sync.to_user_string()}?view=lineage&lineageScope=upstream&lineageDepth={depth}")
    show_whole_graph(page, LINEAGE_SVG)
    wait_for_asset_names(page, len(upstream) + 1, "sync_lineage")
    settle(page)
    shot = screenshot(page, "sync_lineage")

    assert shown_asset_names(page) == Counter(k.path[-1] for k in {sync, *upstream}), f"see {shot}"
    assert any(k.path[0] == "harvest" for k in upstream), "a sync reads Harvest data"
    if any(graph.get(k).group_name == MARTS for k in graph.get_all_asset_keys()):
        assert any(graph.get(k).group_name == MARTS for k in upstream), "some sync reads a marts model"


def test_a_tables_partitions_page_shows_the_loaded_days(page, dagster_ui):
    partitions = harvest_assets_from(dagster_ui.start_date).partitions_def.get_partition_keys()
    page.goto(f"/assets/{TABLE.to_user_string()}?view=partitions")
    page.get_by_text(f"Materialized ({len(dagster_ui.days)})").wait_for()
    shot = screenshot(page, "partitions")

    missing = page.get_by_text(f"Missing ({len(partitions) - len(dagster_ui.days)})")
    assert missing.is_visible(), f"see {shot}"
    missing.click()  # hide the missing partitions: the list keeps the materialized ones
    page.get_by_text(f"{len(dagster_ui.days)} Partitions Selected").wait_for()
    rows = page.locator(f"{PARTITION_ROW} [title]")
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.title)")) == dagster_ui.days


def test_a_tables_checks_tab_shows_each_check_and_its_result(page, dagster_ui):
    expected = expected_checks(TABLE, dagster_ui)
    page.goto(f"/assets/{TABLE.to_user_string()}?view=checks")
    page.locator(CHECK_ROW).nth(len(expected) - 1).wait_for()
    page.locator(CHECK_ROW).filter(has_text="primary_key_unique_and_not_null").click()
    page.get_by_text("This is a blocking asset check").wait_for()
    shot = screenshot(page, "checks")

    shown = {
        row.locator("[title]").first.get_attribute("title"): row.inner_text().splitlines()[-1]
        for row in page.locator(CHECK_ROW).all()
    }
    assert shown == {name: ui_status(passed) for name, passed in expected.items()}, f"see {shot}"
    with duckdb.connect(str(dagster_ui.duckdb_path), read_only=True) as conn:
        rows, distinct_ids = conn.execute(
            "select count(*), count(distinct id) from harvest.time_entries"
        ).fetchone()
    assert rows > 0 and rows == distinct_ids, "the loaded days hold time entries, each id once"
    assert shown["primary_key_unique_and_not_null"] == "Succeeded"
