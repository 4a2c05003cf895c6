"""Admin API of the Salesforce emulator, on the sandbox's plain-HTTP server under ``/_sandbox/salesforce/``.

- ``GET /info`` — login and instance URLs, username, CA bundle, objects, API versions;
- ``GET /records/{Object}[?deleted=exclude|include|only]`` — ``{"records": [...]}``, every field
  of every record, oldest first (the org's ground truth);
- ``POST /records/{Object}`` ``{"records": [...]}`` — seed records (validated like inserts, not
  counted as API requests) → ``{"results": [...]}``;
- ``POST /reset`` — empty the org, forget Bulk jobs, query cursors, the request log and the
  Salesforce fault settings (sessions stay valid);
- ``GET /requests`` — ``{"count", "requests": [{"seq", "method", "path", "host", "api", "status",
  "object", "records", "body", "query", "fault", ...}]}``: every HTTPS request received, with a
  body summary (record counts, small JSON fields such as a Bulk job's ``operation`` and
  ``concurrencyMode`` as sent; never passwords or tokens); ``DELETE /requests`` clears it;
- ``GET /jobs`` — Bulk 1.0 jobs with ``concurrencyMode`` (as answered), ``concurrencyModeSent``
  (as the client sent it), state and batches;
- ``GET /sessions`` — ``{"sessions": [...]}``, every session id issued (by logins too), so tests
  can check that none leaked into logs or files;
- ``POST /sessions`` — a new session id ``{"session_id", "instance_url"}`` (for session-id auth);
  ``POST /sessions/expire`` ``{"after": N}`` — every live session dies after N more data
  requests (default 0: now);
- ``GET /faults``; ``POST /faults`` ``{"kind": "lock"|"batch_failed", "count": N}`` or
  ``{"kind": ..., "probability": P}``, ``{"kind": "session_expiry", "after": N}`` (sessions issued
  from now on die after N data requests), ``{"kind": "status", "status": 503|500|403|401,
  "count": N}`` (the shared injector's queue); ``DELETE /faults`` clears them all;
- ``POST /settings`` ``{"polls_before_done": N}`` — Bulk 1.0 batches answer ``InProgress`` to
  their first N status polls.
"""

from __future__ import annotations

from typing import Any

from crm_assets.sandbox.salesforce_objects import OBJECTS, find_object
from crm_assets.sandbox.salesforce_org import USERNAME
from crm_assets.sandbox.salesforce_rest import VERSIONS
from crm_assets.sandbox.server import BadRequest, Request, Response, json_response

FAULT_KINDS = ("lock", "batch_failed")


class SalesforceAdmin:
    def __init__(self, emulator: Any):
        self.sf = emulator

    def handle(self, request: Request, path: str) -> Response:
        method = request.method
        body = request.json() if method == "POST" else {}
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object")
        if method == "GET" and path == "/info":
            return json_response(200, self._info())
        if path.startswith("/records/"):
            obj = find_object(path[len("/records/") :])
            if obj is None:
                return json_response(
                    404, {"error": f"no object {path[len('/records/') :]!r}; objects: {self._objects()}"}
                )
            if method == "GET":
                deleted = request.param("deleted") or "exclude"
                if deleted not in ("exclude", "include", "only"):
                    raise BadRequest("deleted must be exclude, include or only")
                return json_response(200, {"object": obj.name, "records": self.sf.org.all(obj, deleted)})
            if method == "POST":
                return json_response(200, {"results": self.sf.org.load(obj, list(body.get("records") or []))})
        if method == "POST" and path == "/reset":
            self.reset()
            return json_response(200, {"reset": True})
        if path == "/requests":
            if method == "DELETE":
                self._forget_requests()
            with self.sf.lock:
                requests = list(self.sf.requests)
            return json_response(200, {"count": len(requests), "requests": requests})
        if method == "GET" and path == "/jobs":
            return json_response(200, {"jobs": self.sf.bulk.summary()})
        if method == "GET" and path == "/sessions":
            with self.sf.lock:
                return json_response(200, {"sessions": list(self.sf.sessions)})
        if method == "POST" and path == "/sessions":
            return json_response(
                200, {"session_id": self.sf.new_session(), "instance_url": self.sf.instance_url}
            )
        if method == "POST" and path == "/sessions/expire":
            after = body.get("after", 0)
            return json_response(
                200, {"sessions": self.sf.expire_sessions(None if after is None else int(after))}
            )
        if path == "/faults":
            if method == "POST":
                self._add_fault(body)
            elif method == "DELETE":
                self.sf.sf_faults.clear()
                self.sf.faults.clear(self.sf.name)
            return json_response(200, self.sf.sf_faults.describe())
        if method == "POST" and path == "/settings":
            if "polls_before_done" in body:
                self.sf.bulk.polls_before_done = int(body["polls_before_done"])
            return json_response(200, {"polls_before_done": self.sf.bulk.polls_before_done})
        return json_response(404, {"error": f"no Salesforce admin route {method} {path}"})

    def reset(self) -> None:
        self.sf.org.reset()
        self.sf.bulk.reset()
        if self.sf.bulk2:
            self.sf.bulk2.reset()
        with self.sf.rest.lock:
            self.sf.rest.cursors.clear()
        self._forget_requests()
        self.sf.sf_faults.clear()
        self.sf.faults.clear(self.sf.name)

    def _forget_requests(self) -> None:
        with self.sf.lock:
            self.sf.requests.clear()
            self.sf.received = 0

    def _add_fault(self, body: dict[str, Any]) -> None:
        kind = body.get("kind")
        faults = self.sf.sf_faults
        try:
            if kind in FAULT_KINDS:
                with faults.lock:
                    if "probability" in body:
                        probability = float(body["probability"])
                        if not 0 <= probability <= 1:
                            raise ValueError("probability must be within [0, 1]")
                        faults.probability[kind] = probability
                    else:
                        faults.count[kind] = faults.count.get(kind, 0) + int(body.get("count", 1))
            elif kind == "session_expiry":
                with faults.lock:
                    faults.session_expiry = None if body.get("after") is None else int(body["after"])
            elif kind == "status":
                self.sf.faults.queue(self.sf.name, int(body["status"]), int(body.get("count", 1)))
            else:
                raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}, session_expiry, status")
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"fault {body}: {exc}") from exc

    def _objects(self) -> list[str]:
        return [o.name for o in OBJECTS.values()]

    def _info(self) -> dict[str, Any]:
        return {
            "login_url": self.sf.login_url,
            "instance_url": self.sf.instance_url,
            "username": USERNAME,
            "ca_bundle": self.sf.ca_bundle,
            "objects": self._objects(),
            "api_versions": [VERSIONS[0], VERSIONS[-1]],
        }
