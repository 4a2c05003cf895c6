"""OAuth2 for Harvest: access tokens from a refresh token at Harvest ID, and the account.

Harvest ID (``HARVEST_ID_URL``) trades the app's refresh token for an access token at
``POST /api/v2/oauth2/token`` (``grant_type=refresh_token``) and lists the accounts a token
reaches at ``GET /api/v2/accounts`` (the project's Harvest spec, sections 1.3 and 1.4).

An access token is refreshed a little before its ``expires_in`` runs out, and once more when
the API answers 401 anyway (revoked, or expired early). When Harvest ID hands back a new
refresh token, the old one may stop working, so the new one is written to a state file beside
the warehouse (mode 0600, never under ``DAGSTER_HOME``, whose files are run history). The file
records a fingerprint of the ``HARVEST_REFRESH_TOKEN`` it descends from: it is used only while
the variable still holds that token, so setting a fresh token from a new authorization wins
over the file. Refreshes hold an exclusive lock on the file, so two processes never spend the
same refresh token.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crm_assets.sources.http import JsonHttp, Target
from crm_assets.sources.redaction import Redactor

DEFAULT_ID_URL = "https://id.getharvest.com"
OAUTH_VARIABLES = "HARVEST_CLIENT_ID, HARVEST_CLIENT_SECRET and HARVEST_REFRESH_TOKEN"
# tap-harvest's fallback when a token answer carries no expires_in (spec §1.3).
DEFAULT_EXPIRES_IN = 17 * 3600.0
# Refresh this share of a token's lifetime before it ends (at most five minutes early).
EARLY_SHARE, MAX_EARLY_SECONDS = 0.25, 300.0

TOKEN_TARGET = Target("HARVEST_ID_URL", OAUTH_VARIABLES, frozenset({400, 401, 403}))
ACCOUNTS_TARGET = Target("HARVEST_ID_URL", OAUTH_VARIABLES)


class RefreshTokenStore:
    """The newest refresh token descending from the configured one, kept between runs."""

    def __init__(self, path: str | None, configured: str):
        self.path = Path(path) if path else None
        self.configured = configured
        self.origin = hashlib.sha256(configured.encode()).hexdigest()
        self._latest = configured  # without a file, rotations live as long as the process

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across processes while one refresh is spent and its successor saved."""
        if self.path is None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def current(self) -> str:
        if self.path is not None and self.path.exists():
            try:
                state = json.loads(self.path.read_text())
            except (OSError, ValueError):
                state = {}
            if state.get("origin") == self.origin and state.get("refresh_token"):
                return str(state["refresh_token"])
        return self._latest

    def save(self, token: str) -> None:
        self._latest = token
        if self.path is None:
            return
        temp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"origin": self.origin, "refresh_token": token, "saved_at": time.time()}, out)
        os.chmod(temp, 0o600)
        os.replace(temp, self.path)

    def describe(self) -> str:
        where = f" or {self.path}" if self.path is not None else ""
        return f"HARVEST_REFRESH_TOKEN{where}"


class HarvestOAuth:
    """Access tokens for the API's requests, obtained and renewed at Harvest ID."""

    def __init__(
        self,
        http: JsonHttp,
        redactor: Redactor,
        *,
        id_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        state_path: str | None,
    ):
        self.http = http
        self.redactor = redactor
        self.id_url = id_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.store = RefreshTokenStore(state_path, refresh_token)
        self._lock = threading.Lock()
        self._access_token = ""
        self._renew_at = 0.0
        self.refreshes = 0

    # -- the Auth strategy the HTTP layer asks --

    def headers(self) -> dict[str, str]:
        with self._lock:
            if not self._access_token or time.monotonic() >= self._renew_at:
                self._refresh()
            return {"Authorization": f"Bearer {self._access_token}"}

    def renew(self, rejected: dict[str, str]) -> bool:
        with self._lock:
            if rejected.get("Authorization") == f"Bearer {self._access_token}":
                self._refresh()
            return True

    # -- Harvest ID --

    def _refresh(self) -> None:
        with self.store.locked():
            refresh_token = self.store.current()
            self.redactor.add(refresh_token)
            body = self.http.request(
                "POST",
                f"{self.id_url}/api/v2/oauth2/token",
                Target(TOKEN_TARGET.url_variable, f"{OAUTH_VARIABLES} (refresh token read from {self.store.describe()})",
                       TOKEN_TARGET.credential_statuses),
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": refresh_token,
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                },
            )
            access = body.get("access_token")
            if not isinstance(access, str) or not access:
                raise self.http.failure(
                    f"Harvest ID's token answer has no access_token (keys: {sorted(body)[:10]}); check HARVEST_ID_URL",
                    fatal=True,
                )
            self.redactor.add(access)
            rotated = body.get("refresh_token")
            if isinstance(rotated, str) and rotated and rotated != refresh_token:
                self.redactor.add(rotated)
                self.store.save(rotated)
        lifetime = _seconds(body.get("expires_in"))
        self._access_token = access
        self._renew_at = time.monotonic() + lifetime - min(MAX_EARLY_SECONDS, lifetime * EARLY_SHARE)
        self.refreshes += 1

    def account_id(self) -> str:
        """The one Harvest account the token reaches; an error listing them when it is not one."""
        body = self.http.request("GET", f"{self.id_url}/api/v2/accounts", ACCOUNTS_TARGET, auth=self)
        accounts = body.get("accounts")
        if not isinstance(accounts, list):
            raise self.http.failure("Harvest ID's accounts answer has no 'accounts' list; check HARVEST_ID_URL", fatal=True)
        harvest = [a for a in accounts if isinstance(a, dict) and a.get("product") == "harvest"]
        if len(harvest) == 1 and harvest[0].get("id") is not None:
            return str(harvest[0]["id"])
        listed = ", ".join(f"{a.get('id')} ({a.get('name')}, {a.get('product')})" for a in accounts if isinstance(a, dict))
        if not harvest:
            raise self.http.failure(
                f"the OAuth token reaches no Harvest account (accounts: {listed or 'none'}); "
                "authorize the app for a Harvest account or set HARVEST_ACCOUNT_ID",
                fatal=True,
            )
        raise self.http.failure(
            f"the OAuth token reaches {len(harvest)} Harvest accounts: set HARVEST_ACCOUNT_ID to one of "
            + ", ".join(f"{a.get('id')} ({a.get('name')})" for a in harvest),
            fatal=True,
        )


def _seconds(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_EXPIRES_IN
    return seconds if seconds > 0 else DEFAULT_EXPIRES_IN
