"""The Harvest endpoints that third-party clients read beside the 24 tables, and Harvest's errors.

Expected values come from the sandbox's ground truth (``/_sandbox/harvest/records``) turned
into totals by this file's own small code.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from crm_assets_tests.sandbox.harvest_http import every_page, get


def test_rate_histories_follow_each_user_oldest_first(sandbox):
    for kind in ("billable_rates", "cost_rates"):
        truth = defaultdict(list)
        for item in sandbox.harvest_records(kind):
            truth[item["parent_id"]].append(item["record"])
        users = sandbox.harvest_records("users")
        assert len(truth) > 5
        for user in users:
            served = every_page(sandbox, f"/users/{user['id']}/{kind}?per_page=1", kind)
            assert served == truth.get(user["id"], [])
            starts = [r["start_date"] for r in served]
            assert starts == sorted(starts)
            for earlier, later in zip(served, served[1:]):
                assert date.fromisoformat(earlier["end_date"]) == date.fromisoformat(later["start_date"]) - timedelta(days=1)
            if served:
                assert served[-1]["end_date"] is None
                current = user["default_hourly_rate" if kind == "billable_rates" else "cost_rate"]
                assert served[-1]["amount"] == current


def test_the_authenticated_user_and_their_assignments(sandbox):
    status, me = get(sandbox, "/users/me")
    assert status == 200 and "administrator" in me["access_roles"]
    assert me in sandbox.harvest_records("users")
    status, page = get(sandbox, "/users/me/project_assignments?per_page=1")
    assert status == 200
    follow = page["links"]["next"]
    assert follow is None or parse_qs(urlsplit(follow).query)["page"] == ["2"], "page mode (§3.2)"
    mine = every_page(sandbox, "/users/me/project_assignments?per_page=1", "project_assignments")
    truth = [i["record"] for i in sandbox.harvest_records("user_projects") if i["parent_id"] == me["id"]]
    assert mine == truth and mine


def _window(sandbox) -> tuple[str, str]:
    start = date.fromisoformat(sandbox.env["HARVEST_START_DATE"]) + timedelta(days=30)
    return start.isoformat(), (start + timedelta(days=200)).isoformat()


def test_the_time_report_by_client_totals_the_entries_of_the_timeframe(sandbox):
    lo, hi = _window(sandbox)
    currency = {c["id"]: c["currency"] for c in sandbox.harvest_records("clients")}
    expected = defaultdict(lambda: [0.0, 0.0, 0.0])
    for e in sandbox.harvest_records("time_entries"):
        if lo <= e["spent_date"] <= hi:
            row = expected[(e["client"]["id"], currency[e["client"]["id"]])]
            row[0] += e["hours"]
            if e["billable"]:
                row[1] += e["hours"]
                row[2] += e["hours"] * (e["billable_rate"] or 0)  # a billable entry may have no rate
    results = every_page(sandbox, f"/reports/time/clients?from={lo.replace('-', '')}&to={hi.replace('-', '')}&per_page=3",
                         "results")
    got = {(r["client_id"], r["currency"]): [r["total_hours"], r["billable_hours"], r["billable_amount"]] for r in results}
    assert got.keys() == expected.keys()
    for key, totals in expected.items():
        assert got[key] == pytest.approx(totals, abs=0.01)


def test_the_expense_report_by_category_totals_the_expenses_of_the_timeframe(sandbox):
    lo, hi = _window(sandbox)
    currency = {c["id"]: c["currency"] for c in sandbox.harvest_records("clients")}
    expected = defaultdict(float)
    for x in sandbox.harvest_records("expenses"):
        if lo <= x["spent_date"] <= hi:
            expected[(x["expense_category"]["id"], currency[x["client"]["id"]])] += x["total_cost"]
    results = every_page(sandbox, f"/reports/expenses/categories?from={lo}&to={hi}", "results")
    got = {(r["expense_category_id"], r["currency"]): r["total_amount"] for r in results}
    assert got == pytest.approx(dict(expected), abs=0.01)


def test_reports_page_by_number_and_refuse_a_timeframe_over_a_year(sandbox):
    status, body = get(sandbox, "/reports/time/tasks?from=20250101&to=20260101")
    assert (status, body) == (400, {"message": "Invalid timeframe: must not exceed 1 year"})
    status, body = get(sandbox, "/reports/uninvoiced")
    assert status == 400 and "from" in body["message"]
    status, body = get(sandbox, "/reports/project_budget?per_page=2")
    assert status == 200 and body["page"] == 1 and body["total_entries"] > 2
    assert parse_qs(urlsplit(body["links"]["next"]).query)["page"] == ["2"]


def test_unknown_paths_and_methods_get_json_errors(sandbox):
    assert get(sandbox, "/people") == (404, {"status": 404, "error": "Not Found"})
    assert get(sandbox, "/invoices/1/messages") == (404, {"status": 404, "error": "Not Found"})
    status, body = get(sandbox, "/clients", method="POST")
    assert status == 405 and body["error"] == "Method Not Allowed"
    status, body = get(sandbox, "/clients?per_page=2001")
    assert status == 422


def test_reports_can_have_their_own_rate_limit(sandbox):
    """§5.1: 100 report requests per 15 minutes, apart from the general limit."""
    sandbox.call("POST", "/_sandbox/faults", {"api": "harvest_reports", "spec": "rate=2/900"})
    try:
        statuses = [get(sandbox, "/reports/project_budget")[0] for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert get(sandbox, "/clients")[0] == 200
    finally:
        sandbox.clear_faults("harvest_reports")
