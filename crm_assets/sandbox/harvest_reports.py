"""Harvest's ``/reports/*`` family, computed from the emulator's own time entries and expenses.

Time and expense reports total the entries whose ``spent_date`` falls in ``from``..``to``
(both required, ``YYYYMMDD`` as the docs' links write them or ``YYYY-MM-DD``; a timeframe of
more than 365 days is a 400 with Harvest's message, §5.1), one result per subject and currency.
The uninvoiced report totals billable work not yet invoiced per project; the project budget
report compares each budgeted project's budget with the hours (or fees, for ``project_cost``
and ``task_fees`` budgets) logged against it. Results are sorted by subject name, then currency,
as the docs' examples are, and served in page mode (§3.2).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from crm_assets.sandbox.harvest_reference import REPORT_MAX_DAYS, REPORTS_WITHOUT_TIMEFRAME
from crm_assets.sandbox.harvest_store import ApiError, Record, Table
from crm_assets.sandbox.server import Request

MONEY_BUDGETS = frozenset({"project_cost", "task_fees"})


def timeframe(request: Request) -> tuple[str, str]:
    """``from`` and ``to`` as ``YYYY-MM-DD``; 400 when missing, malformed or longer than a year."""
    bounds = []
    for name in ("from", "to"):
        raw = (request.param(name) or "").strip()
        if not raw:
            raise ApiError(400, {"message": "Missing required parameters: from and to"})
        try:
            day = dt.date.fromisoformat(raw) if "-" in raw else dt.datetime.strptime(raw, "%Y%m%d").date()
        except ValueError:
            raise ApiError(400, {"message": f"Invalid {name} parameter: expected YYYYMMDD or YYYY-MM-DD"}) from None
        bounds.append(day)
    start, end = bounds
    if end < start or (end - start).days + 1 > REPORT_MAX_DAYS:
        raise ApiError(400, {"message": "Invalid timeframe: must not exceed 1 year"})
    return start.isoformat(), end.isoformat()


def compute(path: str, request: Request, tables: dict[str, Table]) -> list[Record]:
    """The results of report ``path`` for this request, in the order they are served."""
    if path in REPORTS_WITHOUT_TIMEFRAME:
        return project_budget(tables, request.param("is_active"))
    lo, hi = timeframe(request)
    entries = [e for e in tables["time_entries"].records.values() if lo <= e["spent_date"] <= hi]
    expenses = [x for x in tables["expenses"].records.values() if lo <= x["spent_date"] <= hi]
    kind, _, subject = path[len("/reports/"):].partition("/")
    if kind == "uninvoiced":
        return uninvoiced(tables, entries, expenses)
    currency = _currency(tables)
    if kind == "time":
        subjects = _team(tables, with_capacity=True) if subject == "team" else _SUBJECTS[subject](tables)
        return _grouped(entries, subjects, currency, _time_totals)
    return _grouped(expenses, _SUBJECTS[subject](tables), currency, _expense_totals)


def _currency(tables: dict[str, Table]) -> Callable[[Record], str]:
    clients = tables["clients"].records
    return lambda rec: (clients.get(rec["client"]["id"]) or {}).get("currency") or "USD"


def _project_name(project: Record | None, fallback: Record) -> str:
    """The time and expense reports' examples name a coded project ``[CODE] Name``."""
    name = (project or fallback).get("name")
    code = (project or {}).get("code")
    return f"[{code}] {name}" if code else name


def _clients(tables: dict[str, Table]) -> Callable[[Record], tuple[Any, Record]]:
    return lambda rec: (rec["client"]["id"], {"client_id": rec["client"]["id"], "client_name": rec["client"]["name"]})


def _projects(tables: dict[str, Table]) -> Callable[[Record], tuple[Any, Record]]:
    projects = tables["projects"].records

    def subject(rec: Record) -> tuple[Any, Record]:
        pid = rec["project"]["id"]
        return pid, {"project_id": pid, "project_name": _project_name(projects.get(pid), rec["project"]),
                     "client_id": rec["client"]["id"], "client_name": rec["client"]["name"]}

    return subject


def _tasks(tables: dict[str, Table]) -> Callable[[Record], tuple[Any, Record]]:
    return lambda rec: (rec["task"]["id"], {"task_id": rec["task"]["id"], "task_name": rec["task"]["name"]})


def _categories(tables: dict[str, Table]) -> Callable[[Record], tuple[Any, Record]]:
    return lambda rec: (rec["expense_category"]["id"], {"expense_category_id": rec["expense_category"]["id"],
                                                        "expense_category_name": rec["expense_category"]["name"]})


