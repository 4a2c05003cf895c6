"""The Zoho writer: the records API of spec §3 behind the shared sync machinery.

A batch (at most 100 records) is one call: ``POST /crm/v8/{module}`` to insert, ``PUT`` to
update by ``id``, ``POST .../upsert`` with ``duplicate_check_fields`` naming the sync's key. The
body always carries ``trigger``: the current API runs workflows, approvals and blueprints when
the list is omitted, so ``trigger_workflow: false`` (legacy ``wfTrigger=false``, the default)
sends ``[]`` and ``true`` sends ``["workflow", "approval", "blueprint"]``.

The answer holds one result per record, in order (200/201 all succeeded, 207 some, 400 none):
each failure becomes a rejection with its code and the field and message Zoho gave. A 429
(credits or concurrency) or a 5xx, a timeout or a reset marks the batch's rows as transient, so
the machinery sends them again after the sync's ``retry_initial_delay``, doubling (a
``Retry-After`` header, which Zoho does not document, is waited out first). A 401 renews the
access token once; any other refusal of the whole call stops the run naming the sync and the
module, once the results of the window's other calls are recorded (calls not started yet are
not sent). Tokens, the client secret and the refresh token are masked by the session's redactor.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import requests

from crm_assets.destinations.machinery import (
    Accepted,
    BatchAnswer,
    PushFailure,
    RowResult,
    SyncConfigurationError,
    operation_of,
    send_each,
)
from crm_assets.destinations.specs import SyncSpec
from crm_assets.destinations.values import encode_records
from crm_assets.destinations.zoho.layout import ModuleLayout, PreflightError
from crm_assets.sources.errors import SourceError
from crm_assets.sources.http import retry_after
from crm_assets.sources.zoho.client import ZohoClient, ZohoSession

API_PREFIX = "/crm/v8"
WORKFLOW_TRIGGERS = ["workflow", "approval", "blueprint"]
# Calls in flight together for a parallel sync: below Zoho's sub-concurrency of 10 for bulk writes (§4.2).
PARALLEL_CALLS = 4
MAX_RETRY_AFTER_SECONDS = 60.0
EXPIRED_TOKEN_CODES = {"INVALID_TOKEN", "AUTHENTICATION_FAILURE"}


class ZohoWriteRefused(PushFailure, SyncConfigurationError):
    """Zoho refused a whole call for a reason no retry can clear (scope, permission, request)."""


class ZohoDestination:
    """One run's writer for one sync's module, over the Zoho source's OAuth session."""

    def __init__(self, session: ZohoSession):
        self.session = session
        self.layout: ModuleLayout | None = None
        self.batches = 0
        self.writes = 0
        self._counting = threading.Lock()

    @property
    def api_calls(self) -> int:
        """Every request of the run: token, field metadata and record writes."""
        return self.session.requests + self.writes

    def redact(self, text: object) -> str:
        return self.session.redact(text)

    def preflight(self, spec: SyncSpec, columns: list[str], types: list[str]) -> dict[str, str]:
        try:
            body = self.session.get(f"{API_PREFIX}/settings/fields", {"module": spec.object})
        except SourceError as exc:
            if "INVALID_MODULE" in str(exc):
                raise PreflightError(
                    f"sync {spec.name}: Zoho has no module {spec.object!r}; nothing was sent"
                ) from None
            raise
        fields = body.get("fields")
        if not isinstance(fields, list):
            raise PreflightError(f"sync {spec.name}: Zoho listed no fields for module {spec.object!r}")
        self.layout, mapping = ModuleLayout.check(spec, operation_of(spec), fields, columns, types)
        return mapping

    def existing_ids(self, spec: SyncSpec) -> Iterator[str]:
        raise PushFailure(f"sync {spec.name}: Zoho syncs do not truncate a module")

    def send(
        self, spec: SyncSpec, operation: str, batches: list[list[dict]], accepted: Accepted | None = None
    ) -> list[BatchAnswer]:
        """One call per batch (several in flight for a parallel sync): a result per row, in
        order, or the call's :class:`ZohoWriteRefused`. A call is done when it answers, so no
        batch is ever only accepted (`accepted` is not called)."""
        workers = 1 if spec.concurrency == "serial" else PARALLEL_CALLS
        return send_each(
            lambda batch: self._send_batch(spec, operation, batch), batches, workers, f"zoho-{spec.name}"
        )

    # ---- one call ------------------------------------------------------------------------------

    def _body(self, spec: SyncSpec, operation: str, batch: list[dict]) -> bytes:
        assert self.layout is not None, "preflight runs before send"
        keep = spec.match_key
        records = [self.layout.shape(record, spec.include_nulls, keep) for record in batch]
        parts = [b'{"data":', encode_records(records)]
        parts += [b',"trigger":', orjson.dumps(WORKFLOW_TRIGGERS if spec.trigger_workflow else [])]
        if operation == "upsert":
            parts += [b',"duplicate_check_fields":', orjson.dumps([self._upsert_key(spec)])]
        return b"".join(parts) + b"}"

    def _upsert_key(self, spec: SyncSpec) -> str:
        """The upsert key as the module spells it."""
        assert self.layout is not None and spec.key is not None
        return next((n for n in self.layout.kinds if n.lower() == spec.key.lower()), spec.key)

    def _send_batch(self, spec: SyncSpec, operation: str, batch: list[dict]) -> list[RowResult]:
        method = "PUT" if operation == "update" else "POST"
        path = f"{API_PREFIX}/{spec.object}" + ("/upsert" if operation == "upsert" else "")
        where = f"sync {spec.name}: {method} {path}"
        body = self._body(spec, operation, batch)
        with self._counting:
            self.batches += 1
        renewed = False
        while True:
            headers = {"Content-Type": "application/json", **self.session.oauth.headers()}
            try:
                resp = self.session.http.request(
                    method, self.session.base + path, data=body, headers=headers,
                    timeout=self.session.config.timeout_seconds,
                )  # fmt: skip
            except requests.RequestException as exc:
                return _transient(batch, type(exc).__name__, self.redact(exc))
            finally:
                with self._counting:
                    self.writes += 1
            answer = _json(resp)
            if resp.status_code == 401 and not renewed and answer.get("code") in EXPIRED_TOKEN_CODES:
                renewed = self.session.oauth.renew(headers)
                continue
            break
        status = resp.status_code
        if status == 429 or status >= 500:
            time.sleep(retry_after(resp.headers.get("Retry-After"), 0.0, MAX_RETRY_AFTER_SECONDS))
            code = str(answer.get("code") or f"HTTP_{status}")
            message = f"{where}: HTTP {status} {answer.get('message') or ''}"
            return _transient(batch, code, self.redact(message.strip()))
        rows = answer.get("data")
        if status in (200, 201, 207, 400) and isinstance(rows, list) and len(rows) == len(batch):
            return [_row_result(item, operation) for item in rows]
        gist = resp.text[:200]
        if answer:
            gist = f"{answer.get('code')}: {answer.get('message')} {answer.get('details') or ''}".strip()
        if answer.get("code") == "OAUTH_SCOPE_MISMATCH":
            gist += " (the token needs ZohoCRM.modules.ALL)"
        refusal = f"{where}: HTTP {status}: {gist}; nothing of this batch was written"
        raise ZohoWriteRefused(self.redact(refusal))


