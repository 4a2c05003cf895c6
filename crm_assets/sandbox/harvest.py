"""The Harvest API v2 emulator.

Routes come from the catalog: every root stream's ``endpoint`` is a list route with its
``envelope`` key, its pagination mode (``cursor`` or ``page``) and, when ``updated_since`` is
true, the ``updated_since`` filter; every child stream with an ``endpoint`` such as
``/invoices/{parent_id}/messages`` is a per-parent route. The records themselves come from
``harvest_data`` and are checked against the catalog at start-up, so a catalog change that the
generators do not follow fails loudly instead of serving the wrong shape.

Behaviour copied from the real API (see the project's Harvest spec, sections 1-5): the three
required headers and their error answers, the list envelope with absolute ``links``, page-number
pagination on time_entries/invoices/estimates/expenses and keyset cursors elsewhere (with null
``page``/``next_page``/``previous_page`` on middle cursor pages), ``per_page`` limits, strict
``updated_since`` at one-second granularity, per-endpoint sort orders, HTML 404 pages for
unknown routes and JSON 404 for unknown parents.

Speed: each record is serialized once (again only when modified) and a page body is a join of
those bytes. The filtered, sorted id list of each (stream, filters) pair is cached until the
stream changes, so paging through a filtered result costs O(per_page) per page.
"""

from __future__ import annotations

import base64
import bisect
import calendar
import datetime as dt
import gc
import json
import math
import random
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from crm_assets.catalog import Catalog, Stream
from crm_assets.sandbox.harvest_data import (
    HISTORY_DAYS,
    Dataset,
    Mutator,
    Record,
    build_dataset,
    iso,
    iso_day,
)
from crm_assets.sandbox.harvest_id import TokenRegistry
from crm_assets.sandbox.server import (
    BadRequest,
    FaultInjector,
    Request,
    Response,
    dumps,
    fault_response,
    html_response,
    json_response,
)
from crm_assets.sources.harvest import harvest_catalog

TOKEN = "sandbox-harvest-token"
ACCOUNT_ID = "1234567"
MAX_PER_PAGE = 2000
DEFAULT_PER_PAGE = 2000
# /v2/invoices alone still documents "per_page (Default: 100)" (spec §3.1).
ENDPOINT_DEFAULT_PER_PAGE = {"invoices": 100}
# Page-mode endpoints sort by a date, newest first; cursor-mode ones by creation (= id) desc.
SORT_DATE_FIELD = {"time_entries": "spent_date", "expenses": "spent_date", "invoices": "issue_date", "estimates": "issue_date"}
# Boolean and text columns that the real endpoints accept as exact-match filters.
BOOLEAN_FILTERS = ("is_active", "is_billed", "is_running")
TEXT_FILTERS = ("state",)
# Parent deletes that cascade in Harvest (messages and payments belong to their document).
CASCADES = {"invoices": ("invoice_messages", "invoice_payments"), "estimates": ("estimate_messages",)}
INVALID_TOKEN = {
    "error": "invalid_token",
    "error_description": "The access token provided is expired, revoked, malformed or invalid for other reasons.",
}
COMPANY = {
    "base_uri": "https://sandbox.harvestapp.com",
    "full_domain": "sandbox.harvestapp.com",
    "name": "Sandbox Studio",
    "is_active": True,
    "week_start_day": "Monday",
    "wants_timestamp_timers": False,
    "time_format": "hours_minutes",
    "date_format": "%Y-%m-%d",
    "plan_type": "sponsored",
    "clock": "12h",
    "currency_code_display": "iso_code_never",
    "currency_symbol_display": "symbol_before",
    "decimal_symbol": ".",
    "thousands_separator": ",",
    "color_scheme": "orange",
    "weekly_capacity": 126000,
    "expense_feature": True,
    "invoice_feature": True,
    "estimate_feature": True,
    "approval_feature": True,
    "team_feature": True,
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BARE_OFFSET = re.compile(r"^(.*\d) (\d{2}:?\d{2})$")


class ApiError(Exception):
    """An error the real API answers with a JSON body (422 for bad parameters, 404 ...)."""

    def __init__(self, status: int, body: dict[str, Any]):
        super().__init__(body)
        self.status = status
        self.body = body


def epoch(stamp: str) -> int:
    """Seconds since the epoch for ``YYYY-MM-DDTHH:MM:SSZ``."""
    return calendar.timegm((int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10]),
                            int(stamp[11:13]), int(stamp[14:16]), int(stamp[17:19])))


