"""Declarative automation: syncs and models run when the tables they read change.

Dagster's ``eager()`` also waits while any upstream partition is *missing*; our sources are
daily-partitioned from their start date while a change sensor or a schedule only ever loads
recent days, so an unpartitioned sync or model downstream of them would never run. This
condition drops that clause and keeps the rest: run once after any upstream asset is updated
(a partition materialized), not while an upstream run or this asset is in progress, and not
while an upstream blocking check (a table's primary key check) has failed, so a table with a
duplicate key does not reach the models or the CRMs.
"""

from __future__ import annotations

import dagster as dg

UPSTREAM_CHANGED: dg.AutomationCondition = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("upstream_changed")
"""The condition for sync and model assets: ``automation_condition=UPSTREAM_CHANGED``."""


def sync_automation_sensor_name(sync: str) -> str:
    return f"{sync}_automation"


def sync_schedule_name(sync: str) -> str:
    return f"{sync}_schedule"
