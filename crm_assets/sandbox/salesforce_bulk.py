"""Bulk API 1.0 with JSON content, as ``sf.bulk.<Object>.insert/update/upsert/delete/hard_delete`` use it.

Routes under ``/services/async/{version}/`` (spec §1.6, §2.8), authenticated by ``X-SFDC-Session``:

- ``POST job`` ``{"operation", "object", "concurrencyMode", "contentType": "JSON"[, "externalIdFieldName"]}``
  → 201 JobInfo. ``concurrencyMode`` may be the integers simple-salesforce sends (1 serial,
  0 parallel) or the documented strings; the job answers ``"Serial"``/``"Parallel"``.
- ``GET job/{id}``; ``POST job/{id}`` ``{"state": "Closed"|"Aborted"}``.
- ``POST job/{id}/batch`` (a JSON array of records) → 201 BatchInfo ``state: "Queued"``. The
  batch is processed at once; ``GET job/{id}/batch/{bid}`` answers ``Completed`` (after
  ``polls_before_done`` ``InProgress`` answers, 0 unless set through the admin API) or ``Failed``
  with a ``stateMessage``: ``InvalidBatch : Field name not found : X`` for an unknown column (no
  record is processed), or an injected whole-batch failure.
- ``GET job/{id}/batch`` (``{"batchInfo": [...]}``), ``GET job/{id}/batch/{bid}/result`` (one
  ``{"success", "created", "id", "errors"}`` per record, in request order; 400 ``InvalidBatch``
  "Records not processed" for a Failed batch) and ``.../request`` (the records as sent).

Query jobs (``operation`` ``query``/``queryAll``, as ``sf.bulk.<Object>.query/query_all`` send them):
the batch body is the SOQL text; ``GET .../result`` lists one result id, ``GET .../result/{id}``
answers the records (with ``attributes``).

Errors are ``{"exceptionCode", "exceptionMessage"}`` with HTTP 400 (``InvalidJob``,
``InvalidJobState``, ``InvalidBatch``, ``InvalidSessionId`` ...).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
from typing import Any

from crm_assets.sandbox.salesforce_objects import find_object
from crm_assets.sandbox.salesforce_org import OPERATIONS, Org
from crm_assets.sandbox.salesforce_rest import run_query
from crm_assets.sandbox.salesforce_soql import SoqlError, parse
from crm_assets.sandbox.salesforce_values import make_id, sf_datetime
from crm_assets.sandbox.server import Response, json_response

MAX_BATCH_RECORDS = 10_000
QUERIES = ("query", "queryAll")
LOCK_BATCH_MESSAGE = "TooManyLockFailure : Too many lock failure 200 Trying again later."


def bulk_error(code: str, message: str, status: int = 400) -> Response:
    return json_response(status, {"exceptionCode": code, "exceptionMessage": message})


class BulkV1:
    """Jobs and batches of Bulk API 1.0, kept in memory (no purge: a sandbox lives for one run)."""

    def __init__(self, org: Org):
        self.org = org
        self.lock = threading.Lock()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.polls_before_done = 0
        self.fail_batch = lambda: False  # the emulator's whole-batch fault

    def reset(self) -> None:
        with self.lock:
            self.jobs.clear()
            self.batches.clear()

    def handle(self, method: str, parts: list[str], body: bytes, version: str) -> Response:
        """`parts` is the path below ``/services/async/{version}/``, split on ``/``."""
        if parts[:1] != ["job"]:
            return bulk_error("InvalidUrl", f"unknown Bulk API resource: {'/'.join(parts)}", 404)
        if len(parts) == 1 and method == "POST":
            return self._create_job(_json(body), version)
        job = self.jobs.get(parts[1]) if len(parts) > 1 else None
        if job is None:
            return bulk_error(
                "InvalidJob", f"Unable to find job with id: {parts[1] if len(parts) > 1 else ''}"
            )
        if len(parts) == 2:
            if method == "GET":
                return json_response(200, self._job_info(job))
            if method == "POST":
                return self._set_job_state(job, _json(body))
        elif parts[2] == "batch":
            if len(parts) == 3 and method == "POST":
                return self._add_batch(job, body)
            if len(parts) == 3 and method == "GET":
                return json_response(
                    200, {"batchInfo": [self._batch_info(self.batches[b], peek=True) for b in job["batches"]]}
                )
            batch = self.batches.get(parts[3]) if len(parts) > 3 else None
            if batch is None or batch["jobId"] != job["id"]:
                return bulk_error(
                    "InvalidBatch", f"Unable to find batch for id: {parts[3] if len(parts) > 3 else ''}"
                )
            if len(parts) == 4 and method == "GET":
                return json_response(200, self._batch_info(batch))
            if len(parts) == 5 and method == "GET" and parts[4] == "result":
                return self._results(batch)
            if (
                len(parts) == 6
                and method == "GET"
                and parts[4] == "result"
                and batch["query_result"] == parts[5]
            ):
                return json_response(200, batch["results"])
            if len(parts) == 5 and method == "GET" and parts[4] == "request":
                return json_response(200, batch["request"])
        return bulk_error("InvalidUrl", f"{method} is not supported on {'/'.join(parts)}", 405)

    def _create_job(self, spec: Any, version: str) -> Response:
        if not isinstance(spec, dict):
            return bulk_error("InvalidJob", "the job must be a JSON object")
        operation, obj = spec.get("operation"), find_object(str(spec.get("object") or ""))
        if operation not in (*OPERATIONS, *QUERIES):
            return bulk_error("InvalidJob", f"Invalid operation: {operation}")
        if obj is None or not obj.writable:
            return bulk_error("InvalidJob", f"Unable to find object: {spec.get('object')}")
        if spec.get("contentType", "JSON") != "JSON":
            return bulk_error(
                "InvalidJob", f"Unsupported content type: {spec.get('contentType')} (the sandbox takes JSON)"
            )
        mode = spec.get("concurrencyMode", "Parallel")
        concurrency = {0: "Parallel", 1: "Serial", "Parallel": "Parallel", "Serial": "Serial"}.get(mode)
        if concurrency is None or isinstance(mode, bool):
            return bulk_error("InvalidJob", f"Invalid concurrency mode: {mode}")
        key = spec.get("externalIdFieldName")
        if operation == "upsert":
            key_field = obj.field(str(key or ""))
            if not key:
                return bulk_error(
                    "InvalidJob",
                    f"External ID was blank for {obj.name}. An External ID must be specified for upsert.",
                )
            if key_field is None or not (key_field.external_id or key_field.name == "Id"):
                return bulk_error(
                    "InvalidJob",
                    f"Field name provided, {key} does not match an External ID, "
                    f"Salesforce Id, or indexed field for {obj.name}",
                )
            key = key_field.name
        now = sf_datetime(dt.datetime.now(dt.UTC))
        with self.lock:
            job_id = make_id("750", next(self._ids))
            job = {
                "id": job_id,
                "operation": operation,
                "object": obj.name,
                "createdById": "00580000000001AAA",
                "createdDate": now,
                "systemModstamp": now,
                "state": "Open",
                "concurrencyMode": concurrency,
                "contentType": "JSON",
                "apiVersion": float(version),
                "externalIdFieldName": key,
                "concurrencyModeSent": mode,
                "batches": [],
            }
            self.jobs[job_id] = job
        return json_response(201, self._job_info(job))

    def _set_job_state(self, job: dict[str, Any], body: Any) -> Response:
        state = body.get("state") if isinstance(body, dict) else None
        if state not in ("Closed", "Aborted"):
            return bulk_error("InvalidJobState", f"Invalid state: {state}")
        if job["state"] != "Open" and job["state"] != state:
            return bulk_error("InvalidJobState", f"Job {job['id']} is {job['state']}, not Open")
        job["state"] = state
        job["systemModstamp"] = sf_datetime(dt.datetime.now(dt.UTC))
        return json_response(200, self._job_info(job))

    def _add_batch(self, job: dict[str, Any], body: bytes) -> Response:
        if job["state"] != "Open":
            return bulk_error(
                "InvalidJobState",
                f"Job {job['id']} is {job['state']}: batches can be added to Open jobs only",
            )
        now = sf_datetime(dt.datetime.now(dt.UTC))
        with self.lock:
            batch_id = make_id("751", next(self._ids))
        batch: dict[str, Any] = {
            "id": batch_id,
            "jobId": job["id"],
            "state": "Queued",
            "createdDate": now,
            "systemModstamp": now,
            "numberRecordsProcessed": 0,
            "numberRecordsFailed": 0,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
            "request": [],
            "results": None,
            "polls": 0,
            "query_result": None,
        }
        if job["operation"] in QUERIES:
            return self._add_query_batch(job, batch, body.decode("utf-8", "replace"))
        try:
            records = json.loads(body) if body else None
        except ValueError as exc:
            records, batch["stateMessage"] = None, f"InvalidBatch : Failed to parse JSON: {exc}"
        if records is not None and not (
            isinstance(records, list) and all(isinstance(r, dict) for r in records)
        ):
            batch["stateMessage"], records = "InvalidBatch : The batch must be a JSON array of records", None
        elif isinstance(records, list):
            batch["request"] = records
            obj = find_object(job["object"])
            unknown = self.org.unknown_fields(obj, records)
            if not records:
                batch["stateMessage"] = "InvalidBatch : Records not found in the batch"
            elif len(records) > MAX_BATCH_RECORDS:
                batch["stateMessage"] = (
                    f"InvalidBatch : Exceeded max size limit of {MAX_BATCH_RECORDS} records"
                )
            elif unknown:
                batch["stateMessage"] = f"InvalidBatch : Field name not found : {unknown[0]}"
            elif self.fail_batch():
                batch["stateMessage"] = LOCK_BATCH_MESSAGE
            else:
                batch["results"] = self.org.apply(
                    obj, job["operation"], records, job["externalIdFieldName"], api="bulk"
                )
        batch["state"] = "Failed" if batch["results"] is None else "Completed"
        if batch["results"] is not None:
            batch["numberRecordsProcessed"] = len(batch["results"])
            batch["numberRecordsFailed"] = sum(not r["success"] for r in batch["results"])
        return self._store(job, batch)

    def _add_query_batch(self, job: dict[str, Any], batch: dict[str, Any], soql: str) -> Response:
        """A query batch's records become one result set, listed by ``result`` and read by ``result/{id}``."""
        batch["request"] = soql
        try:
            if parse(soql).obj.name != job["object"]:
                raise SoqlError(
                    "INVALID_TYPE", f"the query must select from the job's object {job['object']}"
                )
            records, _count = run_query(
                self.org, soql, job["operation"] == "queryAll", str(job["apiVersion"])
            )
            if records is None:
                raise SoqlError("MALFORMED_QUERY", "Aggregate Relationships not supported in Bulk Query")
        except SoqlError as exc:
            records, batch["stateMessage"] = None, f"InvalidBatch : {exc.code}: {exc.message}"
        if records is not None:
            with self.lock:
                batch["query_result"] = make_id("752", next(self._ids))
            batch["results"], batch["numberRecordsProcessed"] = records, len(records)
        batch["state"] = "Failed" if records is None else "Completed"
        return self._store(job, batch)

    def _store(self, job: dict[str, Any], batch: dict[str, Any]) -> Response:
        with self.lock:
            self.batches[batch["id"]] = batch
            job["batches"].append(batch["id"])
        return json_response(201, {**self._batch_info(batch, peek=True), "state": "Queued"})

    def _results(self, batch: dict[str, Any]) -> Response:
        if self._state(batch, count=False) != "Completed":
            if batch["state"] == "Failed":
                return bulk_error("InvalidBatch", "Records not processed")
            return bulk_error("InvalidBatch", "Batch not completed")
        if batch.get("query_result"):
            return json_response(200, [batch["query_result"]])
        return json_response(200, batch["results"])

    def _state(self, batch: dict[str, Any], count: bool) -> str:
        """The state a client sees: ``InProgress`` for the first ``polls_before_done`` polls."""
        if batch["polls"] < self.polls_before_done:
            if count:
                batch["polls"] += 1
            return "InProgress"
        return batch["state"]

    def _batch_info(self, batch: dict[str, Any], peek: bool = False) -> dict[str, Any]:
        state = self._state(batch, count=not peek)
        info = {
            k: v
            for k, v in batch.items()
            if k not in ("request", "results", "polls", "stateMessage", "query_result")
        }
        info["state"] = state
        if state == "Failed":
            info["stateMessage"] = batch.get("stateMessage")
        if state in ("Queued", "InProgress"):
            info.update(numberRecordsProcessed=0, numberRecordsFailed=0)
        return info

    def _job_info(self, job: dict[str, Any]) -> dict[str, Any]:
        batches = [self.batches[b] for b in job["batches"]]
        info = {k: v for k, v in job.items() if k not in ("batches", "concurrencyModeSent")}
        if info["externalIdFieldName"] is None:
            del info["externalIdFieldName"]
        states = [b["state"] for b in batches]
        info.update(
            numberBatchesQueued=0,
            numberBatchesInProgress=0,
            numberBatchesCompleted=states.count("Completed"),
            numberBatchesFailed=states.count("Failed"),
            numberBatchesTotal=len(batches),
            numberRecordsProcessed=sum(b["numberRecordsProcessed"] for b in batches),
            numberRecordsFailed=sum(b["numberRecordsFailed"] for b in batches),
            numberRetries=0,
            totalProcessingTime=0,
            apiActiveProcessingTime=0,
            apexProcessingTime=0,
        )
        return info

    def summary(self) -> list[dict[str, Any]]:
        """Every job with its sent concurrency mode and its batches' states (for the admin API)."""
        with self.lock:
            jobs = list(self.jobs.values())
        return [
            {
                **self._job_info(j),
                "concurrencyModeSent": j["concurrencyModeSent"],
                "batches": [
                    {
                        "id": b,
                        "state": self.batches[b]["state"],
                        "records": _count(self.batches[b]["request"]),
                        "stateMessage": self.batches[b].get("stateMessage"),
                    }
                    for b in j["batches"]
                ],
            }
            for j in jobs
        ]


def _count(request: Any) -> int | None:
    return len(request) if isinstance(request, list) else None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None
