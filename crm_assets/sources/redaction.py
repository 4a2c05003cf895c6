"""One redaction path for every source: what a resource knows to be secret never leaves it.

A source session registers each secret it holds or obtains (a token, a client secret, every
access token a refresh hands back) and passes every error message and log line through
:meth:`Redactor.redact`. Besides the known values, credential-shaped fragments that an API
might echo back (``Authorization: Bearer ...``, ``access_token=...`` in a URL or a form body,
``"refresh_token": "..."`` in JSON) are masked too, so a secret the session never saw, such
as one typed into the wrong variable, does not slip through either.
"""

from __future__ import annotations

import re
import threading

MASK = "[redacted]"
# Secrets shorter than this would mask ordinary words; real tokens are far longer.
MIN_SECRET_LENGTH = 6
_CREDENTIAL_FRAGMENTS = re.compile(
    r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?\w+\s+|\bbearer\s+|\bzoho-oauthtoken\s+"
    r"|\b(?:access_token|refresh_token|client_secret|password)\b[\"']?\s*[:=]\s*[\"']?)"
    r"([^\s\"'&,;<>]+)"
)


class Redactor:
    """Masks registered secrets and credential-shaped fragments in text; safe across threads."""

    def __init__(self, *secrets: str | None):
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Remember `secret` (ignored when empty or too short to be one)."""
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            if secret not in self._secrets:
                # Longest first, so a secret containing another is masked whole.
                self._secrets = tuple(sorted({*self._secrets, secret}, key=len, reverse=True))

    def redact(self, text: object) -> str:
        """`text` as a string with every known secret and credential fragment masked."""
        out = str(text)
        for secret in self._secrets:
            if secret in out:
                out = out.replace(secret, MASK)
        return _CREDENTIAL_FRAGMENTS.sub(lambda m: m.group(1) + MASK, out)

    __call__ = redact
