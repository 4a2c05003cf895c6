"""Build a source's Dagster assets and checks from its catalog.

Each source becomes one subsettable multi-asset with an asset per table. Its run reads the
partition window from the API once, writes batches of pages through one warehouse session
(one DuckDB writer, no lock hand-offs between steps), and computes the tables' checks in the
same step once every table is written. A range of daily partitions is one run and one pass
over the API.
"""


import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import dagster as dg
from dagster import AssetExecutionContext

from crm_assets.catalog import Catalog, Stream
from crm_assets.warehouse.store import TableWrite, Warehouse, WarehouseSession, WriteCounts

OWNERS = ["team:data-platform"]
PRIMARY_KEY_CHECK = "primary_key_unique_and_not_null"
ROW_COUNT_CHECK = "row_count_matches_api"
REFERENCES_CHECK = "references_resolve"
FRESHNESS_CHECK = "fresh"


class FamilyStats(Protocol):
    pages: dict[str, int]
    fetched: dict[str, int]
    outside_window: int
    api_total: int | None
    newest: datetime | None


class SourceReader(Protocol):
    """What a source gives the factory: batches of writes per stream family, and counts."""

    requests: int
    retries: int

    def read(
        self, root: Stream, start: datetime, end: datetime, wanted: set[str], stats: Any
    ) -> Iterator[Any]: ...

    def new_stats(self) -> FamilyStats: ...


def daily_partitions(start_date: str) -> dg.DailyPartitionsDefinition:
    """Days in UTC from `start_date`, including today's still-open day for intraday CDC."""
    return dg.DailyPartitionsDefinition(start_date=start_date, timezone="UTC", end_offset=1)


def _description(catalog: Catalog, s: Stream) -> str:
    lines = [s.description, ""]
    if s.is_root:
        lines.append(f"- **Endpoint:** `GET {s.endpoint}` (list key `{s.envelope}`)")
    elif s.is_derived:
        lines.append(f"- **Derived from:** `{s.parent}[].{s.path}`, replaced when its parent changes")
    else:
        lines.append(f"- **Endpoint:** `GET {s.endpoint}` for each changed `{s.parent}` record")
    lines.append(f"- **Primary key:** {', '.join(f'`{k}`' for k in s.primary_key)}")
    if s.replication == "full_table":
        lines.append("- **Replication:** full table, each run writes a complete snapshot")
    elif s.is_root:
        lines.append(f"- **Replication:** CDC on `{s.replication_key}`; partition D holds the rows whose `{s.replication_key}` falls on D (UTC)")
    else:
        lines.append(f"- **Replication:** with its parent `{s.parent}`")
    lines.append(f"- **Warehouse table:** `{s.table}`")
    if catalog.docs:
        lines.append(f"- **API docs:** {catalog.docs}")
    return "\n".join(lines)


def _spec(catalog: Catalog, s: Stream, partitions_def: dg.PartitionsDefinition) -> dg.AssetSpec:
    deps = [dg.AssetKey([s.source, s.parent])] if s.parent else []
    return dg.AssetSpec(
        key=dg.AssetKey([s.source, s.name]),
        description=_description(catalog, s),
        group_name=s.source,
        kinds={s.source, "duckdb"},
        owners=OWNERS,
        tags={"source": s.source, "replication": s.replication},
        deps=deps,
        partitions_def=partitions_def,
        skippable=True,
        metadata={
            "dagster/table_name": s.table,
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(c.name, c.type.lower()) for c in s.columns]
                + [dg.TableColumn("_synced_at", "timestamptz", description="When this row version was written")]
            ),
            "primary_key": ", ".join(s.primary_key),
            "replication_key": s.replication_key or "",
        },
    )


def _check_specs(s: Stream) -> list[dg.AssetCheckSpec]:
    key = dg.AssetKey([s.source, s.name])
    specs = [
        dg.AssetCheckSpec(
            PRIMARY_KEY_CHECK,
            asset=key,
            blocking=True,
            description=f"Every row has a ({', '.join(s.primary_key)}) and no two rows share one.",
        )
    ]
    if s.is_root:
        specs.append(
            dg.AssetCheckSpec(
                ROW_COUNT_CHECK,
                asset=key,
                description=(
                    "The table holds as many rows as the API reports: for CDC, the rows updated since "
                    "the window's start; for a full table, all of them."
                ),
            )
        )
    specs.append(
        dg.AssetCheckSpec(
            FRESHNESS_CHECK,
            asset=key,
            description=f"The table reflects the API as of at most {s.freshness_hours:g} hours ago.",
        )
    )
    if s.references:
        refs = ", ".join(f"{col} → {target}" for col, target in s.references.items())
        specs.append(
            dg.AssetCheckSpec(REFERENCES_CHECK, asset=key, description=f"Referenced rows exist: {refs}.")
        )
    return specs


