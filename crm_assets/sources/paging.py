"""Paginators: how each next request of a listing follows from the last answer.

A source session builds only the first request of a listing; a paginator turns answers into
:class:`Page` objects and decides what to ask next, with guards so that an API that keeps
saying "more" cannot keep a run busy forever. Two strategies cover the sources so far:

- :class:`NextLink`: the records under an envelope key, then ``links.next`` (Harvest), read
  again from the first URL when a page-number listing returns fewer distinct records than its
  first page announced (a record deleted from an earlier page while the listing was read
  moves a later record up past the reader);
- :class:`MoreRecords`: ``info.more_records`` with a page number, or ``info.next_page_token``
  when the API hands one out (Zoho).

Paginators raise and warn through the session's :class:`Report` (redacted, of its error class).
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from crm_assets.sources.errors import SourceError
from crm_assets.warehouse.page_arrow import PageRecords, ids_of

log = logging.getLogger("crm_assets.sources.paging")

Fetch = Callable[[str, dict[str, Any] | None], dict[str, Any]]
"""GET a URL with query parameters (None: the URL is complete) and return the JSON object."""


class Report(Protocol):
    """The session's one redaction path, for a paginator's errors and warnings."""

    def failure(self, message: str) -> SourceError:
        """The error to raise for `message`, redacted, of the session's error class."""
        ...

    def redact(self, text: object) -> str: ...


@dataclass
class Page:
    records: list[Any]
    total_entries: int | None = None
    # 1 for the first read of a listing; 2 and up when a listing is read again.
    pass_number: int = 1


class Paginator(Protocol):
    def pages(self, fetch: Fetch, url: str, params: dict[str, Any], where: str, report: Report) -> Iterator[Page]:
        """Every page of the listing whose first request is `url` with `params`; `where` names
        it in messages."""
        ...


def envelope_records(body: dict[str, Any], envelope: str, where: str, report: Report) -> list[Any] | PageRecords:
    records = body.get(envelope)
    if not isinstance(records, list | PageRecords):
        raise report.failure(f"{where}: the response has no {envelope!r} list (keys: {sorted(body)[:10]})")
    return records


@dataclass(frozen=True)
class NextLink:
    """Records under `envelope`, then ``links.next`` until it is null."""

    envelope: str
    per_page: int
    # Page-number listings shift under deletions: count distinct records and read again.
    reread_on_shortfall: bool = False
    max_passes: int = 3
    # Pages tolerated beyond the first page's total_pages (records added while reading).
    extra_pages: int = 2

    def pages(self, fetch: Fetch, url: str, params: dict[str, Any], where: str, report: Report) -> Iterator[Page]:
        query = {**params, "per_page": self.per_page}
        announced: int | None = None
        read = 0
        for number in range(1, self.max_passes + 1):
            announced, read = yield from self._pass(fetch, url, query, number, where, report)
            if not self.reread_on_shortfall or announced is None or read >= announced:
                return
            log.warning(report.redact(
                f"{where}: read {read} of the {announced} records announced; records moved "
                "between pages while they were read, reading the listing again"
            ))
        raise report.failure(
            f"{where}: {self.max_passes} passes each read fewer records than the listing announced "
            f"(last: {read} of {announced}); records keep moving between pages"
        )

    def _pass(
        self, fetch: Fetch, first_url: str, query: dict[str, Any], number: int, where: str, report: Report
    ) -> Generator[Page, None, tuple[int | None, int]]:
        """One read from the first URL; returns (announced total, distinct records read)."""
        url: str | None = first_url
        params: dict[str, Any] | None = query
        seen_urls: set[str] = set()
        ids = _DistinctIds()
        pages = 0
        announced: int | None = None
        announced_pages: int | None = None
        while url:
            body = fetch(url, params)
            records = envelope_records(body, self.envelope, where, report)
            pages += 1
            total = _int_or_none(body.get("total_entries"))
            if pages == 1:
                announced, announced_pages = total, _announced_pages(body, self.per_page)
            if self.reread_on_shortfall:
                ids.add_page(records)
            yield Page(records, total, number)
            url, params = (body.get("links") or {}).get("next"), None
            if url and announced_pages is not None and pages >= announced_pages + self.extra_pages:
                raise report.failure(
                    f"{where}: links.next still points further after {pages} pages, although the "
                    f"first page announced {announced_pages}; stopped"
                )
            if url in seen_urls:
                raise report.failure(f"{where}: links.next repeats a page already read")
            if url:
                seen_urls.add(url)
        return announced, ids.count()


@dataclass(frozen=True)
class MoreRecords:
    """Records under `envelope` while ``info.more_records`` says so: the next page number, or
    ``info.next_page_token`` when the answer carries one. `paged` False: one request only."""

    envelope: str
    per_page: int
    paged: bool = True
    max_pages: int = 1000

    def pages(self, fetch: Fetch, url: str, params: dict[str, Any], where: str, report: Report) -> Iterator[Page]:
        query = dict(params)
        if self.paged:
            query.update(page=1, per_page=self.per_page)
        for _ in range(self.max_pages):
            body = fetch(url, query)
            if not body:  # 204 / 304: nothing (more) here
                return
            records = envelope_records(body, self.envelope, where, report)
            yield Page(records)
            info = body.get("info") or {}
            # An empty page that still says more_records is followed (bounded by max_pages).
            if not self.paged or not info.get("more_records"):
                return
            if info.get("next_page_token"):
                query.pop("page", None)
                query["page_token"] = info["next_page_token"]
            else:
                query["page"] = query.get("page", 1) + 1
        raise report.failure(f"{where}: still more_records after {self.max_pages} pages; stopped")


class _DistinctIds:
    """Counts the distinct record ids of a listing in 8 bytes per integer id (a set of Python
    ints takes about 60), so a pass over a million records stays small."""

    def __init__(self) -> None:
        self._ints = array("q")
        self._others: set[Any] = set()
        self._without_id = 0

    def add_page(self, records: list[Any]) -> None:
        ids = ids_of(records)
        if ids is not None and (not ids or type(ids[0]) is int):
            self._ints.extend(ids)  # read as Arrow's int64: every one fits
            return
        for r in records:
            key = r.get("id") if isinstance(r, dict) else None
            if key is None:
                self._without_id += 1
            elif type(key) is int and -(2**63) <= key < 2**63:
                self._ints.append(key)
            else:
                self._others.add(key)

    def count(self) -> int:
        # Sorting a copy takes 8 bytes per id; a hash table of them (pyarrow's count_distinct)
        # took ~100 MB at a million ids, the peak of a whole backfill.
        import numpy as np  # here, not at the top: the code location imports this module

        ints = np.sort(np.frombuffer(self._ints, dtype=np.int64))
        distinct = int(np.count_nonzero(ints[1:] != ints[:-1])) + 1 if len(ints) else 0
        return self._without_id + len(self._others) + distinct


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _announced_pages(first: dict[str, Any], per_page: int) -> int | None:
    """The page count a listing's first page announces (derived from its total when not given)."""
    total_pages = _int_or_none(first.get("total_pages"))
    if total_pages is None:
        total = _int_or_none(first.get("total_entries"))
        if total is None:
            return None
        total_pages = -(-total // (_int_or_none(first.get("per_page")) or per_page))
    return max(total_pages, 1)