def parse_since(value: str) -> int:
    """``updated_since`` as epoch seconds, truncated to the second (Harvest's granularity).

    Accepts ``Z``, numeric offsets (``+00:00``, also when a ``+`` arrived unencoded as a space),
    fractional seconds, naive times (UTC) and bare dates (midnight UTC).
    """
    text = value.strip()
    match = _BARE_OFFSET.match(text)
    if match and "T" in text:
        text = f"{match.group(1)}+{match.group(2)}"
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(422, {"message": f"Invalid updated_since parameter: {value!r} is not an ISO 8601 date time"}) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return math.floor(parsed.timestamp())


def encode_cursor(direction: str, record_id: int) -> str:
    raw = dumps({direction: {"id": record_id}})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = json.loads(raw)
        ((direction, key),) = doc.items()
        if direction not in ("after", "before"):
            raise ValueError(direction)
        return direction, int(key["id"])
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ApiError(422, {"message": "Invalid cursor parameter"}) from None


def record_shape(catalog: Catalog, stream: Stream) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keys a served record must have, from the catalog.

    Returns ``(tree, derived)``: ``tree`` maps each key the stream's own columns declare to a
    subtree (nested object) or ``None`` (leaf); ``derived`` maps the paths of derived child
    streams that the tree lacks (``line_items``, ``user_ids``, ``task_assignments``) to the keys
    each element must at least contain (``None`` for scalar arrays).
    """
    tree = stream.key_tree()
    derived: dict[str, Any] = {}
    for child in catalog.children(stream.name):
        if child.is_derived and child.path not in tree:
            keys = {c.path[0] for c in child.columns if c.path}
            derived[child.path] = keys or None
    return tree, derived


def shape_errors(record: Record, tree: dict[str, Any], derived: dict[str, Any], where: str) -> list[str]:
    """Differences between a record and the catalog's shape (empty when it matches)."""
    errors: list[str] = []

    def walk(obj: dict, node: dict, path: str, extra: Iterable[str] = ()) -> None:
        expected = set(node) | set(extra)
        if set(obj) != expected:
            missing, unknown = sorted(expected - set(obj)), sorted(set(obj) - expected)
            errors.append(f"{where}{path}: missing {missing}, unknown {unknown}")
        for key, sub in node.items():
            value = obj.get(key)
            if isinstance(sub, dict) and value is not None:
                if not isinstance(value, dict):
                    errors.append(f"{where}{path}.{key}: expected an object or null")
                else:
                    walk(value, sub, f"{path}.{key}")

    walk(record, tree, "", derived)
    for key, keys in derived.items():
        value = record.get(key)
        if not isinstance(value, list):
            errors.append(f"{where}.{key}: expected an array")
        elif keys:
            for item in value:
                if not isinstance(item, dict) or not keys <= set(item):
                    errors.append(f"{where}.{key}[]: expected objects with {sorted(keys)}")
                    break
    return errors


