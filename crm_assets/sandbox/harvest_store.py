"""Stored collections, request filters and Harvest's paged envelope, for the Harvest emulator.

Speed: each record is serialized once (again only when modified) and a page body is a join of
those bytes. The filtered, sorted id list of each (table, filters) pair is cached until the
table changes, so paging through a filtered result costs O(per_page) per page.
"""

from __future__ import annotations

import base64
import bisect
import calendar
import datetime as dt
import json
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from crm_assets.sandbox.harvest_reference import BOOLEAN_FILTERS, CREATED_DESC, Endpoint
from crm_assets.sandbox.server import Request, Response, dumps

Record = dict[str, Any]
MAX_PER_PAGE = 2000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BARE_OFFSET = re.compile(r"^(.*\d) (\d{2}:?\d{2})$")


class ApiError(Exception):
    """An error the real API answers with a JSON body (422 for bad parameters, 404 ...)."""

    def __init__(self, status: int, body: dict[str, Any]):
        super().__init__(body)
        self.status = status
        self.body = body


NOT_FOUND = {"status": 404, "error": "Not Found"}


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


def sort_key(order: str) -> tuple[str | None, bool]:
    """``(date field or None for ids, descending)`` for an endpoint's documented order."""
    if order == CREATED_DESC:
        return None, True
    name, _, direction = order.partition(" ")
    return name, direction == "desc"


class Table:
    """One stored collection: records by id, their JSON bytes, and cached orderings.

    ``order`` is the endpoint's sort (a date then id, or ids alone, which follow creation).
    Per-parent tables also remember each record's parent.
    """

    def __init__(self, name: str, records: Iterable[Record], order: str = CREATED_DESC,
                 parents: Iterable[tuple[int, Record]] | None = None):
        self.name = name
        self.date_field, self.descending = sort_key(order)
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

    def sort(self, ids: Iterable[int]) -> list[int]:
        recs, field = self.records, self.date_field
        if field:
            return sorted(ids, key=lambda i: (recs[i].get(field) or "", i), reverse=self.descending)
        return sorted(ids, reverse=self.descending)

    def order(self) -> list[int]:
        """All ids in the endpoint's order."""
        if self._order is None:
            self._order = self.sort(self.records)
        return self._order

    def children(self, parent_id: int) -> list[int]:
        return self.sort(self.by_parent.get(parent_id, ()))

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
        """Remove a record; returns its parent id for per-parent tables."""
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
    """The filters of one list request, parsed against its endpoint; ``key`` names it in caches."""

    def __init__(self, endpoint: Endpoint, request: Request):
        self.since = None
        if endpoint.updated_since and request.param("updated_since"):
            self.since = parse_since(request.param("updated_since"))
        self.matches: list[tuple[tuple[str, ...], str]] = []
        for name, path in endpoint.filters.items():
            value = request.param(name)
            if value is None or value == "":
                continue
            if name in BOOLEAN_FILTERS:
                if value.lower() not in ("true", "false"):
                    raise ApiError(422, {"message": f"Invalid {name} parameter: expected true or false"})
                value = value.lower()
            self.matches.append((path, value))
        self.date_field = endpoint.date_range
        bounds = []
        for name in ("from", "to"):
            value = request.param(name) if self.date_field else None
            if value and not _DATE.match(value):
                raise ApiError(422, {"message": f"Invalid {name} parameter: expected YYYY-MM-DD"})
            bounds.append(value or None)
        self.date_from, self.date_to = bounds
        self.key = (self.since, tuple(self.matches), self.date_from, self.date_to)

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
                ids = [i for i in ids if wanted in _rendered(table.records[i], path)]
            return ids

        return run


def _rendered(value: Any, path: tuple[str, ...]) -> set[str]:
    """The values at ``path`` (``*`` walks an array) as a query string writes them."""
    if not path:
        if isinstance(value, bool):
            return {"true" if value else "false"}
        return set() if value is None else {str(value)}
    head, rest = path[0], path[1:]
    if head == "*":
        return set().union(*(_rendered(v, rest) for v in value)) if isinstance(value, list) else set()
    return _rendered(value.get(head), rest) if isinstance(value, dict) else set()


def int_param(request: Request, name: str, default: int) -> int:
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


def render_page(request: Request, envelope: str, pagination: str, default_per_page: int, ids: list[int],
                blob: Callable[[int], bytes], descending: bool = True) -> Response:
    """One page of ``ids`` (already in the endpoint's order) in Harvest's list envelope (§2.2-§3.4).

    Cursor mode keys its cursors on ids (``{"after": {"id": N}}``) and follows the docs' rule
    that ``page``, ``next_page`` and ``previous_page`` are null except on the first and last
    page; page mode numbers every page. Links are absolute and keep the request's filters.
    """
    per_page = int_param(request, "per_page", default_per_page)
    if per_page > MAX_PER_PAGE:
        raise ApiError(422, {"message": f"per_page must be between 1 and {MAX_PER_PAGE}"})
    cursor_mode = pagination == "cursor"
    cursor = request.param("cursor") if cursor_mode else None
    page = int_param(request, "page", 1) if not cursor else 1
    total = len(ids)
    pages = math.ceil(total / per_page)
    last_page = max(pages, 1)
    keep = [(k, v) for k, v in request.query if k not in ("page", "cursor", "per_page", "ref")]
    base = f"{request.base_url}{request.path}"

    def link(first: tuple[str, Any], ref: str | None = None) -> str:
        params = [first, ("per_page", per_page), *keep]
        if ref:
            params.append(("ref", ref))
        return f"{base}?{urlencode(params)}"

    if cursor:
        direction, anchor_id = decode_cursor(cursor)
        sign = -1 if descending else 1

        def position(i: int) -> int:
            return sign * i

        if direction == "after":
            start = bisect.bisect_right(ids, sign * anchor_id, key=position)
            end = start + per_page
        else:
            end = bisect.bisect_left(ids, sign * anchor_id, key=position)
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
        "per_page": per_page, "total_pages": pages, "total_entries": total, "next_page": next_page,
        "previous_page": previous_page, "page": number, "links": links,
    })
    body = b"".join((b'{"', envelope.encode(), b'":[', b",".join(map(blob, chunk)), b"],", meta[1:]))
    return Response(200, body)
