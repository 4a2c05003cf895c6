"""Read one Zoho table for a time window, as page-sized batches.

The six tables are roots without children. A CDC table (currencies, territories, users) is read
with the cheapest change filter its endpoint has, one second early (the filters' ends are not
documented as inclusive), and only records whose replication key falls in the window are kept
(:func:`~crm_assets.sources.family.in_window`); a window without a start reads the list whole
and also keeps records whose key is null. Full-table ones (organization, profiles, roles) are
read whole and written as one snapshot, which the warehouse refuses when it shrinks too much.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_assets.catalog import Catalog, Stream
from crm_assets.sources.errors import SourceError
from crm_assets.sources.family import Batch, FamilyStats, in_window
from crm_assets.sources.zoho.client import ZohoSession
from crm_assets.warehouse.store import TableWrite

OVERLAP = timedelta(seconds=1)


def change_filter(stream: Stream, start: datetime | None) -> tuple[dict[str, str], dict[str, str]]:
    """(query parameters, headers) asking `stream`'s endpoint only for records changed since `start`."""
    if start is None or stream.change_filter is None:
        return {}, {}
    since = (start - OVERLAP).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    if stream.change_filter == "if_modified_since":
        return {}, {"If-Modified-Since": since}
    if stream.change_filter == "filters":
        criterion = {
            "field": {"api_name": stream.replication_key},
            "comparator": "greater_than",
            "value": since,
        }
        return {"filters": json.dumps(criterion, separators=(",", ":"))}, {}
    raise ValueError(f"{stream.table}: unknown change_filter {stream.change_filter!r}")


class ZohoReader:
    """The :class:`~crm_assets.sources.family.SourceReader` of the Zoho tables."""

    def __init__(self, api: ZohoSession, catalog: Catalog):
        self.api = api
        self.catalog = catalog

    @property
    def requests(self) -> int:
        return self.api.requests

    @property
    def retries(self) -> int:
        return self.api.retries

    def redact(self, text: str) -> str:
        return self.api.redact(text)

    def count(self, root: Stream) -> int | None:
        """The API's own count of `root`'s records, where it has an endpoint for one."""
        if not root.count_endpoint:
            return None
        body = self.api.get(root.count_endpoint, dict(root.params))
        try:
            return int(body.get("count"))  # Zoho sends it as a string
        except (TypeError, ValueError):
            return None

    def read(
        self, root: Stream, start: datetime | None, end: datetime, wanted: set[str], stats: FamilyStats
    ) -> Iterator[Batch]:
        """Batches of writes for `root` in [start, end); a None `start` means from the beginning.
        A Zoho error is re-raised naming the table."""
        try:
            yield from self._read(root, start, end, stats)
        except SourceError as exc:
            if str(exc).startswith(root.table):
                raise
            raise type(exc)(self.redact(f"{root.table}: {exc}")) from None

    def _read(
        self, root: Stream, start: datetime | None, end: datetime, stats: FamilyStats
    ) -> Iterator[Batch]:
        if root.replication == "full_table":
            records: list[Any] = []
            for page in self._pages(root, {}, {}, stats):
                records.extend(page)
            yield Batch([TableWrite(root, records, "snapshot")], fetched=len(records))
            return
        params, headers = change_filter(root, start)
        for page in self._pages(root, params, headers, stats):
            kept = in_window(root, page, start, end, stats)
            yield Batch([TableWrite(root, kept, "merge")], fetched=len(kept))

    def _pages(
        self, stream: Stream, params: dict[str, str], headers: dict[str, str], stats: FamilyStats
    ) -> Iterator[list[Any]]:
        for page in self.api.pages(stream, params, headers):
            stats.count(stream.name, pages=1, fetched=len(page))
            yield page
