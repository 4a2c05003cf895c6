"""The Harvest API v2 emulator, written from Harvest's reference (``shared/specs/harvest.md``).

It serves, under ``/harvest/v2``, from seeded data (``harvest_data``):

- the list endpoints of :data:`~crm_assets.sandbox.harvest_reference.ENDPOINTS`: ``/clients``,
  ``/contacts``, ``/estimate_item_categories``, ``/estimates``, ``/estimates/{id}/messages``,
  ``/expense_categories``, ``/expenses``, ``/invoice_item_categories``, ``/invoices``,
  ``/invoices/{id}/messages``, ``/invoices/{id}/payments``, ``/projects``, ``/task_assignments``,
  ``/user_assignments``, ``/roles``, ``/tasks``, ``/time_entries``, ``/users``,
  ``/users/{id}/project_assignments``, ``/users/{id}/billable_rates``, ``/users/{id}/cost_rates``
  and ``/users/me/project_assignments``, each with its envelope, pagination mode (cursor or page
  number, §3.2), sort order (§2.3), ``updated_since`` where documented (strict, one-second
  granularity, §4.1) and its documented filters (``is_active``, ``client_id``, ``from``/``to``...);
- ``/users/me`` (the authenticated user, the account's first administrator) and ``/company``;
- the ``/reports/*`` family (``harvest_reports``): time (clients, projects, tasks, team), expenses
  (clients, projects, categories, team), uninvoiced and project budget.

Faults and rate limits come from the shared injector under the name ``harvest``; report routes
also draw from ``harvest_reports``, so ``--faults harvest_reports:rate=100/900`` adds the reports'
own limit. As Harvest does, it wants a User-Agent (400), a valid token and account id (401 with the
``invalid_token`` body), answers 422 for ``per_page`` above 2000 or malformed parameters, 404
``{"status":404,"error":"Not Found"}`` for unknown paths and parents, and 405 (JSON) for methods
other than GET on a known path: the sandbox is read-only. The admin API is in ``harvest_admin``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import gc
import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from crm_assets.sandbox import harvest_reports
from crm_assets.sandbox.harvest_admin import ENDPOINT_OF_TABLE, HarvestAdmin
from crm_assets.sandbox.harvest_data import Dataset, build_dataset
from crm_assets.sandbox.harvest_id import TokenRegistry
from crm_assets.sandbox.harvest_vocabulary import HISTORY_DAYS, iso_day
from crm_assets.sandbox.harvest_reference import ENDPOINTS, RECORDS, REPORTS, Endpoint, shape_errors
from crm_assets.sandbox.harvest_store import NOT_FOUND, ApiError, Query, Record, Table, epoch, parse_since, render_page
from crm_assets.sandbox.faults import FaultInjector, fault_response
from crm_assets.sandbox.server import Request, Response, dumps, json_response

TOKEN = "sandbox-harvest-token"
ACCOUNT_ID = "1234567"
INVALID_TOKEN = {
    "error": "invalid_token",
    "error_description": "The access token provided is expired, revoked, malformed or invalid for other reasons.",
}
COMPANY = {
    "base_uri": "https://sandbox.harvestapp.com", "full_domain": "sandbox.harvestapp.com", "name": "Sandbox Studio",
    "is_active": True, "week_start_day": "Monday", "wants_timestamp_timers": False, "time_format": "hours_minutes",
    "date_format": "%Y-%m-%d", "plan_type": "sponsored", "clock": "12h", "currency_code_display": "iso_code_none",
    "currency_symbol_display": "symbol_before", "decimal_symbol": ".", "thousands_separator": ",",
    "color_scheme": "orange", "weekly_capacity": 126000, "expense_feature": True, "invoice_feature": True,
    "estimate_feature": True, "approval_feature": True, "team_feature": True,
}
ME_ASSIGNMENTS = "/users/me/project_assignments"
# Reports have their own limit (100 requests per 15 minutes, §5.1): `--faults harvest_reports:rate=100/900`.
REPORTS_LIMIT = "harvest_reports"


class HarvestEmulator(HarvestAdmin):
    """Serves ``/harvest/v2/...`` from seeded data; admin API under ``/_sandbox/harvest/...``."""

    name = "harvest"

    def __init__(self, seed: int = 1, scale: float = 1.0, anchor: dt.date | None = None,
                 faults: FaultInjector | None = None, tokens: TokenRegistry | None = None):
        self.seed = seed
        self.tokens = tokens
        self.scale = scale
        self.anchor = anchor or dt.datetime.now(dt.timezone.utc).date()
        self.faults = faults or FaultInjector(seed)
        self.lock = threading.RLock()
        self.stats: Counter[str] = Counter()
        self.modifications = 0
        self.tables: dict[str, Table] = {}
        self.views: dict[str, Callable[[int], list[Record]]] = {"user_projects": self._project_assignments}
        self.exact: dict[str, Endpoint] = {e.path: e for e in ENDPOINTS if not e.per_parent}
        self.patterns = [(re.compile("^" + re.escape(e.path).replace(r"\{id\}", r"(\d+)") + "$"), e)
                         for e in ENDPOINTS if e.per_parent]
        # Hundreds of thousands of long-lived dicts: the cyclic GC would rescan them over and
        # over while they are built (tripling start-up time), and they never form cycles.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            data = build_dataset(seed, scale, calendar.timegm(self.anchor.timetuple()))
            self._store(data)
        finally:
            gc.freeze()
            if gc_was_enabled:
                gc.enable()
        self.start_date = iso_day(data.start)
        self.next_ids = data.next_ids
        self._check_shapes()

    # -- set-up --

    def _store(self, data: Dataset) -> None:
        for table, endpoint in ENDPOINT_OF_TABLE.items():
            if table in self.views:
                continue
            if endpoint.per_parent:
                self.tables[table] = Table(table, (), endpoint.order, parents=data.children[table])
            else:
                self.tables[table] = Table(table, data.roots[table], endpoint.order)

    def _check_shapes(self) -> None:
        """Served records have the reference's shape (a start-up guard on a sample of each table;
        the tests walk every record)."""
        errors: list[str] = []
        for table, endpoint in ENDPOINT_OF_TABLE.items():
            shape = RECORDS[endpoint.record]
            if table in self.views:
                sample = [r for uid in list(self.tables[endpoint.parent].records)[:50] for r in self.views[table](uid)]
            else:
                sample = list(self.tables[table].records.values())[:200]
            for rec in sample:
                errors += shape_errors(rec, shape, f"{table} id={rec['id']}")
        if errors:
            raise RuntimeError("harvest sandbox records do not match the reference:\n" + "\n".join(errors[:20]))

    def env(self, base_url: str) -> dict[str, str]:
        return {
            "HARVEST_API_URL": f"{base_url}/harvest/v2",
            "HARVEST_ACCESS_TOKEN": TOKEN,
            "HARVEST_ACCOUNT_ID": ACCOUNT_ID,
            "HARVEST_START_DATE": self.start_date,
        }

    # -- the API --

    def handle_api(self, request: Request, path: str) -> Response:
        route, endpoint, parent_id = self._match(path[3:] if path.startswith("/v2/") else "")
        if route is None:
            return json_response(404, NOT_FOUND)
        if request.method not in ("GET", "HEAD"):
            return json_response(405, {"status": 405, "error": "Method Not Allowed",
                                       "message": "The sandbox serves read-only GET requests"})
        error = _authenticate(request, self.tokens)
        if error is not None:
            return error
        with self.lock:
            self.stats[route] += 1
        fault = self.faults.take(self.name, _bearer(request))
        if fault is None and route in REPORTS:
            fault = self.faults.take(REPORTS_LIMIT)
        if fault is not None and fault.kind == "expire":
            token = _bearer(request)
            if token != TOKEN:  # a personal access token never expires; an OAuth one dies now
                self.tokens.expire(token)
                return json_response(401, INVALID_TOKEN)
        elif fault is not None:
            return fault_response(fault)
        try:
            with self.lock:
                return self._serve(request, route, endpoint, parent_id)
        except ApiError as exc:
            return json_response(exc.status, exc.body)

    def _match(self, path: str) -> tuple[str | None, Endpoint | None, int | None]:
        """The route template a path belongs to, its list endpoint if any, and its parent id."""
        if path in self.exact:
            return path, self.exact[path], None
        if path in ("/company", "/users/me") or path in REPORTS:
            return path, None, None
        for pattern, endpoint in self.patterns:
            m = pattern.match(path)
            if m:
                return endpoint.path, endpoint, int(m.group(1))
        return None, None, None

    def _serve(self, request: Request, route: str, endpoint: Endpoint | None, parent_id: int | None) -> Response:
        if route == "/company":
            return json_response(200, COMPANY)
        if route == "/users/me":
            return Response(200, self.tables["users"].blobs[self.me()])
        if route in REPORTS:
            results = harvest_reports.compute(route, request, self.tables)
            return render_page(request, "results", "page", 2000, list(range(len(results))), lambda i: dumps(results[i]))
        assert endpoint is not None
        if route == ME_ASSIGNMENTS:
            return self._page_of_records(request, endpoint, self.children_of("user_projects", self.me()))
        if not endpoint.per_parent:
            table = self.tables[endpoint.table]
            query = Query(endpoint, request)
            ids = table.view(query.key, query.select(table))
            return render_page(request, endpoint.envelope, endpoint.pagination, endpoint.default_per_page, ids,
                               table.blobs.__getitem__)
        if parent_id not in self.tables[endpoint.parent].records:
            raise ApiError(404, NOT_FOUND)
        records = self.children_of(endpoint.table, parent_id)
        since = request.param("updated_since") if endpoint.updated_since else None
        if since:
            cutoff = parse_since(since)
            records = [r for r in records if epoch(r["updated_at"]) > cutoff]
        return self._page_of_records(request, endpoint, records)

    def _page_of_records(self, request: Request, endpoint: Endpoint, records: list[Record]) -> Response:
        by_id = {r["id"]: r for r in records}
        return render_page(request, endpoint.envelope, endpoint.pagination, endpoint.default_per_page, list(by_id),
                           lambda i: dumps(by_id[i]), descending=not endpoint.order.endswith(" asc"))

    def me(self) -> int:
        """The authenticated user: the token belongs to the account's first administrator."""
        users = self.tables["users"].records
        return next(i for i in sorted(users) if "administrator" in users[i]["access_roles"])

    # -- derived views --

    def _project_assignments(self, user_id: int) -> list[Record]:
        """``/users/{id}/project_assignments``: the user's active user assignments (same ids as
        ``/user_assignments``, §6.19) with the project's client and task assignments embedded."""
        projects = self.tables["projects"].records
        out = []
        tasks_by_project: dict[int, list[Record]] = {}
        for ta in self.tables["project_tasks"].records.values():
            tasks_by_project.setdefault(ta["project"]["id"], []).append(ta)
        for ua_id in sorted(self.tables["project_users"].records):
            ua = self.tables["project_users"].records[ua_id]
            if ua["user"]["id"] != user_id or not ua["is_active"]:
                continue
            pid = ua["project"]["id"]
            project = projects.get(pid)
            client = project["client"] if project else None
            out.append({
                "id": ua["id"],
                "is_active": ua["is_active"],
                "is_project_manager": ua["is_project_manager"],
                "use_default_rates": ua["use_default_rates"],
                "hourly_rate": ua["hourly_rate"],
                "budget": ua["budget"],
                "project": ua["project"],
                "client": {"id": client["id"], "name": client["name"]} if client else None,
                "created_at": ua["created_at"],
                "updated_at": ua["updated_at"],
                "task_assignments": [
                    {"id": ta["id"], "billable": ta["billable"], "is_active": ta["is_active"], "created_at": ta["created_at"],
                     "updated_at": ta["updated_at"], "hourly_rate": ta["hourly_rate"], "budget": ta["budget"], "task": ta["task"]}
                    for ta in sorted(tasks_by_project.get(pid, ()), key=lambda t: t["id"])
                ],
            })
        return out

    def _info(self) -> dict[str, Any]:
        with self.lock:
            return {
                "seed": self.seed, "scale": self.scale, "anchor": self.anchor.isoformat(), "start_date": self.start_date,
                "counts": {name: len(t.records) for name, t in self.tables.items()},
                "routes": sorted([*(e.path for e in ENDPOINTS), "/company", "/users/me", *REPORTS]),
            }


