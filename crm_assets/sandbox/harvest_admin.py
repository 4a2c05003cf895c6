"""The Harvest emulator's admin API under ``/_sandbox/harvest/``: ground truth, edits, counters.

- ``GET records/<table>`` — every record the API would serve now, in the endpoint's order;
  per-parent tables (``invoice_messages``, ``invoice_payments``, ``estimate_messages``,
  ``user_projects``, ``billable_rates``, ``cost_rates``) give ``{"parent_id", "record"}`` items.
  ``?fields=a,b`` keeps only those top-level fields. Table names are tap-harvest's (spec §6.1).
- ``POST modify`` ``{stream, ids | count, set?, delete?}`` — edit records now (a realistic change
  plus ``set``, with a fresh ``updated_at``) or hard-delete them (no tombstone, §4.3).
- ``GET stats`` / ``POST stats/reset`` — API requests by route template; ``GET info``.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from crm_assets.sandbox.harvest_mutations import Mutator
from crm_assets.sandbox.harvest_vocabulary import iso
from crm_assets.sandbox.harvest_reference import ENDPOINTS, Endpoint
from crm_assets.sandbox.harvest_store import Record, Table, epoch
from crm_assets.sandbox.server import BadRequest, Request, Response, dumps, json_response

# Harvest deletes a document's messages and payments with it, and a user's rate history.
CASCADES = {"invoices": ("invoice_messages", "invoice_payments"), "estimates": ("estimate_messages",),
            "users": ("billable_rates", "cost_rates")}
# A message or payment belongs to its document: changing it changes the document.
BUMPS_PARENT = {"invoice_messages": "invoices", "invoice_payments": "invoices", "estimate_messages": "estimates"}
# Tables with no request of their own: read their parent's records instead.
DERIVED = {"invoice_line_items": "invoices", "estimate_line_items": "estimates", "user_roles": "roles",
           "time_entry_external_reference": "time_entries", "user_project_tasks": "user_projects"}
# Each table's canonical endpoint (/users/me/project_assignments is a second view of user_projects).
ENDPOINT_OF_TABLE: dict[str, Endpoint] = {}
for _endpoint in ENDPOINTS:
    ENDPOINT_OF_TABLE.setdefault(_endpoint.table, _endpoint)


class HarvestAdmin:
    """Mixed into :class:`~crm_assets.sandbox.harvest.HarvestEmulator`, which owns the state."""

    seed: int
    scale: float
    lock: Any
    stats: Counter[str]
    modifications: int
    tables: dict[str, Table]
    views: dict[str, Callable[[int], list[Record]]]
    next_ids: dict[str, int]

    def _info(self) -> dict[str, Any]:
        raise NotImplementedError

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

    def children_of(self, name: str, parent_id: int) -> list[Record]:
        """A per-parent table's records for one parent, in the endpoint's order."""
        if name in self.views:
            return sorted(self.views[name](parent_id), key=lambda r: r["id"], reverse=True)
        table = self.tables[name]
        return [table.records[i] for i in table.children(parent_id)]

    def _records(self, name: str, fields: str | None) -> Response:
        endpoint = ENDPOINT_OF_TABLE.get(name)
        if endpoint is None:
            if name in DERIVED:
                return json_response(400, {"error": f"{name} is derived from {DERIVED[name]} records; read those"})
            return json_response(404, {"error": f"unknown stream {name!r}"})
        keys = [f for f in fields.split(",") if f] if fields else None

        def render(rec: Record) -> bytes:
            return dumps({k: rec.get(k) for k in keys}) if keys else dumps(rec)

        with self.lock:
            if not endpoint.per_parent:
                table = self.tables[name]
                parts = [render(table.records[i]) if keys else table.blobs[i] for i in table.order()]
            else:
                parts = [
                    b'{"parent_id":%d,"record":%b}' % (pid, render(rec))
                    for pid in sorted(self.tables[endpoint.parent].records)
                    for rec in self.children_of(name, pid)
                ]
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
        message or payment (or to a user assignment) bumps its parent.

        The user assignment → user bump is not documented by Harvest; the platform relies on it
        to keep user_projects current until it reads the assignments another way (issue 12 item 5).
        """
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
        elif name in BUMPS_PARENT:
            self._bump(BUMPS_PARENT[name], self.tables[name].parent_of[rec["id"]], stamp)

    def _bump(self, table_name: str, rid: int, stamp: str) -> None:
        table = self.tables[table_name]
        rec = table.records.get(rid)
        if rec is not None and rec["updated_at"] < stamp:
            table.put({**rec, "updated_at": stamp})

    def _delete(self, name: str, rid: int) -> None:
        """Hard delete, no tombstone; dependent records go with it."""
        for child in CASCADES.get(name, ()):
            table = self.tables[child]
            for cid in list(table.by_parent.get(rid, ())):
                table.delete(cid)
        record = self.tables[name].records[rid]
        parent = self.tables[name].delete(rid)
        if name == "project_users":
            parent_table, parent = "users", record["user"]["id"]
        else:
            parent_table = BUMPS_PARENT.get(name)
        if parent is not None and parent_table:
            stamp = max(int(time.time()), self.tables[parent_table].updated.get(parent, 0) + 1)
            self._bump(parent_table, parent, iso(stamp))


def _merge(base: Record, patch: dict[str, Any]) -> Record:
    """``base`` with ``patch`` merged in; nested dicts merge, copying (they may be shared)."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