class Table:
    """One stored collection: records by id, their JSON bytes, and cached orderings.

    ``date_field`` gives the page-mode order (that date desc, then id desc); without it the
    order is id desc, which equals creation desc because ids grow with ``created_at``. Child
    tables also remember each record's parent.
    """

    def __init__(self, name: str, records: Iterable[Record], date_field: str | None = None,
                 parents: Iterable[tuple[int, Record]] | None = None):
        self.name = name
        self.date_field = date_field
        self.records: dict[int, Record] = {}
        self.blobs: dict[int, bytes] = {}
        self.updated: dict[int, int] = {}
        self.parent_of: dict[int, int] = {}
        self.by_parent: dict[int, list[int]] = {}
        self.version = 0
        self._order: list[int] | None = None
        self._views: OrderedDict[tuple, list[int]] = OrderedDict()
        for rec in records:
            self._store(rec)
        for parent_id, rec in parents or ():
            self._store(rec)
            self.parent_of[rec["id"]] = parent_id
            self.by_parent.setdefault(parent_id, []).append(rec["id"])

    def _store(self, rec: Record) -> None:
        rid = rec["id"]
        self.records[rid] = rec
        self.blobs[rid] = dumps(rec)
        self.updated[rid] = epoch(rec["updated_at"])

    def order(self) -> list[int]:
        """All ids in the endpoint's default order."""
        if self._order is None:
            if self.date_field:
                recs, field = self.records, self.date_field
                self._order = sorted(recs, key=lambda i: (recs[i].get(field) or "", i), reverse=True)
            else:
                self._order = sorted(self.records, reverse=True)
        return self._order

    def view(self, key: tuple, select: Callable[[list[int]], list[int]]) -> list[int]:
        """The filtered ids for ``key``, computed once per table version (small LRU)."""
        full = (self.version, *key)
        ids = self._views.get(full)
        if ids is None:
            ids = select(self.order())
            self._views[full] = ids
            while len(self._views) > 32:
                self._views.popitem(last=False)
        else:
            self._views.move_to_end(full)
        return ids

    def put(self, rec: Record) -> None:
        old = self.records.get(rec["id"])
        if old is None or (self.date_field and old.get(self.date_field) != rec.get(self.date_field)):
            self._order = None
        self._store(rec)
        self._changed()

    def delete(self, rid: int) -> int | None:
        """Remove a record; returns its parent id for child tables."""
        self.records.pop(rid)
        self.blobs.pop(rid)
        self.updated.pop(rid)
        parent = self.parent_of.pop(rid, None)
        if parent is not None:
            self.by_parent[parent].remove(rid)
        if self._order is not None:
            self._order.remove(rid)
        self._changed()
        return parent

    def _changed(self) -> None:
        self.version += 1
        self._views.clear()


class Query:
    """The parsed filters of one list request; ``key`` identifies it in the view cache."""

    def __init__(self, since: int | None, matches: list[tuple[tuple[str, ...], str]],
                 date_field: str | None, date_from: str | None, date_to: str | None):
        self.since = since
        self.matches = matches
        self.date_field = date_field
        self.date_from = date_from
        self.date_to = date_to
        self.key = (since, tuple(matches), date_from, date_to)

    def select(self, table: Table) -> Callable[[list[int]], list[int]]:
        def run(ids: list[int]) -> list[int]:
            if self.since is not None:
                upd, since = table.updated, self.since
                ids = [i for i in ids if upd[i] > since]
            if self.date_field and (self.date_from or self.date_to):
                recs, field = table.records, self.date_field
                lo, hi = self.date_from or "", self.date_to or "9999-99-99"
                ids = [i for i in ids if lo <= (recs[i].get(field) or "") <= hi]
            for path, wanted in self.matches:
                ids = [i for i in ids if _lookup(table.records[i], path) == wanted]
            return ids

        return run


def _lookup(rec: Record, path: tuple[str, ...]) -> str:
    """A nested value rendered the way it appears in a query string."""
    value: Any = rec
    for key in path:
        if not isinstance(value, dict):
            return ""
        value = value.get(key)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class RootRoute:
    """A list endpoint of a root stream, with the filters its catalog columns allow."""

    def __init__(self, stream: Stream):
        self.stream = stream
        self.template = stream.endpoint
        self.date_field = SORT_DATE_FIELD.get(stream.name) if stream.pagination == "page" else None
        self.default_per_page = ENDPOINT_DEFAULT_PER_PAGE.get(stream.name, DEFAULT_PER_PAGE)
        self.filters: dict[str, tuple[str, ...]] = {}
        for col in stream.columns:
            path = col.path or ()
            if len(path) == 2 and path[1] == "id":
                self.filters[f"{path[0]}_id"] = path
            elif len(path) == 1 and (col.name in BOOLEAN_FILTERS or col.name in TEXT_FILTERS):
                self.filters[col.name] = path

    def query(self, request: Request) -> Query:
        since = None
        if self.stream.updated_since and request.param("updated_since"):
            since = parse_since(request.param("updated_since"))
        matches = []
        for name, path in self.filters.items():
            value = request.param(name)
            if value is None or value == "":
                continue
            if name in BOOLEAN_FILTERS:
                if value.lower() not in ("true", "false"):
                    raise ApiError(422, {"message": f"Invalid {name} parameter: expected true or false"})
                value = value.lower()
            matches.append((path, value))
        bounds = []
        for name in ("from", "to"):
            value = request.param(name) if self.date_field else None
            if value and not _DATE.match(value):
                raise ApiError(422, {"message": f"Invalid {name} parameter: expected YYYY-MM-DD"})
            bounds.append(value or None)
        return Query(since, matches, self.date_field, *bounds)


