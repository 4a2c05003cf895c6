"""The asset checks every source table carries, computed from the warehouse as it is.

They run in the same step as a materialization (once every family is written, so references
see their targets) and also on their own from the UI, without reading the API: only the row
count asks the API, for its total, in one one-record request per table, made before the
warehouse is opened (:func:`api_totals`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from crm_assets.catalog import Catalog, Stream
from crm_assets.warehouse.store import WarehouseSession

PRIMARY_KEY_CHECK = "primary_key_unique_and_not_null"
ROW_COUNT_CHECK = "row_count_matches_api"
REFERENCES_CHECK = "references_resolve"
FRESHNESS_CHECK = "fresh"


def check_specs(s: Stream) -> list[dg.AssetCheckSpec]:
    key = dg.AssetKey([s.source, s.name])
    specs = [
        dg.AssetCheckSpec(
            PRIMARY_KEY_CHECK,
            asset=key,
            blocking=True,
            description=f"Every row has a ({', '.join(s.primary_key)}) and no two rows share one.",
        )
    ]
    if s.is_root and s.reports_total:
        specs.append(
            dg.AssetCheckSpec(
                ROW_COUNT_CHECK,
                asset=key,
                description=(
                    "The table holds as many rows as the API lists (its total without a change "
                    "filter): a shortfall means days not loaded yet or lost records, a "
                    "surplus means records deleted at the source."
                ),
            )
        )
    specs.append(
        dg.AssetCheckSpec(
            FRESHNESS_CHECK,
            asset=key,
            description=(
                f"Every change up to at most {s.freshness_hours:g} hours ago is in the table: the "
                "partitions loaded so far join up from the first one to that instant."
            ),
        )
    )
    if s.references:
        refs = ", ".join(f"{col} → {target}" for col, target in s.references.items())
        specs.append(
            dg.AssetCheckSpec(REFERENCES_CHECK, asset=key, description=f"Referenced rows exist: {refs}.")
        )
    return specs


def api_totals(
    selected: set[dg.AssetCheckKey], streams: list[Stream], api_count: Callable[[Stream], int | None]
) -> dict[str, int | None]:
    """The API's total for each of `streams` whose row-count check is selected, asked before the
    warehouse is opened so that no API call happens while the file is locked."""
    return {
        s.name: api_count(s)
        for s in streams
        if dg.AssetCheckKey(dg.AssetKey([s.source, s.name]), ROW_COUNT_CHECK) in selected
    }


def evaluate_checks(
    selected: set[dg.AssetCheckKey],
    wh: WarehouseSession,
    catalog: Catalog,
    s: Stream,
    api_count: Callable[[Stream], int | None],
) -> Iterator[dg.AssetCheckResult]:
    """The selected checks of table `s`; `api_count` asks the API how many records it lists."""
    key = dg.AssetKey([s.source, s.name])

    def wanted(name: str) -> bool:
        return dg.AssetCheckKey(key, name) in selected

    if not wh.table_exists(s):  # no row breaks the key yet; the rest cannot hold
        for name in (PRIMARY_KEY_CHECK, ROW_COUNT_CHECK, FRESHNESS_CHECK, REFERENCES_CHECK):
            if wanted(name):
                yield dg.AssetCheckResult(
                    asset_key=key, check_name=name, passed=name == PRIMARY_KEY_CHECK,
                    severity=dg.AssetCheckSeverity.WARN,
                    description=f"{s.table} is not loaded yet: materialize a partition first.",
                )
        return
    if wanted(PRIMARY_KEY_CHECK):
        nulls, dupes, sample = wh.primary_key_problems(s)
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=PRIMARY_KEY_CHECK,
            passed=nulls == 0 and dupes == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"null_key_rows": nulls, "duplicate_keys": dupes, "sample_duplicates": str(sample)},
        )
    if wanted(ROW_COUNT_CHECK):
        rows, api_total = wh.row_count(s), api_count(s)
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=ROW_COUNT_CHECK,
            passed=api_total == rows,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"table_rows": rows, "api_total": api_total if api_total is not None else -1},
            description=None if api_total is not None else "The API reported no total for this listing.",
        )
    if wanted(FRESHNESS_CHECK):
        yield _freshness(wh, s, key)
    if wanted(REFERENCES_CHECK):
        yield _references(wh, catalog, s, key)


def _freshness(wh: WarehouseSession, s: Stream, key: dg.AssetKey) -> dg.AssetCheckResult:
    complete_through = wh.synced_through(s)
    age_hours = (datetime.now(UTC) - complete_through).total_seconds() / 3600 if complete_through else None
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=FRESHNESS_CHECK,
        passed=age_hours is not None and age_hours <= s.freshness_hours,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "complete_through": complete_through.isoformat() if complete_through else "never",
            "age_hours": round(age_hours, 2) if age_hours is not None else -1.0,
            "limit_hours": float(s.freshness_hours),
        },
        description=None if complete_through else "The loaded partitions do not join up from the first one yet.",
    )


def _references(wh: WarehouseSession, catalog: Catalog, s: Stream, key: dg.AssetKey) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = {}
    dangling_total = 0
    for column, target_name in s.references.items():
        target = catalog.stream(target_name)
        # With its target not loaded, every id a column holds points at nothing.
        dangling, sample = wh.dangling_references(s, column, target if wh.table_exists(target) else None)
        dangling_total += dangling
        metadata[f"{column}_dangling"] = dangling
        if sample:
            metadata[f"{column}_sample"] = str(sample)
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=REFERENCES_CHECK,
        passed=dangling_total == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )
