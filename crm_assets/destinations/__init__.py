"""Reverse ETL: SQL over the warehouse written into destination objects (Salesforce, Zoho).

Shared here: sync specs from ``syncs.yaml``, lineage from the SQL, change tracking and
rejections, the push loop with retries, and the Dagster assets and checks (schedules and
automation sensors: :mod:`crm_assets.orchestration`). A vendor
package adds its resource, its pre-flight and its writer.
"""