class ChildRoute:
    """A per-parent endpoint such as ``/invoices/{parent_id}/messages``."""

    def __init__(self, stream: Stream):
        self.stream = stream
        self.template = stream.endpoint.replace("{parent_id}", "{id}")
        head, _, tail = stream.endpoint.partition("{parent_id}")
        self.pattern = re.compile("^" + re.escape(head) + r"(\d+)" + re.escape(tail) + "$")
        self.default_per_page = DEFAULT_PER_PAGE


class HarvestEmulator:
    """Serves ``/harvest/v2/...`` from seeded data; admin API under ``/_sandbox/harvest/...``."""

    name = "harvest"

    def __init__(self, seed: int = 1, scale: float = 1.0, anchor: dt.date | None = None,
                 faults: FaultInjector | None = None, catalog: Catalog | None = None,
                 tokens: TokenRegistry | None = None):
        self.seed = seed
        self.tokens = tokens
        self.scale = scale
        self.anchor = anchor or dt.datetime.now(dt.timezone.utc).date()
        self.faults = faults or FaultInjector(seed)
        self.catalog = catalog or harvest_catalog()
        self.lock = threading.RLock()
        self.stats: Counter[str] = Counter()
        self.modifications = 0
        self.tables: dict[str, Table] = {}
        self.roots: dict[str, RootRoute] = {}
        self.children: list[ChildRoute] = []
        self.views: dict[str, Callable[[int], list[Record]]] = {"user_projects": self._project_assignments}
        # Hundreds of thousands of long-lived dicts: the cyclic GC would rescan them over and
        # over while they are built (tripling start-up time), and they never form cycles.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            data = build_dataset(seed, scale, calendar.timegm(self.anchor.timetuple()))
            self._build_routes(data)
        finally:
            gc.freeze()
            if gc_was_enabled:
                gc.enable()
        self.start_date = iso_day(data.start)
        self.next_ids = data.next_ids
        self._check_shapes()

    # -- set-up --

    def _build_routes(self, data: Dataset) -> None:
        for stream in self.catalog.streams:
            if stream.is_root:
                if stream.name not in data.roots:
                    raise RuntimeError(f"harvest sandbox: no generator for root stream {stream.name!r}")
                route = RootRoute(stream)
                self.roots[stream.endpoint] = route
                self.tables[stream.name] = Table(stream.name, data.roots[stream.name], route.date_field)
            elif stream.endpoint:
                if stream.name not in data.children and stream.name not in self.views:
                    raise RuntimeError(f"harvest sandbox: no generator for child stream {stream.name!r}")
                if stream.name in data.children:
                    self.tables[stream.name] = Table(stream.name, (), parents=data.children[stream.name])
                self.children.append(ChildRoute(stream))

    def _check_shapes(self) -> None:
        """Every served record has exactly the catalog's fields (checked on a sample of big tables)."""
        errors: list[str] = []
        for name, table in self.tables.items():
            stream = self.catalog.stream(name)
            tree, derived = record_shape(self.catalog, stream)
            for rid in list(table.records)[:2000]:
                errors += shape_errors(table.records[rid], tree, derived, f"{name} id={rid}")
        for name in self.views:
            stream = self.catalog.stream(name)
            tree, derived = record_shape(self.catalog, stream)
            for uid in list(self.tables[stream.parent].records)[:50]:
                for rec in self.views[name](uid):
                    errors += shape_errors(rec, tree, derived, f"{name} id={rec['id']}")
        if errors:
            raise RuntimeError("harvest sandbox records do not match the catalog:\n" + "\n".join(errors[:20]))

    def env(self, base_url: str) -> dict[str, str]:
        return {
            "HARVEST_API_URL": f"{base_url}/harvest/v2",
            "HARVEST_ACCESS_TOKEN": TOKEN,
            "HARVEST_ACCOUNT_ID": ACCOUNT_ID,
            "HARVEST_START_DATE": self.start_date,
        }

    # -- the API --

    def handle_api(self, request: Request, path: str) -> Response:
        if request.method not in ("GET", "HEAD"):
            return json_response(405, {"message": "The sandbox serves read-only GET requests"})
        if not path.startswith("/v2/"):
            return _not_found_page()
        path = path[3:]
        route, parent_id = self._match(path)
        if route is None:
            return _not_found_page()
        error = _authenticate(request, self.tokens)
        if error is not None:
            return error
        with self.lock:
            self.stats[route] += 1
        fault = self.faults.take(self.name)
        if fault is not None:
            return fault_response(fault)
        try:
            with self.lock:
                return self._serve(request, route, parent_id)
        except ApiError as exc:
            return json_response(exc.status, exc.body)

    def _match(self, path: str) -> tuple[str | None, int | None]:
        if path in self.roots or path in ("/company", "/users/me"):
            return path, None
        for child in self.children:
            m = child.pattern.match(path)
            if m:
                return child.template, int(m.group(1))
        return None, None

    def _serve(self, request: Request, route: str, parent_id: int | None) -> Response:
        if route == "/company":
            return json_response(200, COMPANY)
        if route == "/users/me":
            users = self.tables["users"]
            admin = next(i for i in sorted(users.records) if "administrator" in users.records[i]["access_roles"])
            return Response(200, users.blobs[admin])
        if route in self.roots:
            root = self.roots[route]
            table = self.tables[root.stream.name]
            query = root.query(request)
            ids = table.view(query.key, query.select(table))
            return self._list(request, root.stream, root.default_per_page, ids, table.blobs.__getitem__)
        child = next(c for c in self.children if c.template == route)
        stream = child.stream
        if parent_id not in self.tables[stream.parent].records:
            raise ApiError(404, {"status": 404, "error": "Not Found"})
        since = parse_since(request.param("updated_since")) if stream.updated_since and request.param("updated_since") else None
        if stream.name in self.views:
            recs = [r for r in self.views[stream.name](parent_id) if since is None or epoch(r["updated_at"]) > since]
            recs.sort(key=lambda r: r["id"], reverse=True)
            blobs = {r["id"]: dumps(r) for r in recs}
            return self._list(request, stream, child.default_per_page, [r["id"] for r in recs], blobs.__getitem__)
        table = self.tables[stream.name]
        ids = sorted(table.by_parent.get(parent_id, ()), reverse=True)
        if since is not None:
            ids = [i for i in ids if table.updated[i] > since]
        return self._list(request, stream, child.default_per_page, ids, table.blobs.__getitem__)

    def _list(self, request: Request, stream: Stream, default_per_page: int, ids: list[int],
              blob: Callable[[int], bytes]) -> Response:
        """One page of ``ids`` in Harvest's envelope; ``ids`` is in the endpoint's order."""
        per_page = _int_param(request, "per_page", default_per_page)
        if per_page > MAX_PER_PAGE:
            raise ApiError(422, {"message": f"per_page must be between 1 and {MAX_PER_PAGE}"})
        cursor = request.param("cursor") if stream.pagination == "cursor" else None
        page = _int_param(request, "page", 1) if not cursor else None
        total = len(ids)
        pages = math.ceil(total / per_page)
        keep = [(k, v) for k, v in request.query if k not in ("page", "cursor", "per_page", "ref")]
        base = f"{request.base_url}{request.path}"

        def link(first: tuple[str, Any], ref: str | None = None) -> str:
            params = [first, ("per_page", per_page), *keep]
            if ref:
                params.append(("ref", ref))
            return f"{base}?{urlencode(params)}"

        cursor_mode = stream.pagination == "cursor"
        last_page = max(pages, 1)
        if cursor:
            direction, anchor_id = decode_cursor(cursor)
            if direction == "after":
                start = bisect.bisect_right(ids, -anchor_id, key=_negate)
                end = start + per_page
            else:
                end = bisect.bisect_left(ids, -anchor_id, key=_negate)
                start = max(0, end - per_page)
            chunk = ids[start:end]
            is_first, is_last = start == 0, start + len(chunk) >= total
            number = 1 if is_first else (last_page if is_last else None)
            next_page = 2 if is_first and not is_last else None
            previous_page = last_page - 1 if is_last and not is_first and last_page > 1 else None
        else:
            start = (page - 1) * per_page
            chunk = ids[start:start + per_page]
            is_last = start + len(chunk) >= total
            number = page
            next_page = page + 1 if page < pages else None
            previous_page = page - 1 if page > 1 else None
        if cursor_mode:
            links = {
                "first": link(("page", 1), "first"),
                "next": link(("cursor", encode_cursor("after", chunk[-1])), "next_cursor") if chunk and not is_last else None,
                "previous": None,
                "last": link(("page", last_page), "last"),
            }
            if start > 0:
                if cursor and not is_last and chunk:
                    links["previous"] = link(("cursor", encode_cursor("before", chunk[0])), "previous_cursor")
                else:
                    links["previous"] = link(("page", max(1, (number or 2) - 1)), "previous")
        else:
            links = {
                "first": link(("page", 1)),
                "next": link(("page", next_page)) if next_page else None,
                "previous": link(("page", previous_page)) if previous_page else None,
                "last": link(("page", last_page)),
            }
        meta = dumps({
            "per_page": per_page,
            "total_pages": pages,
            "total_entries": total,
            "next_page": next_page,
            "previous_page": previous_page,
            "page": number,
            "links": links,
        })
        body = b"".join((b'{"', stream.envelope.encode(), b'":[', b",".join(map(blob, chunk)), b"],", meta[1:]))
        return Response(200, body)

    # -- derived views --

    def _project_assignments(self, user_id: int) -> list[Record]:
        """``/users/{id}/project_assignments``: the user's active user assignments (same ids as
        ``/user_assignments``) with the project's client and task assignments embedded."""
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

    # -- admin API --

    def handle_admin(self, request: Request, path: str) -> Response:
        if path.startswith("/records/") and request.method == "GET":
            return self._records(path[len("/records/"):], request.param("fields"))
        if path == "/modify" and request.method == "POST":
            return self._modify(request.json())
        if path == "/stats" and request.method == "GET":
            with self.lock:
                return json_response(200, {"requests": sum(self.stats.values()), "by_route": dict(sorted(self.stats.items()))})
        if path == "/stats/reset" and request.method == "POST":
            with self.lock:
                self.stats.clear()
            return json_response(200, {"requests": 0, "by_route": {}})
        if path == "/info" and request.method == "GET":
            return json_response(200, self._info())
        return json_response(404, {"error": f"no harvest admin route {request.method} {path}"})

    def _info(self) -> dict[str, Any]:
        with self.lock:
            return {
                "seed": self.seed, "scale": self.scale, "anchor": self.anchor.isoformat(), "start_date": self.start_date,
                "counts": {name: len(t.records) for name, t in self.tables.items()},
                "routes": sorted([*self.roots, *(c.template for c in self.children)]),
            }

    def _records(self, name: str, fields: str | None) -> Response:
        """Ground truth: every record the API would serve now, in the endpoint's order."""
        try:
            stream = self.catalog.stream(name)
        except KeyError:
            return json_response(404, {"error": f"unknown stream {name!r}"})
        keys = [f for f in fields.split(",") if f] if fields else None

        def render(rec_blob: bytes, rec: Record) -> bytes:
            return dumps({k: rec.get(k) for k in keys}) if keys else rec_blob

        with self.lock:
            parts: list[bytes] = []
            if stream.is_root:
                table = self.tables[name]
                parts = [render(table.blobs[i], table.records[i]) for i in table.order()]
            elif stream.endpoint:
                parent_ids = sorted(self.tables[stream.parent].records)
                for pid in parent_ids:
                    if name in self.views:
                        recs = sorted(self.views[name](pid), key=lambda r: r["id"], reverse=True)
                        pairs = [(dumps(r), r) for r in recs]
                    else:
                        table = self.tables[name]
                        pairs = [(table.blobs[i], table.records[i]) for i in sorted(table.by_parent.get(pid, ()), reverse=True)]
                    parts += [b'{"parent_id":%d,"record":%b}' % (pid, render(b, r)) for b, r in pairs]
            else:
                return json_response(400, {"error": f"{name} is derived from {stream.parent} records; read those"})
        return Response(200, b'{"records":[' + b",".join(parts) + b"]}")

    def _modify(self, body: dict[str, Any]) -> Response:
        name = body.get("stream")
        if name not in self.tables:
            raise BadRequest(f"stream must be one of {sorted(self.tables)} (user_projects change through project_users or users)")
        patch = body.get("set") or {}
        if not isinstance(patch, dict):
            raise BadRequest("set must be an object")
        with self.lock:
            table = self.tables[name]
            if body.get("ids") is not None:
                ids = [int(i) for i in body["ids"]]
                missing = [i for i in ids if i not in table.records]
                if missing:
                    return json_response(404, {"error": f"unknown {name} ids", "ids": missing})
            elif body.get("count") is not None:
                ids = sorted(table.records)[: int(body["count"])]
            else:
                raise BadRequest("give ids or count")
            if body.get("delete"):
                for rid in ids:
                    self._delete(name, rid)
                return json_response(200, {"deleted": ids})
            self.modifications += 1
            mutator = Mutator(random.Random(f"harvest:{self.seed}:modify:{self.modifications}"), self.next_ids)
            now = int(time.time())
            for rid in ids:
                old = table.records[rid]
                rec = _merge(mutator.edit(name, old), patch)
                stamp = max(now, epoch(old["updated_at"]) + 1)
                if "updated_at" not in patch:
                    rec["updated_at"] = iso(stamp)
                table.put(rec)
                self._propagate(name, rec, mutator)
        return json_response(200, {"modified": ids})

    def _propagate(self, name: str, rec: Record, mutator: Mutator) -> None:
        """Side effects of an edit: a user's assignments change with the user, and a change to a
        per-parent child (or to a user assignment) bumps its parent, as in Harvest."""
        stamp = rec["updated_at"]
        if name == "users":
            assignments = self.tables["project_users"]
            mine = [i for i in sorted(assignments.records) if assignments.records[i]["user"]["id"] == rec["id"]
                    and assignments.records[i]["is_active"]]
            if mine:
                ua = mutator.edit("project_users", assignments.records[mine[0]])
                ua["updated_at"] = max(stamp, iso(epoch(ua["updated_at"]) + 1))
                assignments.put(ua)
        elif name == "project_users":
            self._bump("users", rec["user"]["id"], stamp)
        elif self.catalog.stream(name).parent and name in self.tables:
            self._bump(self.catalog.stream(name).parent, self.tables[name].parent_of[rec["id"]], stamp)

    def _bump(self, table_name: str, rid: int, stamp: str) -> None:
        table = self.tables[table_name]
        rec = table.records.get(rid)
        if rec is not None and rec["updated_at"] < stamp:
            table.put({**rec, "updated_at": stamp})

    def _delete(self, name: str, rid: int) -> None:
        """Hard delete, no tombstone; messages and payments go with their document."""
        for child in CASCADES.get(name, ()):
            table = self.tables[child]
            for cid in list(table.by_parent.get(rid, ())):
                table.delete(cid)
        record = self.tables[name].records[rid]
        parent = self.tables[name].delete(rid)
        if name == "project_users":
            parent_table, parent = "users", record["user"]["id"]
        else:
            parent_table = self.catalog.stream(name).parent
        if parent is not None and parent_table:
            stamp = max(int(time.time()), self.tables[parent_table].updated.get(parent, 0) + 1)
            self._bump(parent_table, parent, iso(stamp))