def _team(tables: dict[str, Table], with_capacity: bool = False) -> Callable[[Record], tuple[Any, Record]]:
    """The team reports; the time one also shows each person's weekly capacity and avatar."""
    users = tables["users"].records

    def subject(rec: Record) -> tuple[Any, Record]:
        uid = rec["user"]["id"]
        user = users.get(uid) or {}
        columns = {"user_id": uid, "user_name": rec["user"]["name"], "is_contractor": bool(user.get("is_contractor"))}
        if with_capacity:
            columns.update(weekly_capacity=user.get("weekly_capacity"), avatar_url=user.get("avatar_url"))
        return uid, columns

    return subject


_SUBJECTS = {"clients": _clients, "projects": _projects, "tasks": _tasks, "categories": _categories, "team": _team}


def _time_totals(rows: list[Record]) -> Record:
    billable = [e for e in rows if e["billable"]]
    return {
        "total_hours": _round(sum(e["hours"] for e in rows)),
        "billable_hours": _round(sum(e["hours"] for e in billable)),
        "billable_amount": _round(sum(e["hours"] * (e["billable_rate"] or 0) for e in billable)),
    }


def _expense_totals(rows: list[Record]) -> Record:
    return {"total_amount": _round(sum(x["total_cost"] for x in rows)),
            "billable_amount": _round(sum(x["total_cost"] for x in rows if x["billable"]))}


def _grouped(rows: Iterable[Record], subject: Callable[[Record], tuple[Any, Record]], currency: Callable[[Record], str],
             totals: Callable[[list[Record]], Record]) -> list[Record]:
    groups: dict[tuple, tuple[Record, list[Record]]] = {}
    for rec in rows:
        key, columns = subject(rec)
        cur = currency(rec)
        groups.setdefault((key, cur), ({**columns, "currency": cur}, []))[1].append(rec)
    out = [{**columns, **totals(members)} for columns, members in groups.values()]
    return sorted(out, key=_by_name)


def _by_name(result: Record) -> tuple:
    name = next(v for k, v in result.items() if k.endswith("_name"))
    return (name or "", result["currency"], next(iter(result.values())))


def uninvoiced(tables: dict[str, Table], entries: list[Record], expenses: list[Record]) -> list[Record]:
    projects = tables["projects"].records
    currency = _currency(tables)
    groups: dict[int, Record] = {}
    for rec, is_time in [*((e, True) for e in entries), *((x, False) for x in expenses)]:
        project = projects.get(rec["project"]["id"])
        if project is None or not project["is_billable"]:
            continue
        row = groups.setdefault(project["id"], {
            "client_id": rec["client"]["id"], "client_name": rec["client"]["name"], "project_id": project["id"],
            "project_name": project["name"], "currency": currency(rec), "total_hours": 0.0, "uninvoiced_hours": 0.0,
            "uninvoiced_expenses": 0.0, "uninvoiced_amount": 0.0,
        })
        open_billable = rec["billable"] and not rec["is_billed"]
        if is_time:
            row["total_hours"] += rec["hours"]
            if open_billable:
                row["uninvoiced_hours"] += rec["hours"]
                row["uninvoiced_amount"] += rec["hours"] * (rec["billable_rate"] or 0)
        elif open_billable:
            row["uninvoiced_expenses"] += rec["total_cost"]
            row["uninvoiced_amount"] += rec["total_cost"]
    out = [{k: _round(v) if isinstance(v, float) else v for k, v in row.items()} for row in groups.values()]
    return sorted(out, key=lambda r: (r["client_name"], r["project_name"], r["project_id"]))


def project_budget(tables: dict[str, Table], is_active: str | None) -> list[Record]:
    wanted = None if not is_active else is_active.lower() == "true"
    spent: dict[int, float] = {}
    by_id = tables["projects"].records
    for e in tables["time_entries"].records.values():
        project = by_id.get(e["project"]["id"])
        if project is None:
            continue
        cost = e["hours"] * (e["billable_rate"] or 0) if project["budget_by"] in MONEY_BUDGETS else e["hours"]
        spent[project["id"]] = spent.get(project["id"], 0.0) + cost
    out = []
    for project in by_id.values():
        if project["budget"] is None or (wanted is not None and project["is_active"] != wanted):
            continue
        used = _round(spent.get(project["id"], 0.0))
        out.append({
            "project_id": project["id"], "project_name": project["name"], "client_id": project["client"]["id"],
            "client_name": project["client"]["name"], "budget_is_monthly": project["budget_is_monthly"],
            "budget_by": project["budget_by"], "is_active": project["is_active"], "budget": project["budget"],
            "budget_spent": used, "budget_remaining": _round(project["budget"] - used),
        })
    return sorted(out, key=lambda r: (r["client_name"], r["project_name"], r["project_id"]))


def _round(x: float) -> float:
    return round(x + 0.0, 2)