def _json(resp: requests.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _row_result(item: Any, operation: str) -> RowResult:
    if not isinstance(item, dict):
        return RowResult(False, error_code="UNKNOWN", message=f"unreadable result {item!r}")
    details = item.get("details") if isinstance(item.get("details"), dict) else {}
    if item.get("status") == "success":
        created = item.get("action") == "insert" if "action" in item else operation == "insert"
        return RowResult(True, created=created, record_id=details.get("id"))
    field = details.get("api_name")
    extras = [f"{k} {details[k]}" for k in ("expected_data_type", "maximum_length") if details.get(k)]
    duplicate = details.get("duplicate_record")
    if isinstance(duplicate, dict) and duplicate.get("id"):
        extras.append(f"held by record {duplicate['id']}")
    message = f"{field + ': ' if field else ''}{item.get('message') or 'rejected'}"
    message += f" ({', '.join(extras)})" if extras else ""
    return RowResult(False, error_code=str(item.get("code") or "UNKNOWN"), message=message)


def _transient(batch: list[dict], code: str, message: str) -> list[RowResult]:
    return [RowResult(False, error_code=code, message=message, transient=True) for _ in batch]



@contextlib.contextmanager
def open_zoho(resource: ZohoClient, spec: SyncSpec) -> Iterator[ZohoDestination]:
    """A writer over a fresh session of the `zoho` resource (the source's OAuth credentials)."""
    with resource.open() as session:
        yield ZohoDestination(session)
