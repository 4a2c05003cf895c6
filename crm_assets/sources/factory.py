"""Build a source's Dagster assets and checks from its catalog.

Each source becomes one subsettable multi-asset with an asset per table. Its run reads the
partition window from the API once, writes batches of pages, each in one transaction, on a
writer thread beside the reading (:mod:`crm_assets.warehouse.writer`: the file is locked only
while batches are being written or state is read, and let go while the load waits on the API,
so models and syncs interleave with a long backfill; the project's file lock serialises
writers, so the step takes no Dagster pool slot), and computes the tables' checks in the same
step once every table is written. A range of daily partitions is one run and one pass
over the API. The first partition has no lower bound, so the union of all partitions is the
whole table. Selecting only checks (the UI's *Execute* on a check) evaluates them against the
warehouse as it is, without a partition and without reading the API.
"""


import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext
from pydantic import Field

from crm_assets.catalog import Catalog, Column, Stream
from crm_assets.sources.checks import api_totals, check_specs, evaluate_checks
from crm_assets.sources.errors import FatalSourceError
from crm_assets.sources.family import Batch, FamilyStats, SourceReader
from crm_assets.warehouse.page_arrow import use_system_allocator
from crm_assets.warehouse.records import concat
from crm_assets.warehouse.store import Warehouse, WarehouseSession
from crm_assets.warehouse.table_write import TableWrite, WriteCounts
from crm_assets.warehouse.writer import BatchWriter, BriefSessions

OWNERS = ["team:data-platform"]


class SourceRunConfig(dg.Config):
    """Run options an operator sets in the launchpad."""

    allow_snapshot_shrink: bool = Field(
        default=False,
        description=(
            "Accept a full-table snapshot that is much smaller than the stored table (records "
            "really deleted at the source). Without it such a run fails and keeps the old rows."
        ),
    )


def daily_partitions(start_date: str) -> dg.DailyPartitionsDefinition:
    """Days in UTC from `start_date`, including today's still-open day for intraday CDC."""
    return dg.DailyPartitionsDefinition(start_date=start_date, timezone="UTC", end_offset=1)


def _description(catalog: Catalog, s: Stream) -> str:
    root = catalog.root_of(s.name)
    lines = [s.description, ""]
    if s.is_root:
        lines.append(f"- **Endpoint:** `GET {s.endpoint}` (list key `{s.envelope}`)")
    elif s.is_derived:
        lines.append(f"- **Derived from:** `{s.parent}[].{s.path}`, no request of its own")
    else:
        lines.append(f"- **Endpoint:** `GET {s.endpoint}` for each `{s.parent}` record written")
    lines.append(f"- **Primary key:** {', '.join(f'`{k}`' for k in s.primary_key)}")
    if s.replication == "full_table":
        lines.append("- **Replication:** full table; every run writes a complete snapshot")
    elif s.is_root:
        lines.append(
            f"- **Replication:** CDC on `{s.replication_key}`; partition D holds the rows whose "
            f"`{s.replication_key}` falls on D (UTC), and the first partition also every row last "
            "changed before the start date"
        )
    else:
        lines.append(
            f"- **Replication:** with its root `{root.name}`: a row belongs to the partition of its "
            f"`{root.name}` record's `{root.replication_key}`, and the rows of a `{root.name}` record "
            "are replaced whenever that record is written"
        )
    lines.append(f"- **Warehouse table:** `{s.table}`")
    if catalog.docs:
        lines.append(f"- **API docs:** {catalog.docs}")
    return "\n".join(lines)


def _spec(catalog: Catalog, s: Stream, partitions_def: dg.PartitionsDefinition) -> dg.AssetSpec:
    root = catalog.root_of(s.name)
    return dg.AssetSpec(
        key=dg.AssetKey([s.source, s.name]),
        description=_description(catalog, s),
        group_name=s.source,
        kinds={s.source, "duckdb"},
        owners=OWNERS,
        tags={"source": s.source, "replication": s.replication, "layer": "raw"},
        # Late by one load (the catalog's freshness_hours): warn; by two: fail.
        freshness_policy=dg.FreshnessPolicy.time_window(
            warn_window=timedelta(hours=s.freshness_hours), fail_window=timedelta(hours=2 * s.freshness_hours)
        ),
        deps=[dg.AssetKey([s.source, s.parent])] if s.parent else [],
        partitions_def=partitions_def,
        skippable=True,
        metadata={
            "dagster/table_name": s.table,
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(c.name, c.type.lower(), description=c.description) for c in s.columns]
                + [dg.TableColumn("_synced_at", "timestamptz", description="When this row version was written")]
            ),
            "primary_key": ", ".join(s.primary_key),
            "replication_key": (
                s.replication_key or "" if s.is_root else f"{root.name}.{root.replication_key or ''} (its root's)"
            ),
        },
    )