def build_source_assets(
    catalog: Catalog,
    *,
    resource_key: str,
    open_reader: Callable[[Any, Catalog], contextlib.AbstractContextManager[SourceReader]],
    partitions_def: dg.PartitionsDefinition,
) -> dg.AssetsDefinition:
    """One multi-asset for every table of `catalog`, read through `open_reader`."""

    @dg.multi_asset(
        name=f"{catalog.source}_tables",
        specs=[_spec(catalog, s, partitions_def) for s in catalog.streams],
        check_specs=[c for s in catalog.streams for c in _check_specs(s)],
        can_subset=True,
        required_resource_keys={resource_key, "warehouse"},
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool="duckdb",
        op_tags={"source": catalog.source},
    )
    def _tables(context: AssetExecutionContext) -> Iterator[Any]:
        start, end = context.partition_time_window
        wanted = {key.path[-1] for key in context.selected_asset_keys}
        roots = [r for r in catalog.roots if any(s.name in wanted for s in catalog.family(r.name))]
        warehouse: Warehouse = context.resources.warehouse
        failures: list[str] = []
        synced: list[tuple[Stream, FamilyStats]] = []
        with warehouse.session() as wh, open_reader(getattr(context.resources, resource_key), catalog) as reader:
            wh.ensure_tables([s for s in catalog.streams if s.name in wanted])
            for root in roots:
                members = [s for s in catalog.family(root.name) if s.name in wanted]
                try:
                    results, stats = _sync_family(
                        context, wh, reader, root, members, wanted, (start, end), warehouse.batch_records
                    )
                except Exception as exc:  # one family failing must not hide the others' results
                    failures.append(f"{root.table}: {exc}")
                    context.log.error(f"{root.table} failed: {exc}")
                    continue
                yield from results
                synced.extend((s, stats) for s in members)
            # Checks run once every family is written, so references see their targets.
            for s, stats in synced:
                yield from _checks(context, wh, stats, catalog, s, start)
        if failures:
            raise dg.Failure(
                description="Some streams failed:\n" + "\n".join(failures),
                metadata={"failed_streams": len(failures)},
            )

    return _tables


def _coalesce(batches: Iterator[Any], max_records: int) -> Iterator[list[TableWrite]]:
    """Join consecutive page batches into writes of about `max_records` parent records.

    Each write is one transaction, so fewer, larger writes cut DuckDB's per-statement and
    per-commit costs, while memory stays bounded by `max_records`, not by the table.
    """
    pending: dict[str, TableWrite] = {}
    size = 0
    for batch in batches:
        for w in batch.writes:
            held = pending.get(w.stream.name)
            if held is None:
                pending[w.stream.name] = replace(
                    w,
                    records=list(w.records),
                    parent_ids=None if w.parent_ids is None else list(w.parent_ids),
                    scope=None if w.scope is None else list(w.scope),
                )
                continue
            held.records.extend(w.records)
            if held.parent_ids is not None:
                held.parent_ids.extend(w.parent_ids or ())
            if held.scope is not None:
                held.scope.extend(w.scope or ())
        size += batch.fetched
        if size >= max_records:
            yield list(pending.values())
            pending, size = {}, 0
    if pending:
        yield list(pending.values())