def _authenticate(request: Request, tokens: TokenRegistry | None = None) -> Response | None:
    """Harvest wants a User-Agent (400 without), then a valid token and account id (401).

    The token is the personal one or an OAuth access token Harvest ID issued and that has not
    expired or been revoked (`tokens` is the registry shared with the Harvest ID emulator).
    """
    if not request.headers.get("User-Agent"):
        return json_response(400, {"message": "A User-Agent header is required, e.g. 'MyApp (you@example.com)'"})
    token = _bearer(request)
    account = request.headers.get("Harvest-Account-Id") or request.param("account_id") or ""
    known = token == TOKEN or (tokens is not None and tokens.accepts(token))
    if not known or account.strip() != ACCOUNT_ID:
        return json_response(401, INVALID_TOKEN)
    return None


def _bearer(request: Request) -> str:
    """The token a request carries: ``Authorization: Bearer`` or the ``access_token`` parameter."""
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        token = request.param("access_token") or ""
    return token.strip()


def start_date_for(anchor: dt.date) -> dt.date:
    """The first day of seeded data for an anchor (what ``HARVEST_START_DATE`` is set to)."""
    return anchor - dt.timedelta(days=HISTORY_DAYS)


__all__ = ["ACCOUNT_ID", "COMPANY", "TOKEN", "HarvestEmulator", "start_date_for"]
