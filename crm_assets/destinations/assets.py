"""Sync specs as Dagster definitions: an asset and a rejections check per sync.

The asset's upstream assets are the tables its SQL reads (see :mod:`.lineage`), and the syncs
whose records its lookup columns point at (see :func:`lookup_deps`); running it
pushes the changed rows and records the outcome counts as metadata. The check fails while the
sync has rejected rows in ``reverse_etl.rejections``; it reads only the warehouse, so it can run
alone. A sync takes no `duckdb` pool slot: it holds the warehouse's file lock only while it
reads its query and records outcomes, never during the API calls, so it does not wait behind a
backfill's network time.
"""

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster import AssetCheckExecutionContext, AssetExecutionContext

from crm_assets.destinations.lineage import result_names
from crm_assets.destinations.specs import SyncSpec
from crm_assets.destinations.tracking import REJECTIONS, SyncTracking
from crm_assets.orchestration.automation import UPSTREAM_CHANGED

if TYPE_CHECKING:
    from crm_assets.destinations.machinery import Destination

OWNERS = ["team:data-platform"]
GROUP = "reverse_etl"
REJECTIONS_CHECK = "no_rejections"


def _open_salesforce(resource: Any, spec: SyncSpec) -> AbstractContextManager["Destination"]:
    from crm_assets.destinations.salesforce.writer import open_salesforce  # loads simple-salesforce

    return open_salesforce(resource, spec)


def _open_zoho(resource: Any, spec: SyncSpec) -> AbstractContextManager["Destination"]:
    from crm_assets.destinations.zoho import open_zoho

    return open_zoho(resource, spec)


# How each destination opens a writer for a run, from its resource (bound to the same key: the
# Zoho source's `zoho` resource writes Zoho syncs too).
OPENERS: dict[str, Callable[[Any, SyncSpec], AbstractContextManager["Destination"]]] = {
    "salesforce": _open_salesforce,
    "zoho": _open_zoho,
}


def _description(spec: SyncSpec) -> str:
    how = {
        "append": "inserts every new or changed row",
        "truncate": "deletes every record, then inserts the result",
        "update": f"upserts on `{spec.key}`" if spec.upsert else f"updates records by `{spec.match_key}`",
    }[spec.mode]
    zoho = ""
    if spec.destination == "zoho":
        zoho = (
            f" Workflow rules {'run' if spec.trigger_workflow else 'do not run'}; null columns "
            f"{'clear their fields' if spec.include_nulls else 'leave their fields unchanged'}."
        )
    return (
        f"Pushes the query's rows into {spec.destination} `{spec.object}`: {how}.{zoho} "
        "Only rows changed since "
        f"their last successful push are sent{' (truncate: all)' if spec.mode == 'truncate' else ''}.\n\n"
        f"```sql\n{spec.query.strip()}\n```"
    )


def lookup_deps(spec: SyncSpec, specs: Sequence[SyncSpec]) -> list[dg.AssetKey]:
    """Syncs whose records this one points at: a column ``Rel.Ext__c`` finds the related record
    by the external id ``Ext__c``, so the sync that upserts on ``Ext__c`` should run first."""
    writers = {(s.destination, s.key.lower()): s for s in specs if s.upsert and s.key and s is not spec}
    deps = []
    for column in result_names(spec.query):
        _, _, external_id = column.partition(".")
        writer = writers.get((spec.destination, external_id.lower())) if external_id else None
        if writer is not None:
            deps.append(dg.AssetKey(list(writer.asset_key)))
    return deps


def build_sync_asset(spec: SyncSpec, upstream_syncs: Sequence[dg.AssetKey] = ()) -> dg.AssetsDefinition:
    key = dg.AssetKey(list(spec.asset_key))

    @dg.asset(
        key=key,
        deps=[*(dg.AssetKey([schema, table]) for schema, table in spec.tables), *upstream_syncs],
        group_name=GROUP,
        kinds={"duckdb", spec.destination},
        owners=OWNERS,
        description=_description(spec),
        required_resource_keys={"warehouse", spec.destination},
        automation_condition=UPSTREAM_CHANGED,
    )
    def _sync(context: AssetExecutionContext) -> dg.MaterializeResult:
        # Imported by the run that pushes, not by every load of the code location (pyarrow).
        from crm_assets.destinations.machinery import (
            FAILURE_KIND,
            PushFailure,
            SyncConfigurationError,
            run_sync,
        )

        from crm_assets.destinations.journal import journal_directory

        resource = getattr(context.resources, spec.destination)
        warehouse = context.resources.warehouse
        try:
            counts = run_sync(
                spec,
                warehouse.session,
                lambda s: OPENERS[spec.destination](resource, s),
                context.run.run_id,
                log=context.log.info,
                journal_dir=journal_directory(warehouse.duckdb.database),
            )
        except (PushFailure, ValueError) as exc:
            # Worded for the operator and redacted: shown as the run's one-line failure.
            counts = getattr(exc, "counts", None)
            kind = "configuration" if isinstance(exc, SyncConfigurationError) else "error"
            metadata = {**(counts.metadata() if counts else {}), FAILURE_KIND: kind}
            raise dg.Failure(description=str(exc), metadata=metadata) from None
        return dg.MaterializeResult(metadata={**counts.metadata(), "object": spec.object, "mode": spec.mode})

    return _sync


def build_rejections_check(spec: SyncSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(list(spec.asset_key)),
        name=REJECTIONS_CHECK,
        description=f"Fails while rows of this sync wait in {REJECTIONS} (they are sent again each run).",
        required_resource_keys={"warehouse"},
    )
    def _check(context: AssetCheckExecutionContext) -> dg.AssetCheckResult:
        with context.resources.warehouse.session() as session:
            open_rows = SyncTracking(session.conn).open_rejections(spec.name)
        return dg.AssetCheckResult(
            passed=open_rows == 0,
            metadata={"rejections": open_rows},
            description=None
            if open_rows == 0
            else f"{open_rows} rows rejected; see {REJECTIONS} where sync = '{spec.name}'",
        )

    return _check


def build_sync_definitions(specs: Sequence[SyncSpec]) -> dg.Definitions:
    """Assets and checks for `specs` (resources are bound by definitions.py; each sync's
    schedule and automation sensor come from :mod:`crm_assets.orchestration`)."""
    assets = [build_sync_asset(s, lookup_deps(s, specs)) for s in specs]
    checks = [build_rejections_check(s) for s in specs]
    return dg.Definitions(assets=assets, asset_checks=checks)