def _sync_family(
    context: dg.AssetExecutionContext,
    wh: WarehouseSession,
    reader: SourceReader,
    root: Stream,
    members: list[Stream],
    wanted: set[str],
    window: tuple[datetime, datetime],
    batch_records: int,
) -> tuple[list[dg.MaterializeResult], FamilyStats]:
    start, end = window
    began, requests_before, retries_before = time.perf_counter(), reader.requests, reader.retries
    read_began = datetime.now(UTC)
    stats = reader.new_stats()
    counts = {s.name: WriteCounts() for s in members}
    batches = 0
    for writes in _coalesce(reader.read(root, start, end, wanted, stats), batch_records):
        for name, c in wh.write_batch(writes).items():
            counts[name].add(c)
        batches += 1
    # Pages are not ordered by the replication key, so the cursor moves only once every page
    # of the window is committed.
    if stats.newest and root.name in wanted:
        wh.write_batch([], {root: stats.newest})
    synced_through = read_began if root.replication == "full_table" else min(end, read_began)
    for s in members:
        wh.record_progress(s, synced_through)
    seconds = time.perf_counter() - began
    requests, retries = reader.requests - requests_before, reader.retries - retries_before
    context.log.info(
        f"{root.table}: {sum(stats.fetched.values())} records in {sum(stats.pages.values())} pages "
        f"({requests} requests, {retries} retries, {stats.outside_window} records outside the window), "
        f"{batches} write batches, {seconds:.2f}s"
    )
    results = []
    for s in members:
        c = counts[s.name]
        # Dagster copies this onto the event of every day in the range, so it stays lean: each
        # entry costs about 1.5 s per 10,000 (table, day) events.
        metadata: dict[str, Any] = {
            "dagster/row_count": dg.MetadataValue.int(wh.row_count(s)),
            "rows_written": dg.MetadataValue.int(c.written),
            "rows_inserted": dg.MetadataValue.int(c.inserted),
            "rows_updated": dg.MetadataValue.int(c.updated),
            "pages": dg.MetadataValue.int(stats.pages.get(s.name, 0)),
            "seconds": dg.MetadataValue.float(round(seconds, 3)),
        }
        if s is root:
            metadata["api_requests"] = dg.MetadataValue.int(requests)
            if retries:
                metadata["api_retries"] = dg.MetadataValue.int(retries)
        else:
            metadata["rows_deleted"] = dg.MetadataValue.int(c.deleted)
        if len(wh.columns(s)) > len(s.columns):  # the API added fields: show the table as stored
            metadata["dagster/column_schema"] = wh.table_schema(s)
        results.append(dg.MaterializeResult(asset_key=dg.AssetKey([s.source, s.name]), metadata=metadata))
    return results, stats


def _checks(
    context: dg.AssetExecutionContext,
    wh: WarehouseSession,
    stats: FamilyStats,
    catalog: Catalog,
    s: Stream,
    start: datetime,
) -> Iterator[dg.AssetCheckResult]:
    key = dg.AssetKey([s.source, s.name])
    selected = context.selected_asset_check_keys

    def wanted(name: str) -> bool:
        return dg.AssetCheckKey(key, name) in selected

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
        yield _row_count_check(wh, stats, s, key, start)
    if wanted(FRESHNESS_CHECK):
        synced_through = wh.synced_through(s)
        age_hours = (datetime.now(UTC) - synced_through).total_seconds() / 3600 if synced_through else None
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=FRESHNESS_CHECK,
            passed=age_hours is not None and age_hours <= s.freshness_hours,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "synced_through": synced_through.isoformat() if synced_through else "never",
                "age_hours": round(age_hours, 2) if age_hours is not None else -1.0,
                "limit_hours": float(s.freshness_hours),
            },
        )
    if wanted(REFERENCES_CHECK):
        metadata: dict[str, Any] = {}
        dangling_total = 0
        for column, target_name in s.references.items():
            target = catalog.stream(target_name)
            if not wh.table_exists(target):
                metadata[f"{column}_unchecked"] = f"{target.table} is not loaded yet"
                continue
            dangling, sample = wh.dangling_references(s, column, target)
            dangling_total += dangling
            metadata[f"{column}_dangling"] = dangling
            if sample:
                metadata[f"{column}_sample"] = str(sample)
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=REFERENCES_CHECK,
            passed=dangling_total == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=metadata,
        )


def _row_count_check(
    wh: WarehouseSession, stats: FamilyStats, s: Stream, key: dg.AssetKey, start: datetime
) -> dg.AssetCheckResult:
    """The table against the count the API reported for this very read.

    For a CDC stream the API counts every record updated since the window's start, so the
    table must hold as many rows updated since then: a shortfall means lost pages or later
    partitions not loaded yet, a surplus means records deleted in the source.
    """
    since = None if s.replication == "full_table" else start
    rows = wh.row_count(s, since=since)
    api_total = stats.api_total
    scope = "whole table" if since is None else f"rows with {s.replication_key} >= {start.isoformat()}"
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=ROW_COUNT_CHECK,
        passed=api_total is not None and api_total == rows,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"table_rows": rows, "api_total": api_total if api_total is not None else -1, "scope": scope},
        description=None if api_total is not None else "The API reported no total for this listing.",
    )
