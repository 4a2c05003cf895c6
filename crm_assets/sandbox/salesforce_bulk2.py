"""Bulk API 2.0 ingest under ``/services/data/vXX.X/jobs/ingest`` (API 41.0 and later; spec §1.7, §2.9).

- ``POST jobs/ingest`` ``{"object", "operation", "contentType": "CSV", "columnDelimiter",
  "lineEnding"[, "externalIdFieldName"]}`` → 200 JobInfo, ``state: "Open"``;
- ``PUT jobs/ingest/{id}/batches`` (``text/csv``) → 201, one upload per job;
- ``PATCH jobs/ingest/{id}`` ``{"state": "UploadComplete"}`` processes the CSV (``JobComplete``,
  or ``Failed`` with ``errorMessage`` for an unknown column, a line ending other than the job's,
  or a delete whose only column is not ``Id``); ``{"state": "Aborted"}`` aborts;
- ``GET jobs/ingest/{id}`` (with ``numberRecordsProcessed``/``numberRecordsFailed``),
  ``GET jobs/ingest`` (``{"done", "records"}``), ``DELETE jobs/ingest/{id}`` → 204;
- ``GET .../successfulResults`` (CSV ``sf__Id,sf__Created,<columns>``), ``.../failedResults``
  (``sf__Id,sf__Error,<columns>``, the error as ``CODE:message:fields --``) and
  ``.../unprocessedrecords`` (any case).

Cells: empty means "leave unchanged" (the field is not sent), ``#N/A`` sets null; a column
``Account__r.Harvest_Client_Id__c`` sets a lookup through the parent's external id.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import threading
from typing import Any

from crm_assets.sandbox.salesforce_objects import find_object
from crm_assets.sandbox.salesforce_org import OPERATIONS, Org
from crm_assets.sandbox.salesforce_rest import rest_error
from crm_assets.sandbox.salesforce_values import make_id, sf_datetime
from crm_assets.sandbox.server import Request, Response, json_response

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}


class BulkV2:
    def __init__(self, org: Org):
        self.org = org
        self.lock = threading.Lock()
        self.jobs: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def reset(self) -> None:
        with self.lock:
            self.jobs.clear()

    def handle(self, request: Request, version: str, parts: list[str], entry: dict[str, Any]) -> Response:
        if float(version) < 41:
            return rest_error(404, "NOT_FOUND", "The requested resource does not exist")
        method = request.method
        if not parts:
            if method == "POST":
                return self._create(request.json(), version)
            if method == "GET":
                return json_response(
                    200,
                    {"done": True, "records": [_info(j) for j in self.jobs.values()], "nextRecordsUrl": None},
                )
        job = self.jobs.get(parts[0]) if parts else None
        if job is None:
            return rest_error(404, "NOT_FOUND", "The requested resource does not exist")
        entry["object"] = job["object"]
        if len(parts) == 1:
            if method == "GET":
                return json_response(200, _info(job))
            if method == "PATCH":
                return self._set_state(job, request.json())
            if method == "DELETE":
                with self.lock:
                    self.jobs.pop(job["id"], None)
                return Response(204)
        elif len(parts) == 2 and method == "PUT" and parts[1] == "batches":
            return self._upload(job, request.body)
        elif len(parts) == 2 and method == "GET":
            return self._results(job, parts[1].lower())
        return rest_error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.")

    def _create(self, spec: Any, version: str) -> Response:
        if not isinstance(spec, dict):
            return rest_error(400, "JSON_PARSER_ERROR", "the job must be a JSON object")
        obj, operation = find_object(str(spec.get("object") or "")), spec.get("operation")
        if obj is None or not obj.writable:
            return rest_error(
                400, "INVALIDENTITY", f"Entity '{spec.get('object')}' is not supported by the Bulk API."
            )
        if operation not in OPERATIONS:
            return rest_error(400, "INVALIDJOB", f"Invalid operation: {operation}")
        delimiter, line_ending = spec.get("columnDelimiter", "COMMA"), spec.get("lineEnding", "LF")
        if (
            delimiter not in DELIMITERS
            or line_ending not in LINE_ENDINGS
            or spec.get("contentType", "CSV") != "CSV"
        ):
            return rest_error(
                400,
                "INVALIDJOB",
                "contentType must be CSV, columnDelimiter one of "
                f"{', '.join(DELIMITERS)} and lineEnding LF or CRLF",
            )
        key = spec.get("externalIdFieldName")
        if operation == "upsert":
            key_field = obj.field(str(key or ""))
            if key_field is None or not (key_field.external_id or key_field.name == "Id"):
                return rest_error(
                    400,
                    "INVALIDJOB",
                    f"InvalidJob : Field name provided, {key} does not match an "
                    f"External ID, Salesforce Id, or indexed field for {obj.name}",
                )
            key = key_field.name
        now = sf_datetime(dt.datetime.now(dt.UTC))
        with self.lock:
            job_id = make_id("750", 10_000 + next(self._ids))
            job = {
                "id": job_id,
                "operation": operation,
                "object": obj.name,
                "createdById": "00580000000001AAA",
                "createdDate": now,
                "systemModstamp": now,
                "state": "Open",
                "concurrencyMode": "Parallel",
                "contentType": "CSV",
                "apiVersion": float(version),
                "jobType": "V2Ingest",
                "lineEnding": line_ending,
                "columnDelimiter": delimiter,
                "externalIdFieldName": key,
                "contentUrl": f"services/data/v{version}/jobs/ingest/{job_id}/batches",
                "upload": None,
                "header": [],
                "rows": [],
                "results": [],
                "errorMessage": None,
            }
            self.jobs[job_id] = job
        return json_response(200, _info(job))

    def _upload(self, job: dict[str, Any], body: bytes) -> Response:
        if job["state"] != "Open" or job["upload"] is not None:
            return rest_error(
                409, "INVALIDJOBSTATE", "Found multiple uploads for the job, or the job is not Open"
            )
        job["upload"] = body.decode("utf-8-sig", "replace")
        return Response(201)

    def _set_state(self, job: dict[str, Any], body: Any) -> Response:
        state = body.get("state") if isinstance(body, dict) else None
        if state == "Aborted" and job["state"] in ("Open", "UploadComplete", "InProgress"):
            job["state"] = "Aborted"
        elif state == "UploadComplete" and job["state"] == "Open":
            self._process(job)
        else:
            return rest_error(400, "INVALIDJOBSTATE", f"Cannot move a {job['state']} job to {state}")
        job["systemModstamp"] = sf_datetime(dt.datetime.now(dt.UTC))
        return json_response(200, _info(job))

    def _process(self, job: dict[str, Any]) -> None:
        text = job["upload"] or ""
        other = "\n" if job["lineEnding"] == "CRLF" else "\r\n"
        bare_lf = job["lineEnding"] == "CRLF" and text.replace("\r\n", "").count("\n")
        if (other == "\r\n" and "\r\n" in text) or bare_lf or not text.strip():
            job["state"] = "Failed"
            job["errorMessage"] = (
                (
                    "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting "
                    f"is {job['lineEnding']}"
                )
                if text.strip()
                else "InvalidBatch : no data uploaded"
            )
            return
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[job["columnDelimiter"]])
        header, *rows = [row for row in reader if row]
        obj = find_object(job["object"])
        unknown = [c for c in header if obj.field(c) is None and not _relationship(obj, c)]
        if job["operation"] in ("delete", "hardDelete") and [c.lower() for c in header] != ["id"]:
            unknown = unknown or ["(a delete takes only the Id column)"]
        if unknown:
            job["state"], job["errorMessage"] = (
                "Failed",
                f"InvalidBatch : Field name not found : {unknown[0]}",
            )
            job["header"], job["rows"] = header, rows
            return
        records = [_record(header, row) for row in rows]
        job["header"], job["rows"] = header, rows
        job["results"] = self.org.apply(
            obj, job["operation"], records, job["externalIdFieldName"], api="bulk"
        )
        job["state"] = "JobComplete"

    def _results(self, job: dict[str, Any], kind: str) -> Response:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if kind == "successfulresults":
            writer.writerow(["sf__Id", "sf__Created", *job["header"]])
            for row, result in zip(job["rows"], job["results"]):
                if result["success"]:
                    writer.writerow([result["id"], str(result["created"]).lower(), *row])
        elif kind == "failedresults":
            writer.writerow(["sf__Id", "sf__Error", *job["header"]])
            for row, result in zip(job["rows"], job["results"]):
                if not result["success"]:
                    error = result["errors"][0]
                    message = f"{error['statusCode']}:{error['message']}:{','.join(error['fields'])} --"
                    writer.writerow([result["id"] or "", message, *row])
        elif kind == "unprocessedrecords":
            writer.writerow(job["header"])
            if job["state"] in ("Failed", "Aborted"):
                writer.writerows(job["rows"])
        else:
            return rest_error(404, "NOT_FOUND", "The requested resource does not exist")
        return Response(200, out.getvalue().encode(), content_type="text/csv; charset=utf-8")


def _relationship(obj: Any, column: str) -> bool:
    head, _, tail = column.partition(".")
    return bool(tail) and head.lower() in obj.by_relationship


def _record(header: list[str], row: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for column, cell in zip(header, row):
        if cell == "":
            continue
        value = None if cell == "#N/A" else cell
        head, _, tail = column.partition(".")
        if tail:
            record[head] = None if value is None else {tail: value}
        else:
            record[column] = value
    return record


def _info(job: dict[str, Any]) -> dict[str, Any]:
    results = job["results"]
    info = {k: v for k, v in job.items() if k not in ("upload", "header", "rows", "results")}
    if info["externalIdFieldName"] is None:
        del info["externalIdFieldName"]
    if not info["errorMessage"]:
        del info["errorMessage"]
    info.update(
        numberRecordsProcessed=len(results),
        numberRecordsFailed=sum(not r["success"] for r in results),
        retries=0,
        totalProcessingTime=0,
        apiActiveProcessingTime=0,
        apexProcessingTime=0,
    )
    return info