def _negate(x: int) -> int:
    return -x


def _merge(base: Record, patch: dict[str, Any]) -> Record:
    """``base`` with ``patch`` merged in; nested dicts merge, copying (they may be shared)."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _int_param(request: Request, name: str, default: int) -> int:
    value = request.param(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ApiError(422, {"message": f"Invalid {name} parameter: expected a positive integer"})
    return number


def _authenticate(request: Request, tokens: TokenRegistry | None = None) -> Response | None:
    """Harvest wants a User-Agent (400 without), then a valid token and account id (401).

    The token is the personal one or an OAuth access token Harvest ID issued and that has not
    expired or been revoked (`tokens` is the registry shared with the Harvest ID emulator).
    """
    if not request.headers.get("User-Agent"):
        return json_response(400, {"message": "A User-Agent header is required, e.g. 'MyApp (you@example.com)'"})
    auth = request.headers.get("Authorization") or ""
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer":
        token = request.param("access_token") or ""
    account = request.headers.get("Harvest-Account-Id") or request.param("account_id") or ""
    token = token.strip()
    known = token == TOKEN or (tokens is not None and tokens.accepts(token))
    if not known or account.strip() != ACCOUNT_ID:
        return json_response(401, INVALID_TOKEN)
    return None


def _not_found_page() -> Response:
    return html_response(404, "HARVEST: Can't find page", "The page you were looking for doesn't exist. You may have mistyped the address or the page may have moved.")


def start_date_for(anchor: dt.date) -> dt.date:
    """The first day of seeded data for an anchor (what ``HARVEST_START_DATE`` is set to)."""
    return anchor - dt.timedelta(days=HISTORY_DAYS)


__all__ = ["ACCOUNT_ID", "TOKEN", "HarvestEmulator", "record_shape", "shape_errors", "start_date_for"]
