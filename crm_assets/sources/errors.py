"""Errors every source shares, sorted by what a run should do about them."""

from __future__ import annotations


class SourceError(RuntimeError):
    """A source API refused a request, sent something unusable, or kept failing after retries.

    The run goes on with the source's other tables and fails at the end, naming each table.
    """


class FatalSourceError(SourceError):
    """Neither a retry nor another table can succeed: bad credentials, a wrong API URL, a
    permission or a page that is not the API's. The whole run stops at once with one message
    naming the setting to check."""
