"""Cheap "did this table change?" questions to the source APIs, one table at a time.

Each probe asks the least the API allows and answers with a :class:`Probe`: whether records
changed after the table's cursor (the newest replication key in the warehouse), and a
signature of the answer, so the change sensor can tell a change it already asked a run for
from a new one.

- Harvest, a table with ``updated_since``: one ``per_page=1`` request with ``updated_since`` at
  the cursor (Harvest's filter is strict at one-second precision, so the cursor's own record is
  not counted); the answer's ``total_entries`` is the number of changed records.
- Zoho, the table's catalog ``change_filter``: ``If-Modified-Since`` (inclusive, so one second
  after the cursor) or a ``filters`` criterion ``modified_time greater_than`` the cursor, with one
  record per page; no filter (currencies): the list in one request, compared client-side.
- Full-table streams (Harvest roles; Zoho organization, profiles, roles) have no change filter
  and no cursor: their lists are short and come in one request, so the probe reads them and
  compares a fingerprint of the records with the previous one. The first fingerprint is a
  baseline, not a change: those tables are read whole by every scheduled run anyway.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from crm_assets.catalog import Stream

HARVEST_TIME = "%Y-%m-%dT%H:%M:%SZ"
ZOHO_TIME = "%Y-%m-%dT%H:%M:%S+00:00"
# Zoho's If-Modified-Since includes the instant it names.
INCLUSIVE_FILTER_STEP = timedelta(seconds=1)


@dataclass(frozen=True)
class Probe:
    """One table's answer: `changed` records after the cursor, or a fingerprint to compare."""

    stream: Stream
    signature: str
    changed: bool = False
    # A fingerprint (full-table stream): a change is a signature that differs from the last one.
    fingerprint: bool = False


def _fingerprint(stream: Stream, pages: Iterable[list[Any]]) -> Probe:
    digest = hashlib.sha256()
    for page in pages:
        digest.update(orjson.dumps(page, option=orjson.OPT_SORT_KEYS))
    return Probe(stream, f"sha256:{digest.hexdigest()}", fingerprint=True)


def _signature(since: datetime | None, *parts: object) -> str:
    return json.dumps([since.isoformat() if since else None, *parts])


def probe_harvest(session: Any, stream: Stream, since: datetime | None) -> Probe:
    """Ask Harvest whether `stream` has records updated after `since` (a HarvestSession)."""
    if not stream.updated_since:
        pages = session.pages(str(stream.endpoint), str(stream.envelope), pagination=stream.pagination)
        return _fingerprint(stream, (page.records for page in pages))
    params: dict[str, Any] = {"per_page": 1}
    if since is not None:
        params["updated_since"] = since.astimezone(UTC).strftime(HARVEST_TIME)
    body = session.get(session.base + str(stream.endpoint), params)
    total = body.get("total_entries")
    if not isinstance(total, int) or isinstance(total, bool):
        total = len(body.get(str(stream.envelope)) or [])
    return Probe(stream, _signature(since, total), changed=total > 0)


def probe_zoho(session: Any, stream: Stream, since: datetime | None) -> Probe:
    """Ask Zoho CRM whether `stream` has records modified after `since` (a ZohoSession)."""
    if stream.replication == "full_table":
        return _fingerprint(stream, session.pages(stream))
    key = str(stream.replication_key)
    if stream.change_filter is None or since is None:
        newer = [r for page in session.pages(stream) for r in page if _after(r.get(key), since)]
        newest = max((str(r.get(key)) for r in newer), default=None)
        return Probe(stream, _signature(since, len(newer), newest), changed=bool(newer))
    params: dict[str, Any] = dict(stream.params)
    headers: dict[str, str] = dict(stream.headers)
    if stream.pagination == "page":
        params.update(page=1, per_page=1)
    if stream.change_filter == "if_modified_since":
        headers["If-Modified-Since"] = (since + INCLUSIVE_FILTER_STEP).astimezone(UTC).strftime(ZOHO_TIME)
    elif stream.change_filter == "filters":
        criterion = {"field": {"api_name": key}, "comparator": "greater_than",
                     "value": since.astimezone(UTC).strftime(ZOHO_TIME)}
        params["filters"] = json.dumps(criterion, separators=(",", ":"))
    else:
        raise ValueError(f"{stream.table}: unknown change_filter {stream.change_filter!r}")
    body = session.get(str(stream.endpoint), params, headers, stream.no_data_errors)
    records = (body or {}).get(str(stream.envelope)) or []
    first = records[0] if records and isinstance(records[0], dict) else {}
    return Probe(stream, _signature(since, first.get("id"), first.get(key)), changed=bool(records))


def _after(value: Any, since: datetime | None) -> bool:
    """Whether a record's replication key (RFC 3339 text, or null) is after `since`."""
    if since is None:
        return True
    if not isinstance(value, str):
        return False
    return datetime.fromisoformat(value.replace("Z", "+00:00")) > since


PROBES: dict[str, Callable[[Any, Stream, datetime | None], Probe]] = {
    "harvest": probe_harvest,
    "zoho": probe_zoho,
}
