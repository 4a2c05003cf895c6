"""Page-number listings against a record deleted mid-read (own sandbox: the test deletes data)."""

from __future__ import annotations

import pytest

from crm_assets.sandbox import SandboxProcess
from crm_assets.sources.errors import FatalSourceError, SourceError
from crm_assets.sources.harvest.client import HarvestApiError, HarvestClient

PER_PAGE = 100


@pytest.fixture(scope="module")
def sb():
    with SandboxProcess(seed=11, scale=0.3, lifetime=900) as sandbox:
        yield sandbox


def read_deleting_after_first_page(sb, pagination: str) -> tuple[set[int], set[int]]:
    """Ids read from /time_entries when a record of page 1 is deleted once page 1 was read,
    and the ids the sandbox holds afterwards."""
    env = sb.env
    client = HarvestClient(access_token=env["HARVEST_ACCESS_TOKEN"], account_id=env["HARVEST_ACCOUNT_ID"],
                           api_url=env["HARVEST_API_URL"], per_page=PER_PAGE)
    with client.open() as api:
        pages = api.pages("/time_entries", "time_entries", pagination=pagination)
        first = next(pages)
        assert len(first.records) == PER_PAGE and first.total_entries > 2 * PER_PAGE
        sb.harvest_delete("time_entries", [first.records[PER_PAGE // 2]["id"]])
        read = {r["id"] for r in first.records} | {r["id"] for page in pages for r in page.records}
    return read, {r["id"] for r in sb.harvest_records("time_entries", fields=["id"])}


def test_a_single_pass_over_a_shifting_page_listing_misses_a_record(sb):
    """The hazard is real: read once, as a cursor listing is, a record moves up past the reader."""
    read, survivors = read_deleting_after_first_page(sb, pagination="cursor")
    assert len(survivors - read) == 1


def test_a_page_listing_read_again_returns_every_surviving_record(sb):
    read, survivors = read_deleting_after_first_page(sb, pagination="page")
    assert survivors <= read


def test_a_listing_that_keeps_shifting_fails_after_a_bounded_number_of_passes(sb):
    env = sb.env
    client = HarvestClient(access_token=env["HARVEST_ACCESS_TOKEN"], account_id=env["HARVEST_ACCOUNT_ID"],
                           api_url=env["HARVEST_API_URL"], per_page=PER_PAGE)
    passes_started = []
    with client.open() as api, pytest.raises(HarvestApiError, match=r"GET /time_entries: 3 passes .* of \d+") as caught:
        for page in api.pages("/time_entries", "time_entries", pagination="page"):
            if page.pass_number not in passes_started:
                passes_started.append(page.pass_number)
                sb.harvest_delete("time_entries", [page.records[PER_PAGE // 2]["id"]])
    assert passes_started == [1, 2, 3]
    assert isinstance(caught.value, SourceError) and not isinstance(caught.value, FatalSourceError)
