"""Schedules, sensors and automation: when each asset of crm_assets runs by itself.

Built from the source catalogs and the sync specs by
:func:`crm_assets.orchestration.wiring.build_orchestration`; :mod:`.automation` holds the
automation condition that syncs and models apply (it imports only Dagster, so any asset module
can use it without an import cycle).
"""
