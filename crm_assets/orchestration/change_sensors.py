"""A change sensor per source: probe each table cheaply, load today's partition of those that changed.

Each tick reads every root table's cursor (its newest replication key) from the warehouse's
``crm_assets_state.stream_state``, asks the API the question of :mod:`.probes`, and requests one
run of today's partition for the tables that changed, with their child tables (which are read
with their root) and the tables re-read because of them (a user's project assignments when one
of the user's assignments changed). The sensor's own cursor keeps each changed table's probe
signature: until the run moves the table's warehouse cursor, the same answer is the change
already requested, not a new one, so a tick during the run asks for nothing more. A change made
late yesterday and found after midnight is today's run's to miss and the daily schedule's to
read (its ``updated_at`` is on yesterday).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg
import filelock

from crm_assets.catalog import Catalog, Stream
from crm_assets.orchestration.probes import PROBES, Probe
from crm_assets.orchestration.schedules import day_key
from crm_assets.sources.errors import FatalSourceError, SourceError
from crm_assets.warehouse import Warehouse

# A sensor tick must end within a minute: wait this long for the warehouse, else skip the tick.
WAREHOUSE_WAIT_SECONDS = 15.0
# Harvest allows 100 requests per 15 s; a tick costs one per root table.
HARVEST_INTERVAL_SECONDS = 300
# Zoho lets a refresh token mint 10 access tokens per 10 minutes and every tick mints one.
ZOHO_INTERVAL_SECONDS = 600
INTERVALS = {"harvest": HARVEST_INTERVAL_SECONDS, "zoho": ZOHO_INTERVAL_SECONDS}


def tables_to_load(catalog: Catalog, changed: Sequence[Stream]) -> list[str]:
    """The changed roots, their families, and every stream re-read when one of them changes."""
    names: list[str] = []
    for root in changed:
        for s in catalog.family(root.name):
            if s.name not in names:
                names.append(s.name)
    for s in catalog.streams:
        if s.reread_when and s.reread_when[0] in names:
            for member in catalog.family(s.name):
                if member.name not in names:
                    names.append(member.name)
    return names


def warehouse_cursors(warehouse: Warehouse, streams: Sequence[Stream]) -> dict[str, datetime | None]:
    """Each stream's cursor from ``crm_assets_state.stream_state`` (None: never loaded)."""
    quick = warehouse.model_copy(update={"lock_timeout_seconds": WAREHOUSE_WAIT_SECONDS})
    with quick.session() as session:
        session.ensure_state_tables()
        return {s.name: session.cursor(s) for s in streams}


def compare(probes: Sequence[Probe], previous: dict[str, str]) -> tuple[list[Stream], dict[str, str]]:
    """(streams with a change not requested yet, the sensor's next cursor)."""
    changed: list[Stream] = []
    cursor: dict[str, str] = {}
    for p in probes:
        before = previous.get(p.stream.name)
        if p.fingerprint:
            cursor[p.stream.name] = p.signature
            if before is not None and before != p.signature:
                changed.append(p.stream)
        elif p.changed:
            cursor[p.stream.name] = p.signature
            if before != p.signature:
                changed.append(p.stream)
    return changed, cursor


def change_sensor(catalog: Catalog, assets: dg.AssetsDefinition) -> dg.SensorDefinition:
    """`<source>_changes` for the source of `catalog`, whose tables are `assets`."""
    source = catalog.source
    probe = PROBES[source]
    partitions_def = assets.partitions_def
    roots = list(catalog.roots)

    @dg.sensor(
        name=f"{source}_changes",
        target=dg.AssetSelection.assets(*assets.keys),
        minimum_interval_seconds=INTERVALS.get(source, HARVEST_INTERVAL_SECONDS),
        default_status=dg.DefaultSensorStatus.STOPPED,
        required_resource_keys={source, "warehouse"},
        description=(
            f"Asks the {source} API cheaply which tables changed since their cursor and loads "
            "today's partition of those."
        ),
    )
    def _changes(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        try:
            cursors = warehouse_cursors(context.resources.warehouse, roots)
        except filelock.Timeout:
            return dg.SkipReason(f"the warehouse stayed busy for {WAREHOUSE_WAIT_SECONDS:.0f}s; next tick")
        previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        probes: list[Probe] = []
        with getattr(context.resources, source).open() as session:
            for stream in roots:
                try:
                    probes.append(probe(session, stream, cursors.get(stream.name)))
                except FatalSourceError:
                    raise
                except SourceError as exc:  # already redacted; the other tables still count
                    context.log.warning(f"{stream.table}: not probed this tick: {exc}")
        changed, cursor = compare(probes, previous)
        probed = {p.stream.name for p in probes}
        for name, signature in previous.items():  # keep what a failed probe could not renew
            if name not in probed:
                cursor[name] = signature
        next_cursor = json.dumps(cursor, sort_keys=True)
        if not changed:
            return dg.SensorResult(
                skip_reason=f"no {source} table changed since its cursor", cursor=next_cursor
            )
        names = tables_to_load(catalog, changed)
        today = day_key(partitions_def, datetime.now(UTC))  # type: ignore[arg-type]
        run_key = hashlib.sha256(f"{today}:{next_cursor}:{names}".encode()).hexdigest()[:24]
        context.log.info(f"{source}: changed {', '.join(s.name for s in changed)}; loading {today}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"{source}_changes:{run_key}",
                    asset_selection=[dg.AssetKey([source, n]) for n in names],
                    partition_key=today,
                    tags={"source": source, "crm_assets/changed_tables": ",".join(s.name for s in changed)},
                )
            ],
            cursor=next_cursor,
        )

    return _changes