def build_source_assets(
    catalog: Catalog,
    *,
    resource_key: str,
    reader: Callable[[Any, Catalog], SourceReader],
    partitions_def: dg.DailyPartitionsDefinition,
) -> dg.AssetsDefinition:
    """One multi-asset for every table of `catalog`, read by `reader(session, catalog)` over the
    session that the resource named `resource_key` opens."""

    @contextlib.contextmanager
    def open_reader(source: Any, catalog: Catalog) -> Iterator[SourceReader]:
        with source.open() as api:
            yield reader(api, catalog)

    first_day = partitions_def.start

    @dg.multi_asset(
        name=f"{catalog.source}_tables",
        specs=[_spec(catalog, s, partitions_def) for s in catalog.streams],
        check_specs=[c for s in catalog.streams for c in check_specs(s)],
        can_subset=True,
        required_resource_keys={resource_key, "warehouse"},
        backfill_policy=dg.BackfillPolicy.single_run(),
        op_tags={"source": catalog.source},
    )
    def _tables(context: AssetExecutionContext, config: SourceRunConfig) -> Iterator[Any]:
        source = getattr(context.resources, resource_key)
        warehouse: Warehouse = context.resources.warehouse
        try:
            if context.selected_asset_keys:
                yield from _materialize(context, config, warehouse, source, open_reader, catalog, first_day)
            else:  # the checks alone, e.g. the UI's *Execute* on a check
                yield from _checks_alone(context, warehouse, source, open_reader, catalog)
        except FatalSourceError as exc:  # already redacted by the source; one line, no traceback
            raise dg.Failure(description=str(exc)) from None

    return _tables


def _materialize(
    context: AssetExecutionContext,
    config: SourceRunConfig,
    warehouse: Warehouse,
    source: Any,
    open_reader: Callable[[Any, Catalog], contextlib.AbstractContextManager[SourceReader]],
    catalog: Catalog,
    first_day: datetime,
) -> Iterator[Any]:
    """Read the run's window family by family, write it, then evaluate the selected checks.

    The warehouse is opened (locked) only for each write and for the queries after it, never
    while the API is read, so other runs' steps interleave with a long backfill.
    """
    use_system_allocator()
    start, end = context.partition_time_window
    window = (None if start <= first_day else start, end)
    wanted = {key.path[-1] for key in context.selected_asset_keys}
    roots = [r for r in catalog.roots if any(s.name in wanted for s in catalog.family(r.name))]
    failures: list[str] = []
    synced: list[Stream] = []
    briefly = BriefSessions(warehouse, config.allow_snapshot_shrink)
    with open_reader(source, catalog) as reader, \
            BatchWriter(briefly, warehouse.idle_release_seconds, warehouse.hold_seconds) as writer:
        writer.call(lambda wh: wh.ensure_tables([s for s in catalog.streams if s.name in wanted]))
        single_day = len(context.partition_keys) == 1
        for root in roots:
            members = [s for s in catalog.family(root.name) if s.name in wanted]
            try:
                results = _sync_family(context, writer, reader, root, members, wanted, window, single_day)
            except FatalSourceError as exc:  # stops the run, naming the table it was reading
                raise FatalSourceError(reader.redact(f"{root.table}: {exc}")) from None
            except Exception as exc:  # one family failing must not hide the others' results
                message = reader.redact(f"{root.table}: {exc}")
                failures.append(message)
                context.log.error(message)
                continue
            yield from results
            synced.extend(members)
        # Checks run once every family is written, so references see their targets.
        yield from _checks(context.selected_asset_check_keys, writer.call, reader, catalog, synced)
    if failures:
        raise dg.Failure(
            description="Some streams failed:\n" + "\n".join(failures),
            metadata={"failed_streams": len(failures)},
        )


def _checks(
    selected: set[dg.AssetCheckKey],
    in_warehouse: Callable[[Callable[[WarehouseSession], Any]], Any],
    reader: SourceReader,
    catalog: Catalog,
    streams: list[Stream],
) -> Iterator[dg.AssetCheckResult]:
    """The selected checks of `streams`: the API's totals asked first, then the warehouse's
    queries, run by `in_warehouse` on an open session."""
    totals = api_totals(selected, streams, reader.count)
    yield from in_warehouse(
        lambda wh: [
            result
            for s in streams
            for result in evaluate_checks(selected, wh, catalog, s, lambda s: totals.get(s.name))
        ]
    )


def _checks_alone(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    source: Any,
    open_reader: Callable[[Any, Catalog], contextlib.AbstractContextManager[SourceReader]],
    catalog: Catalog,
) -> Iterator[dg.AssetCheckResult]:
    """The selected checks against the warehouse as it is (no partition, no API read)."""
    selected = context.selected_asset_check_keys
    names = {k.asset_key.path[-1] for k in selected}
    def in_brief_session(work: Callable[[WarehouseSession], Any]) -> Any:
        with BriefSessions(warehouse)() as wh:
            return work(wh)

    with open_reader(source, catalog) as reader:
        yield from _checks(selected, in_brief_session, reader, catalog,
                           [s for s in catalog.streams if s.name in names])


