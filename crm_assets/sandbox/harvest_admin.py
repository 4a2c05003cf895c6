"""The Harvest emulator's admin API under ``/_sandbox/harvest/``: ground truth, edits, counters.

- ``GET records/<table>`` — every record the API would serve now, in the endpoint's order;
  per-parent tables (``invoice_messages``, ``invoice_payments``, ``estimate_messages``,
  ``user_projects``, ``billable_rates``, ``cost_rates``) give ``{"parent_id", "record"}`` items.
  ``?fields=a,b`` keeps only those top-level fields. Table names are tap-harvest's (spec §6.1).
- ``POST modify`` ``{stream, ids | count, set?, delete?}`` — edit records now (a realistic change
  plus ``set``, with a fresh ``updated_at``) or hard-delete them (no tombstone, §4.3);
  ``{stream: "project_users", add: [{user_id, project_id}, ...]}`` assigns users to projects.
  An edit changes only the records named: Harvest documents no ``updated_at`` bump of a user
  when one of their assignments changes, nor of an invoice or estimate when one of its messages
  or payments alone is edited (those have their own ``updated_at`` and endpoints), so none is made.
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
            raise BadRequest(f"stream must be one of {sorted(self.tables)} (user_projects change through project_users)")
        if body.get("add") is not None:
            return self._assign(name, body["add"])
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
        return json_response(200, {"modified": ids})

    def _assign(self, name: str, pairs: Any) -> Response:
        """New active user assignments, created now, as ``POST /projects/{id}/user_assignments``
        would make them (the user's default rates)."""
        if name != "project_users" or not isinstance(pairs, list):
            raise BadRequest("add takes stream project_users and a list of {user_id, project_id}")
        with self.lock:
            users, projects = self.tables["users"].records, self.tables["projects"].records
            assignments = self.tables["project_users"]
            added = []
            for pair in pairs:
                user, project = users.get(int(pair["user_id"])), projects.get(int(pair["project_id"]))
                if user is None or project is None:
                    return json_response(404, {"error": f"unknown user or project in {pair}"})
                taken = any(a["user"]["id"] == user["id"] and a["project"]["id"] == project["id"]
                            for a in assignments.records.values())
                if taken:
                    return json_response(422, {"error": f"user {user['id']} is already assigned to {project['id']}"})
                now = iso(int(time.time()))
                rid = max(assignments.records) + 1
                assignments.put({
                    "id": rid, "project": {k: project[k] for k in ("id", "name", "code")},
                    "user": {"id": user["id"], "name": f"{user['first_name']} {user['last_name']}"},
                    "is_active": True, "is_project_manager": False, "use_default_rates": True,
                    "hourly_rate": user["default_hourly_rate"], "budget": None, "created_at": now, "updated_at": now,
                })
                added.append(rid)
        return json_response(200, {"added": added})

    def _delete(self, name: str, rid: int) -> None:
        """Hard delete, no tombstone; dependent records go with it."""
        for child in CASCADES.get(name, ()):
            table = self.tables[child]
            for cid in list(table.by_parent.get(rid, ())):
                table.delete(cid)
        self.tables[name].delete(rid)


def _merge(base: Record, patch: dict[str, Any]) -> Record:
    """``base`` with ``patch`` merged in; nested dicts merge, copying (they may be shared)."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
