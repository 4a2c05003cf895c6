"""The Salesforce writer: pre-flight against the object's description, Bulk 1.0 batches.

simple-salesforce's ``sf.bulk.<Object>.insert(...)`` is not used as a whole because of how it
fails: with ``batch_size='auto'`` it drops rows, and one Failed batch makes it raise and lose
the results of every other batch. The writer drives the same Bulk 1.0 job through the
library's job, batch and result calls instead, one batch at a time: every batch's results are
read as soon as it is done, a Failed batch only marks its own rows for another attempt, a
batch the job refuses stops the adding but not the reading of the batches already added (the
machinery records their results, then raises the refusal), and the batch body is encoded here
so that decimals keep their digits.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import requests
from simple_salesforce.bulk import SFBulkType
from simple_salesforce.exceptions import SalesforceError, SalesforceResourceNotFound
from simple_salesforce.util import call_salesforce

from crm_assets.destinations.machinery import (
    Accepted,
    BatchAnswer,
    RowResult,
    SyncConfigurationError,
    operation_of,
)
from crm_assets.destinations.salesforce.api import TRANSIENT_CODES, SalesforceApi, is_transient
from crm_assets.destinations.salesforce.resource import SalesforceResource
from crm_assets.destinations.specs import SyncSpec
from crm_assets.destinations.values import encode_records

TERMINAL_BATCH_STATES = {"Completed", "Failed", "NotProcessed"}


class PreflightError(ValueError, SyncConfigurationError):
    """The query's columns do not fit the object; raised before any record is sent."""


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, SalesforceError):
        content = exc.content
        if isinstance(content, dict) and content.get("exceptionCode"):
            return str(content["exceptionCode"])
        if isinstance(content, list) and content and isinstance(content[0], dict):
            return str(content[0].get("errorCode") or f"HTTP_{exc.status}")
        return f"HTTP_{exc.status}"
    return type(exc).__name__


