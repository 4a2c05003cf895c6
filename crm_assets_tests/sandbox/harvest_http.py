"""A few lines of HTTP for the sandbox tests: one GET, and every page of a list by ``links.next``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def get(sandbox, path_or_url: str, method: str = "GET") -> tuple[int, Any]:
    """Status and decoded JSON body of one API request with the sandbox's credentials."""
    url = path_or_url if path_or_url.startswith("http") else sandbox.harvest_url + path_or_url
    request = urllib.request.Request(url, headers=sandbox.harvest_headers(), method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def every_page(sandbox, path: str, envelope: str) -> list[dict]:
    """All records of a list endpoint, following ``links.next`` until it is null."""
    records, url, pages = [], path, 0
    while url:
        status, body = get(sandbox, url)
        assert status == 200, f"GET {url}: {status} {body}"
        records += body[envelope]
        url = body["links"]["next"]
        pages += 1
        assert pages < 10_000, f"{path}: links.next never ends"
    return records
