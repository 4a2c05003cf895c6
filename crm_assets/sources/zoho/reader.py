"""Read one Zoho table for a time window, as page-sized batches.

The six tables are roots without children. A CDC table (currencies, territories, users) is read
with the cheapest change filter its endpoint has, one second early (the filters' ends are not
documented as inclusive), and only records whose replication key falls in the window are kept
(:func:`~crm_assets.sources.family.in_window`); a window without a start reads the list whole
and also keeps records whose key is null. Full-table ones (organization, profiles, roles) are
read whole and written as one snapshot, which the warehouse refuses when it shrinks too much.
The traversal is the shared :class:`~crm_assets.sources.family_reader.FamilyReader`'s; this
module adds only Zoho's listing and change filters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_assets.catalog import Catalog, Stream
from crm_assets.sources.errors import SourceError
from crm_assets.sources.family import Batch, FamilyStats
from crm_assets.sources.family_reader import FamilyReader
from crm_assets.sources.zoho.client import ZohoSession

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


class ZohoReader(FamilyReader):
    """The family reader configured with Zoho's listings and change filters."""

    api: ZohoSession

    def __init__(self, api: ZohoSession, catalog: Catalog):
        super().__init__(api, catalog)

    def count(self, root: Stream) -> int | None:
        """The API's own count of `root`'s records, where it has an endpoint for one."""
        if not root.count_endpoint:
            return None
        body = self.api.get(root.count_endpoint, dict(root.params))
        try:
            return int(body.get("count"))  # Zoho sends it as a string
        except (TypeError, ValueError):
            return None

    def list_window(self, stream: Stream, start: datetime | None, stats: FamilyStats) -> Iterator[list[Any]]:
        params, headers = change_filter(stream, start)
        for page in self.api.pages(stream, params, headers, read_ahead=True):
            stats.count(stream.name, pages=1, fetched=len(page))
            yield page

    def read(
        self, root: Stream, start: datetime | None, end: datetime, wanted: set[str], stats: FamilyStats
    ) -> Iterator[Batch]:
        """The shared family read, with a Zoho error re-raised naming the table."""
        try:
            yield from super().read(root, start, end, wanted, stats)
        except SourceError as exc:
            if str(exc).startswith(root.table):
                raise
            raise type(exc)(self.redact(f"{root.table}: {exc}")) from None