class SalesforceDestination:
    """One run's writer for one sync's object."""

    def __init__(self, api: SalesforceApi, resource: SalesforceResource):
        self.api = api
        self.poll_interval = resource.poll_interval_seconds
        self.poll_timeout = resource.poll_timeout_seconds
        self.batches = 0
        self.lookup_fields: dict[str, str] = {}  # relationship name -> its reference field
        self.external_id_field: str | None = None  # the upsert key as the object spells it

    @property
    def api_calls(self) -> int:
        return self.api.api_calls

    def redact(self, text: object) -> str:
        return self.api.redact(text)

    # ---- pre-flight ----------------------------------------------------------------------

    def preflight(self, spec: SyncSpec, columns: list[str], types: list[str] | None = None) -> dict[str, str]:
        """Each result column mapped to the object's field name; every misfit listed at once.

        A column ``Rel.Ext__c`` sets a lookup through the related record's external id (Bulk
        sends it as ``{"Rel": {"Ext__c": value}}``; a null clears the lookup field itself).
        """
        described = self._describe(spec, spec.object)
        fields = {f["name"].lower(): f for f in described["fields"]}
        relationships = {
            f["relationshipName"].lower(): f for f in described["fields"] if f.get("relationshipName")
        }
        need = {"insert": ("createable",), "update": ("updateable",), "upsert": ("createable", "updateable")}[
            operation_of(spec)
        ]
        key = (spec.match_key or "").lower()
        problems: list[str] = []
        mapping: dict[str, str] = {}
        for column in columns:
            relation, _, target_name = column.partition(".")
            field = relationships.get(relation.lower()) if target_name else fields.get(column.lower())
            if field is None:
                what = "relationship" if target_name else "field"
                problems.append(f"{column}: no such {what} on {spec.object}")
                continue
            if target_name:
                target = self._lookup_field(spec, field, target_name)
                if target is None:
                    problems.append(
                        f"{column}: {target_name} is not an external id of {'/'.join(field['referenceTo'])}"
                    )
                    continue
                mapping[column] = f"{field['relationshipName']}.{target}"
                self.lookup_fields[field["relationshipName"]] = field["name"]
            else:
                mapping[column] = field["name"]
            if column.lower() == key:
                self.external_id_field = field["name"]
                if spec.upsert and not field.get("externalId"):
                    problems.append(f"{column}: not an external id field, so it cannot be the upsert key")
                continue
            lacking = [flag for flag in need if not field.get(flag)]
            if lacking:
                problems.append(f"{column}: not {' or '.join(lacking)} on {spec.object}")
        if operation_of(spec) == "insert":
            given = {mapping.get(c, c).split(".")[0].lower() for c in columns}
            given |= {self.lookup_fields[r].lower() for r in self.lookup_fields}
            for f in described["fields"]:
                required = f.get("createable") and not f.get("nillable") and not f.get("defaultedOnCreate")
                if required and f.get("type") != "boolean" and f["name"].lower() not in given:
                    problems.append(f"{f['name']}: required on {spec.object} but not in the query")
        if problems:
            listing = "\n".join(f"  - {p}" for p in problems)
            raise PreflightError(
                f"sync {spec.name}: the query's columns do not fit {spec.object} ({spec.mode} mode); "
                f"nothing was sent:\n{listing}"
            )
        return mapping

    def _describe(self, spec: SyncSpec, object_name: str) -> dict[str, Any]:
        try:
            return self.api.describe(object_name)
        except SalesforceResourceNotFound:
            raise PreflightError(
                f"sync {spec.name}: Salesforce has no object {object_name!r}; nothing was sent"
            ) from None

    def _lookup_field(self, spec: SyncSpec, reference: dict[str, Any], name: str) -> str | None:
        """The canonical name of `name` on the referenced object, if it can find a record."""
        for target in reference.get("referenceTo") or []:
            for f in self._describe(spec, target)["fields"]:
                if f["name"].lower() == name.lower() and (f.get("externalId") or f.get("idLookup")):
                    return f["name"]
        return None

    def _shape(self, record: dict[str, Any]) -> dict[str, Any]:
        """Lookup columns nested the way Bulk reads them."""
        if not self.lookup_fields:
            return record
        shaped: dict[str, Any] = {}
        for name, value in record.items():
            relation, _, target = name.partition(".")
            if not target:
                shaped[name] = value
            elif value is None:
                shaped[self.lookup_fields[relation]] = None
            else:
                shaped[relation] = {target: value}
        return shaped

    # ---- reading ---------------------------------------------------------------------------

    def existing_ids(self, spec: SyncSpec) -> Iterator[str]:
        records = self.api.read(lambda sf: list(sf.query_all_iter(f"SELECT Id FROM {spec.object}")))
        return (r["Id"] for r in records)

    # ---- Bulk 1.0 ----------------------------------------------------------------------------

    def _bulk(self, spec: SyncSpec) -> SFBulkType:
        return getattr(self.api.client.bulk, spec.object)

    def send(
        self, spec: SyncSpec, operation: str, batches: list[list[dict]], accepted: Accepted | None = None
    ) -> list[BatchAnswer]:
        """One Bulk 1.0 job holding `batches`: for each batch a result per row, in order, or the
        exception that refused it (a batch not added, and those after it, which are not sent; a
        batch whose results cannot be read). A job refused outright raises: nothing was sent.
        Each batch added is reported to `accepted` with its job and batch ids."""
        answers: list[BatchAnswer | None] = [None] * len(batches)
        try:
            job = self.api.call(
                lambda sf: self._bulk(spec)._create_job(
                    operation,
                    spec.concurrency == "serial",
                    self.external_id_field if operation == "upsert" else None,
                )
            )
        except (SalesforceError, requests.RequestException) as exc:
            if not is_transient(exc):
                raise
            return [self._failed(batch, exc) for batch in batches]
        job_id = job["id"]
        in_flight: dict[int, str] = {}
        for index, batch in enumerate(batches):
            try:
                info = self.api.call(lambda sf, b=batch: self._add_batch(spec, job_id, b))
            except (SalesforceError, requests.RequestException) as exc:
                if not is_transient(exc):
                    answers[index:] = [exc] * (len(batches) - index)  # the batches added are still read
                    break
                answers[index] = self._failed(batch, exc)
                continue
            self.batches += 1
            in_flight[index] = info["id"]
            if accepted is not None:
                accepted(index, {"job": job_id, "batch": info["id"]})
        try:
            self._await(spec, job_id, batches, in_flight, answers, operation)
        finally:
            with contextlib.suppress(SalesforceError, requests.RequestException):
                self.api.call(lambda sf: self._bulk(spec)._close_job(job_id))
        return [answer if answer is not None else [] for answer in answers]

    def recover(self, spec: SyncSpec, handle: dict, rows: int) -> BatchAnswer:
        """The results of a batch an earlier run added (its job is closed, so that it ends)."""
        job_id, answers = handle["job"], [None]
        try:
            self._await(spec, job_id, [[{}] * rows], {0: handle["batch"]}, answers, "insert")
        finally:
            with contextlib.suppress(SalesforceError, requests.RequestException):
                self.api.call(lambda sf: self._bulk(spec)._close_job(job_id))
        return answers[0]  # _await answers every batch it is given (at the latest: its deadline)

    def _add_batch(self, spec: SyncSpec, job_id: str, records: list[dict]) -> dict[str, Any]:
        bulk = self._bulk(spec)
        response = call_salesforce(
            url=f"{bulk.bulk_url}job/{job_id}/batch",
            method="POST",
            session=bulk.session,
            headers=bulk.headers,
            data=encode_records(self._shape(r) for r in records),
        )
        return response.json()

    def _await(self, spec, job_id, batches, in_flight, answers, operation: str) -> None:
        """Poll each batch until it is done and read its results at once. A batch whose state or
        results are refused, or still running at the deadline, gets the exception as its answer,
        so that the other batches' results are kept. One whose state or results stay unreadable
        is sent again, except for an insert: it may be done, so its answer is the exception (the
        journal keeps it, and the next run reads its results before sending anything)."""
        deadline = time.monotonic() + self.poll_timeout
        errors: dict[int, int] = {}
        while in_flight:
            for index, batch_id in list(in_flight.items()):
                batch = batches[index]
                try:
                    info = self.api.call(lambda sf, b=batch_id: self._bulk(spec)._get_batch(job_id, b))
                    if info["state"] not in TERMINAL_BATCH_STATES:
                        continue
                    if info["state"] == "Completed":
                        rows = self.api.call(
                            lambda sf, b=batch_id: next(
                                iter(self._bulk(spec)._get_batch_results(job_id, b, "dml"))
                            )
                        )
                        answers[index] = self._row_results(batch, rows)
                    else:
                        message = info.get("stateMessage") or f"batch {info['state']}"
                        answers[index] = [
                            RowResult(False, error_code="BATCH_FAILED", message=message, transient=True)
                            for _ in batch
                        ]
                except (SalesforceError, requests.RequestException) as exc:
                    if not is_transient(exc):
                        answers[index] = exc
                    else:
                        errors[index] = errors.get(index, 0) + 1
                        if errors[index] < 3:
                            continue
                        answers[index] = exc if operation == "insert" else self._failed(batch, exc)
                except RuntimeError as exc:  # results that do not match the batch
                    answers[index] = exc
                del in_flight[index]
            if in_flight and time.monotonic() > deadline:
                late = TimeoutError(
                    f"Bulk job {job_id}: batches still running after {self.poll_timeout:.0f}s"
                )
                for index in in_flight:
                    answers[index] = late
                return
            if in_flight:
                time.sleep(self.poll_interval)

    def _row_results(self, batch: list[dict], rows: list[dict]) -> list[RowResult]:
        if len(rows) != len(batch):
            raise RuntimeError(f"Salesforce returned {len(rows)} results for a batch of {len(batch)} records")
        out = []
        for row in rows:
            errors = row.get("errors") or []
            code = errors[0].get("statusCode") if errors else None
            message = "; ".join(
                e.get("message", "") + (f" ({', '.join(e['fields'])})" if e.get("fields") else "")
                for e in errors
            )
            out.append(
                RowResult(
                    bool(row.get("success")),
                    bool(row.get("created")),
                    row.get("id"),
                    code,
                    message or None,
                    transient=code in TRANSIENT_CODES,
                )
            )
        return out

    def _failed(self, batch: list[dict], exc: BaseException) -> list[RowResult]:
        message = self.redact(exc)
        code = _error_code(exc)
        return [RowResult(False, error_code=code, message=message, transient=True) for _ in batch]


@contextlib.contextmanager
def open_salesforce(resource: SalesforceResource, spec: SyncSpec) -> Iterator[SalesforceDestination]:
    """A logged-in writer for one sync's run (its API version, else the resource's)."""
    api = resource.connect(spec.api_version, spec.retry_initial_delay, spec.retry_limit)
    yield SalesforceDestination(api, resource)