def _coalesce(
    batches: Iterator[Batch], max_records: int, known: dict[str, list[Column]]
) -> Iterator[list[TableWrite]]:
    """Convert each page's writes to Arrow as it is read, and join consecutive pages into
    writes of about `max_records` parent records.

    Each write is one transaction, so fewer, larger writes cut DuckDB's per-statement and
    per-commit costs. The API's records live only as long as their page: what waits for the
    writer is Arrow, so memory is bounded by `max_records` rows, not by the table.
    """
    pending: dict[str, list[TableWrite]] = {}
    size = 0
    for batch in batches:
        for w in batch.writes:
            pending.setdefault(w.stream.name, []).append(w.converted(known[w.stream.table]))
        size += batch.fetched
        if size >= max_records:
            yield [_joined(parts) for parts in pending.values()]
            pending, size = {}, 0
    if pending:
        yield [_joined(parts) for parts in pending.values()]


def _joined(parts: list[TableWrite]) -> TableWrite:
    """One write of a table's converted pages (the parents they scope, their versions)."""
    first = parts[0]
    if len(parts) == 1:
        return first

    def joined(name: str) -> list[Any] | None:
        if getattr(first, name) is None:
            return None
        return [value for part in parts for value in getattr(part, name)]

    rows = concat([part.rows for part in parts if part.rows is not None])
    return replace(first, rows=rows, scope=joined("scope"), scope_versions=joined("scope_versions"))


def _sync_family(
    context: dg.AssetExecutionContext,
    writer: BatchWriter,
    reader: SourceReader,
    root: Stream,
    members: list[Stream],
    wanted: set[str],
    window: tuple[datetime | None, datetime],
    single_day: bool,
) -> list[dg.MaterializeResult]:
    """Read and write one family's window (writes on a thread beside the reading), then move
    its cursor and record the window once every batch is committed."""
    start, end = window
    began, requests_before, retries_before = time.perf_counter(), reader.requests, reader.retries
    read_began = datetime.now(UTC)
    stats = FamilyStats()
    counts = {s.name: WriteCounts() for s in members}

    def add(written: dict[str, WriteCounts]) -> None:
        for name, c in written.items():
            counts[name].add(c)

    batches_before = writer.batches
    try:
        batch_records = writer.sessions.warehouse.batch_records
        known = writer.sessions.columns
        for writes in _coalesce(reader.read(root, start, end, wanted, stats), batch_records, known):
            writer.submit(writes, add)
    finally:
        failure = writer.settle()
    if failure is not None:
        raise failure
    batches = writer.batches - batches_before
    requests, retries = reader.requests - requests_before, reader.retries - retries_before

    def finish(wh: WarehouseSession) -> dict[str, dict[str, Any]]:
        # Pages are not ordered by the replication key, so the cursor moves only once every
        # page of the window is committed.
        if stats.newest and root.name in wanted:
            wh.write_batch([], {root: stats.newest})
        for s in members:
            if root.replication == "full_table":
                wh.record_window(s, None, read_began)
            else:
                wh.record_window(s, start, min(end, read_began))
        seconds = time.perf_counter() - began
        return {
            s.name: _metadata(wh, s, root, counts[s.name], stats, (start, end), single_day,
                              requests, retries, seconds)
            for s in members
        }

    metadata = writer.call(finish)
    seconds = time.perf_counter() - began
    context.log.info(
        f"{root.table}: {sum(stats.fetched.values())} records in {sum(stats.pages.values())} pages "
        f"({requests} requests, {retries} retries, {stats.outside_window} records outside the window), "
        f"{batches} write batches, {seconds:.2f}s"
    )
    return [dg.MaterializeResult(asset_key=dg.AssetKey([s.source, s.name]), metadata=metadata[s.name])
            for s in members]


def _metadata(
    wh: WarehouseSession,
    s: Stream,
    root: Stream,
    c: WriteCounts,
    stats: FamilyStats,
    window: tuple[datetime | None, datetime],
    single_day: bool,
    requests: int,
    retries: int,
    seconds: float,
) -> dict[str, Any]:
    """What the UI shows on each partition's materialization.

    Dagster copies one result onto the event of every day in the range, so counts of the whole
    run say so in their names, and `dagster/row_count` (the rows of this partition) is only set
    when the run covers one day. Entries stay few: each costs about 1.5 s per 10,000 events.
    """
    metadata: dict[str, Any] = {
        "run_rows_written": dg.MetadataValue.int(c.written),
        "run_rows_inserted": dg.MetadataValue.int(c.inserted),
        "run_rows_updated": dg.MetadataValue.int(c.updated),
        "run_pages": dg.MetadataValue.int(stats.pages.get(s.name, 0)),
        "run_seconds": dg.MetadataValue.float(round(seconds, 3)),
    }
    if s is root:
        metadata["run_api_requests"] = dg.MetadataValue.int(requests)
        if retries:
            metadata["run_api_retries"] = dg.MetadataValue.int(retries)
    else:
        metadata["run_rows_deleted"] = dg.MetadataValue.int(c.deleted)
    if single_day and (rows := wh.rows_in_window(s, root, *window)) is not None:
        metadata["dagster/row_count"] = dg.MetadataValue.int(rows)
    if len(wh.columns(s)) > len(s.columns):  # the API added fields: show the table as stored
        metadata["dagster/column_schema"] = wh.table_schema(s)
    return metadata
