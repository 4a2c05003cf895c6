"""The run-failure sensor: record every failed run where an operator sees it, alert, pause.

For each failed run it

- writes a row per failed step to ``crm_assets_state.run_failures`` (run id, step, job, the
  run's assets and partitions, the failure kind, the error message redacted, the time);
- tags the run ``crm_assets/failure_kind`` (``configuration`` or ``error``), shown in the runs list;
- when ``CRM_ASSETS_ALERT_WEBHOOK`` is set, POSTs the same facts as JSON there, with a bounded
  timeout; a failed post is logged (naming only the URL's host, which may hide a secret in its
  path) and never fails the sensor;
- pauses a sync whose last :data:`PAUSE_AFTER` failures in a row (since its last success or
  its last pause) were configuration failures (credentials refused or missing, a field missing
  or not writable: :class:`~crm_assets.destinations.machinery.SyncConfigurationError`): its
  schedule and automation sensor are stopped, an observation on the sync asset says why, and
  ``crm_assets_state.sync_pauses`` records it. Starting them again resumes the sync.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import requests
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import InstigatorStatus

from crm_assets.destinations.specs import SyncSpec
from crm_assets.orchestration.automation import sync_automation_sensor_name, sync_schedule_name
from crm_assets.sources.redaction import Redactor
from crm_assets.warehouse import Warehouse
from crm_assets.warehouse.operations import CONFIGURATION, FailureRow, OperationsLog

ALERT_WEBHOOK = "CRM_ASSETS_ALERT_WEBHOOK"
# Every secret variable of the contract: a failure message never shows their values.
SECRET_VARIABLES = (
    "HARVEST_ACCESS_TOKEN", "HARVEST_CLIENT_SECRET", "HARVEST_REFRESH_TOKEN", "ZOHO_CLIENT_SECRET",
    "ZOHO_REFRESH_TOKEN", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN", "SALESFORCE_CLIENT_SECRET",
    "SALESFORCE_SESSION_ID", ALERT_WEBHOOK,
)
PAUSE_AFTER = 3
WEBHOOK_TIMEOUT_SECONDS = (5.0, 10.0)  # connect, read
WAREHOUSE_WAIT_SECONDS = 30.0
MAX_ERROR_CHARS = 2000
KIND_TAG = "crm_assets/failure_kind"
PAUSED_TAG = "crm_assets/paused_syncs"


def show_url(url: str) -> str:
    """The part of a URL that is safe to log: scheme and host."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/..."


def secrets_redactor() -> Redactor:
    redactor = Redactor(*(os.getenv(name) for name in SECRET_VARIABLES))
    webhook = os.getenv(ALERT_WEBHOOK)
    if webhook:
        redactor.add(urlsplit(webhook).path)
        redactor.add(urlsplit(webhook).query)
    return redactor


def failure_rows(context: dg.RunFailureSensorContext, redact: Redactor, now: datetime) -> list[FailureRow]:
    """A row per failed step (one row with step "" when no step failed)."""
    from crm_assets.destinations.machinery import FAILURE_KIND  # imports pyarrow: only when a run failed

    run = context.dagster_run
    assets = ", ".join(sorted(k.to_user_string() for k in run.asset_selection or ())) or ", ".join(
        run.step_keys_to_execute or ()
    )
    partitions = run.tags.get("dagster/partition") or (
        f"{run.tags['dagster/asset_partition_range_start']}...{run.tags['dagster/asset_partition_range_end']}"
        if "dagster/asset_partition_range_start" in run.tags
        else ""
    )

    def row(step: str, kind: str, message: str) -> FailureRow:
        text = redact(message)
        text = text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + " ..."
        return FailureRow(run.run_id, step, run.job_name, assets, partitions, kind, text, now)

    rows = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        user = data.user_failure_data
        kind_value = user.metadata.get(FAILURE_KIND) if user and user.metadata else None
        kind = CONFIGURATION if kind_value is not None and kind_value.value == CONFIGURATION else "error"
        message = (user.description if user and user.description else None) or (
            data.error.message if data.error else "step failed"
        )
        rows.append(row(event.step_key or "", kind, message))
    return rows or [row("", "error", context.failure_event.message or "run failed")]


def post_alert(context: dg.RunFailureSensorContext, url: str, payload: dict[str, Any]) -> None:
    try:
        response = requests.post(url, json=payload, timeout=WEBHOOK_TIMEOUT_SECONDS)
        if response.status_code >= 400:
            context.log.warning(f"alert webhook {show_url(url)} answered HTTP {response.status_code}")
    except requests.RequestException as exc:
        context.log.warning(f"alert webhook {show_url(url)} failed: {type(exc).__name__}")


