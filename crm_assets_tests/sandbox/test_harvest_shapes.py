"""Every record the Harvest sandbox serves has the shape Harvest's reference gives it.

The shapes are the sandbox's own tables, written from ``shared/specs/harvest.md`` §6 (types and
nullability); this test walks every record of every endpoint over HTTP, page by page, and holds
each one to them, so a generator change that serves a shape Harvest does not (a null object, a
string id, a missing field) fails here.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from crm_assets.sandbox.harvest_reference import COMPANY, ENDPOINTS, RECORDS, REPORTS, shape_errors
from crm_assets_tests.sandbox.harvest_http import every_page, get

LIST_ENDPOINTS = [e for e in ENDPOINTS if not e.per_parent]
PER_PARENT = [e for e in ENDPOINTS if e.per_parent]


def _assert_shapes(records: list[dict], shape, where: str) -> None:
    errors = [e for rec in records for e in shape_errors(rec, shape, f"{where} id={rec.get('id')}")]
    assert not errors, "\n".join(errors[:20])


@pytest.mark.parametrize("endpoint", LIST_ENDPOINTS, ids=lambda e: e.path)
def test_every_record_of_a_list_endpoint_has_the_reference_shape(sandbox, endpoint):
    records = every_page(sandbox, f"{endpoint.path}?per_page=700", endpoint.envelope)
    assert records, f"{endpoint.path} serves no records"
    _assert_shapes(records, RECORDS[endpoint.record], endpoint.path)


@pytest.mark.parametrize("endpoint", PER_PARENT, ids=lambda e: e.path)
def test_every_record_under_every_parent_has_the_reference_shape(sandbox, endpoint):
    parents = [r["id"] for r in sandbox.harvest_records(endpoint.parent, ["id"])]
    served = []
    for parent_id in parents:
        served += every_page(sandbox, endpoint.path.replace("{id}", str(parent_id)), endpoint.envelope)
    assert served, f"{endpoint.path} serves no records under any parent"
    _assert_shapes(served, RECORDS[endpoint.record], endpoint.path)


def test_a_payment_without_a_gateway_still_has_the_gateway_object(sandbox):
    """§6.11 types ``payment_gateway`` as an object (tap-harvest reads ``payment_gateway["id"]``)."""
    payments = [item["record"] for item in sandbox.harvest_records("invoice_payments")]
    assert payments
    not_objects = [p["id"] for p in payments if not isinstance(p["payment_gateway"], dict)]
    assert not not_objects, f"{len(not_objects)} of {len(payments)} payments have no payment_gateway object"
    assert any(p["payment_gateway"]["id"] is None for p in payments), "no payment recorded without a gateway"


def test_single_objects_and_reports_have_the_reference_shape(sandbox):
    status, company = get(sandbox, "/company")
    assert status == 200
    assert not shape_errors(company, COMPANY, "/company")
    status, me = get(sandbox, "/users/me")
    assert status == 200
    assert not shape_errors(me, RECORDS["user"], "/users/me")
    start = date.fromisoformat(sandbox.env["HARVEST_START_DATE"])
    window = f"from={start:%Y%m%d}&to={start + timedelta(days=364):%Y%m%d}"
    for path, shape in REPORTS.items():
        query = "" if path == "/reports/project_budget" else window
        results = every_page(sandbox, f"{path}?{query}", "results")
        assert results, f"{path} has no results"
        _assert_shapes(results, shape, path)
