"""The shipped example syncs over Harvest data replicated from the sandbox and the marts built
over it, into its Salesforce."""

from __future__ import annotations

from datetime import date, timedelta

from crm_assets.destinations.specs import load_syncs
from crm_assets_tests.conftest import harvest_assets_from, harvest_resources, materialize_harvest, today
from crm_assets_tests.destinations.conftest import (
    as_org_value,
    materialization,
    query_rows,
    run_syncs,
    salesforce_resource,
)
from crm_assets_tests.models.conftest import HARVEST_TABLES, materialize_marts

TABLES = sorted({*HARVEST_TABLES, "contacts"})


def load_whole_tables(sfsb, warehouse_path: str) -> None:
    """The tables the example syncs and their models read, whole: partitions from yesterday, the
    first of which holds every record changed before it."""
    start = (date.fromisoformat(today()) - timedelta(days=1)).isoformat()
    materialize_harvest(
        harvest_resources(sfsb, warehouse_path), start, today(), selection=TABLES, assets=harvest_assets_from(start)
    )


def marts_read_by(specs) -> list[str]:
    return sorted({table for spec in specs for schema, table in spec.tables if schema == "marts"})


def lookup_field(relationship: str) -> str:
    """The reference field behind a relationship name (Salesforce's naming rule)."""
    return relationship[:-3] + "__c" if relationship.endswith("__r") else relationship + "Id"


def test_the_example_syncs_write_the_org_equal_to_their_queries(sfsb, warehouse_path):
    load_whole_tables(sfsb, warehouse_path)
    specs = [s for s in load_syncs() if s.destination == "salesforce"]  # Zoho's: test_zoho_sync
    materialize_marts(warehouse_path, marts_read_by(specs))
    result = run_syncs(specs, warehouse_path, salesforce_resource(sfsb.env))
    accounts = {r["Id"]: r for r in sfsb.salesforce_records("Account")}
    for spec in specs:
        counts = materialization(result, spec)
        rows = query_rows(warehouse_path, spec.query)
        assert rows and (counts["selected"], counts["rejected"]) == (len(rows), 0), spec.name
        records = {r[spec.key]: r for r in sfsb.salesforce_records(spec.object)}
        assert set(records) == {row[spec.key] for row in rows}, spec.name
        for row in rows:
            record = records[row[spec.key]]
            for column, value in row.items():
                relationship, _, external_id = column.partition(".")
                if external_id:
                    target = record[lookup_field(relationship)]
                    got = accounts[target][external_id] if target else None
                else:
                    got = record[column]
                want = as_org_value(value)
                if isinstance(want, float):
                    want = round(want, 2)  # the org keeps a currency or number field's scale
                assert got == want, (spec.name, row[spec.key], column, got, want)
    assert all(evaluation.passed for evaluation in result.get_asset_check_evaluations())
