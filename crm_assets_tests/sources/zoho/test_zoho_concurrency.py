"""Zoho's concurrency limit: listings that overlap (read-ahead, several at once) stay within it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from crm_assets.sources.zoho import zoho_catalog
from crm_assets_tests.sources.zoho.conftest import zoho_client

READERS = 3
LATENCY = 0.02


def test_overlapping_listings_stay_within_the_concurrency_limit(sandbox):
    """With the sandbox admitting one request in flight and no retries allowed, three listings
    read at once, each one page ahead, succeed only if the session never has two in flight."""
    users = zoho_catalog().stream("users")
    sandbox.call("POST", "/_sandbox/faults", {"api": "zoho", "spec": "concurrency=1"})
    sandbox.call("POST", "/_sandbox/zoho/settings", {"latency": LATENCY})  # requests stay in flight a while
    try:
        client = zoho_client(sandbox, max_concurrent_requests=1, max_retries=0, per_page=20)
        with client.open() as api:

            def read(_: int) -> list[str]:
                return [r["id"] for page in api.pages(users, read_ahead=True) for r in page]

            with ThreadPoolExecutor(READERS) as pool:
                listings = list(pool.map(read, range(READERS)))
    finally:
        sandbox.call("POST", "/_sandbox/zoho/settings", {"latency": 0})
        sandbox.clear_faults("zoho")
    truth = sorted(u["id"] for u in sandbox.zoho_records("users"))
    assert len(truth) > 200
    assert [sorted(ids) for ids in listings] == [truth] * READERS