def stop_instigator(instance: dg.DagsterInstance, name: str, kind: InstigatorType) -> bool:
    """Stop the running schedule or sensor `name`; False when it was not running."""
    stopped = False
    for state in instance.all_instigator_state(instigator_type=kind):
        if state.name != name or state.status != InstigatorStatus.RUNNING:
            continue
        if kind == InstigatorType.SCHEDULE:
            instance.stop_schedule(state.instigator_origin_id, state.selector_id)
        else:
            instance.stop_sensor(state.instigator_origin_id, state.selector_id, None)
        stopped = True
    return stopped


def pause_sync(
    context: dg.RunFailureSensorContext, log: OperationsLog, spec: SyncSpec, run_ids: list[str], now: datetime
) -> None:
    """Stop the sync's schedule and automation sensor, and say so on the asset and in the warehouse."""
    schedule, sensor = sync_schedule_name(spec.name), sync_automation_sensor_name(spec.name)
    stop_instigator(context.instance, schedule, InstigatorType.SCHEDULE)
    stop_instigator(context.instance, sensor, InstigatorType.SENSOR)
    reason = (
        f"sync {spec.name} paused after {len(run_ids)} configuration failures in a row "
        f"(runs {', '.join(run_ids)}); fix the setting the last error names, then start "
        f"schedule {schedule} and sensor {sensor} again"
    )
    context.instance.report_runless_asset_event(
        dg.AssetObservation(
            asset_key=dg.AssetKey(list(spec.asset_key)),
            description=reason,
            metadata={"paused": True, "configuration_failures": len(run_ids), "last_run_id": run_ids[0]},
        )
    )
    log.record_pause(spec.name, now, reason, run_ids)
    context.log.warning(reason)


def pauses_due(
    context: dg.RunFailureSensorContext,
    log: OperationsLog,
    syncs: dict[str, SyncSpec],
    rows: Sequence[FailureRow],
) -> list[tuple[SyncSpec, list[str]]]:
    """The syncs failing in this run whose configuration streak reached :data:`PAUSE_AFTER`."""
    due = []
    for r in rows:
        spec = syncs.get(r.step)
        if spec is None or r.failure_kind != CONFIGURATION:
            continue
        success = context.instance.get_latest_materialization_event(dg.AssetKey(list(spec.asset_key)))
        marks = [log.paused_at(spec.name)]
        if success is not None:
            marks.append(datetime.fromtimestamp(success.timestamp, UTC))
        after = max((m for m in marks if m is not None), default=None)
        streak = log.configuration_streak(r.step, after)
        if len(streak) >= PAUSE_AFTER:
            due.append((spec, streak))
    return due


def build_failure_sensor(specs: Sequence[SyncSpec]) -> dg.SensorDefinition:
    """`record_run_failures`, on by default: it writes only to the warehouse (and the webhook)."""
    syncs = {dg.AssetKey(list(s.asset_key)).to_python_identifier(): s for s in specs}

    @dg.run_failure_sensor(
        name="record_run_failures",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Records each failed run in crm_assets_state.run_failures, tags it, posts to "
            "CRM_ASSETS_ALERT_WEBHOOK when set, and pauses a sync failing 3 times in a row on its "
            "configuration."
        ),
    )
    def record_run_failures(context: dg.RunFailureSensorContext, warehouse: Warehouse) -> None:
        run = context.dagster_run
        now = datetime.now(UTC)
        rows = failure_rows(context, secrets_redactor(), now)
        kind = CONFIGURATION if any(r.failure_kind == CONFIGURATION for r in rows) else "error"
        context.instance.add_run_tags(run.run_id, {KIND_TAG: kind})
        paused: list[str] = []
        try:
            quick = warehouse.model_copy(update={"lock_timeout_seconds": WAREHOUSE_WAIT_SECONDS})
            with quick.session() as session:
                log = OperationsLog(session.conn)
                log.ensure_operations_tables()
                log.record_failures(rows)
                for spec, run_ids in pauses_due(context, log, syncs, rows):
                    pause_sync(context, log, spec, run_ids, now)
                    paused.append(spec.name)
            if paused:
                context.instance.add_run_tags(run.run_id, {PAUSED_TAG: ",".join(paused)})
        finally:
            url = os.getenv(ALERT_WEBHOOK)
            if url:
                post_alert(context, url, {
                    "event": "run_failure",
                    "run_id": run.run_id,
                    "job": run.job_name,
                    "failure_kind": kind,
                    "failures": [
                        {"step": r.step, "assets": r.assets, "partitions": r.partitions,
                         "kind": r.failure_kind, "error": r.error}
                        for r in rows
                    ],
                    "paused_syncs": paused,
                    "failed_at": now.isoformat(),
                })

    return record_run_failures
