"""The Harvest ID emulator: OAuth2 tokens and the accounts a token reaches.

Served under ``/harvest_id`` (so ``HARVEST_ID_URL=<base>/harvest_id``), written from the
project's Harvest spec, sections 1.3 and 1.4:

- ``GET /oauth2/authorize?client_id=...&response_type=code[&redirect_uri=...][&state=...]``
  redirects (302) to the redirect URI with ``code``, ``scope=harvest:{ACCOUNT_ID}`` and ``state``;
  ``response_type=token`` puts an access token in the fragment instead (no refresh token);
- ``POST /api/v2/oauth2/token`` with a form or JSON body: ``grant_type=authorization_code``
  (``code``) or ``grant_type=refresh_token`` (``refresh_token``), plus ``client_id`` and
  ``client_secret``. It answers ``access_token``, ``refresh_token`` (a new one each time),
  ``token_type: "bearer"`` and ``expires_in``; errors are ``{"error", "error_description"}``;
- ``GET /api/v2/accounts`` with ``Authorization: Bearer`` answers
  ``{"user": {...}, "accounts": [{"id", "name", "product"}, ...]}``.

Access tokens live in a :class:`TokenRegistry` shared with the Harvest API emulator, which
accepts them beside the personal token. The admin routes under ``/_sandbox/harvest_id/`` make
tokens expire or get revoked on request, add and remove accounts, change the token lifetime
(in seconds, or in API requests so that a token expires mid-run deterministically), make a used
refresh token invalid (strict rotation), mint refresh tokens, and count requests.

Standard library only, like the rest of the sandbox.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl, urlencode

from crm_assets.sandbox.faults import FaultInjector, fault_response
from crm_assets.sandbox.server import BadRequest, Request, Response, json_response

CLIENT_ID = "sandbox-oauth-client"
CLIENT_SECRET = "sandbox-oauth-client-secret-0c6f"
REDIRECT_URI = "http://127.0.0.1/oauth/callback"
# Third-party summaries of Harvest's docs give 14 days (spec §1.3).
DEFAULT_EXPIRES_IN = 1_209_600
USER = {"id": 1782884, "first_name": "Sandbox", "last_name": "Administrator", "email": "admin@sandbox.example"}
INVALID_TOKEN = {
    "error": "invalid_token",
    "error_description": "The access token provided is expired, revoked, malformed or invalid for other reasons.",
}


class TokenRegistry:
    """Access tokens issued by Harvest ID, with their expiry; shared with the API emulator."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expires: dict[str, float] = {}
        self._revoked: set[str] = set()
        self._uses_left: dict[str, int] = {}
        self.rejected: Counter[str] = Counter()  # "expired" / "revoked" uses seen by the API

    def issue(self, lifetime: float, max_uses: int | None = None) -> str:
        """A new access token, valid for `lifetime` seconds or `max_uses` API requests."""
        token = "sbx-at-" + secrets.token_urlsafe(24)
        with self._lock:
            self._expires[token] = time.time() + lifetime
            if max_uses:
                self._uses_left[token] = max_uses
        return token

    def state(self, token: str) -> str:
        """``live``, ``expired``, ``revoked`` or ``unknown``."""
        with self._lock:
            if token in self._revoked:
                return "revoked"
            expires = self._expires.get(token)
        if expires is None:
            return "unknown"
        return "live" if time.time() < expires else "expired"

    def accepts(self, token: str) -> bool:
        """Whether the API should serve a request bearing `token` (counting refused known tokens)."""
        state = self.state(token)
        with self._lock:
            if state == "live" and token in self._uses_left:
                self._uses_left[token] -= 1
                if self._uses_left[token] < 0:
                    self._expires[token] = time.time() - 1
                    state = "expired"
            if state in ("expired", "revoked"):
                self.rejected[state] += 1
        return state == "live"

    def expire(self, token: str | None = None) -> int:
        with self._lock:
            now = time.time()
            chosen = [token] if token else [t for t, e in self._expires.items() if e > now]
            for t in chosen:
                if t in self._expires:
                    self._expires[t] = now - 1
            return len(chosen)

    def revoke(self, token: str | None = None) -> int:
        with self._lock:
            chosen = [token] if token else list(self._expires)
            self._revoked.update(chosen)
            return len(chosen)

    def issued(self) -> list[str]:
        with self._lock:
            return list(self._expires)

    def live_count(self) -> int:
        now = time.time()
        with self._lock:
            return sum(1 for t, e in self._expires.items() if e > now and t not in self._revoked)


class HarvestIdEmulator:
    """Serves ``/harvest_id/...``; admin API under ``/_sandbox/harvest_id/...``."""

    name = "harvest_id"

    def __init__(self, tokens: TokenRegistry, accounts: list[dict[str, Any]], faults: FaultInjector | None = None):
        self.faults = faults
        self.tokens = tokens
        self.accounts = [dict(a) for a in accounts]
        self.lock = threading.Lock()
        self.expires_in = DEFAULT_EXPIRES_IN
        self.max_uses: int | None = None  # access tokens expire after this many API requests
        self.reuse_refresh_tokens = True
        self.refresh_tokens: dict[str, bool] = {}  # token -> still usable
        self.codes: set[str] = set()
        self.stats: Counter[str] = Counter()
        self.initial_refresh_token = self._new_refresh_token()

    def env(self, base_url: str) -> dict[str, str]:
        return {
            "HARVEST_ID_URL": f"{base_url}/{self.name}",
            "HARVEST_CLIENT_ID": CLIENT_ID,
            "HARVEST_CLIENT_SECRET": CLIENT_SECRET,
            "HARVEST_REFRESH_TOKEN": self.initial_refresh_token,
        }

    def _new_refresh_token(self) -> str:
        token = "sbx-rt-" + secrets.token_urlsafe(24)
        self.refresh_tokens[token] = True
        return token

    # -- the API --

    def handle_api(self, request: Request, path: str) -> Response:
        fault = self.faults.take(self.name) if self.faults is not None else None
        if fault is not None:
            return fault_response(fault)
        if path == "/api/v2/oauth2/token" and request.method == "POST":
            return self._token(request)
        if path == "/api/v2/accounts" and request.method in ("GET", "HEAD"):
            return self._accounts(request)
        if path == "/oauth2/authorize" and request.method == "GET":
            return self._authorize(request)
        return json_response(404, {"error": "not_found", "error_description": f"No route {request.method} {path}"})

    def _token(self, request: Request) -> Response:
        form = _form(request)
        scheme, _, basic = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "basic":  # RFC 6749 §2.3.1 lets clients send their credentials so
            try:
                client_id, _, client_secret = base64.b64decode(basic.strip()).decode().partition(":")
            except ValueError:
                client_id = client_secret = ""
            form.setdefault("client_id", client_id)
            form.setdefault("client_secret", client_secret)
        with self.lock:
            self.stats[f"token:{form.get('grant_type', '')}"] += 1
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                return _oauth_error(401, "invalid_client", "The client credentials are invalid.")
            grant = form.get("grant_type")
            if grant == "authorization_code":
                code = form.get("code", "")
                if code not in self.codes:
                    return _oauth_error(400, "invalid_grant", "The authorization code is invalid or was already used.")
                self.codes.discard(code)
            elif grant == "refresh_token":
                used = form.get("refresh_token", "")
                if not self.refresh_tokens.get(used):
                    return _oauth_error(400, "invalid_grant", "The refresh token is invalid, expired or revoked.")
                if not self.reuse_refresh_tokens:
                    self.refresh_tokens[used] = False
            else:
                return _oauth_error(400, "unsupported_grant_type", "Use authorization_code or refresh_token.")
            refresh_token = self._new_refresh_token()
            lifetime, max_uses = self.expires_in, self.max_uses
        return json_response(200, {
            "access_token": self.tokens.issue(lifetime, max_uses),
            "refresh_token": refresh_token,
            "token_type": "bearer",
            "expires_in": lifetime,
        })

    def _accounts(self, request: Request) -> Response:
        with self.lock:
            self.stats["accounts"] += 1
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not self.tokens.accepts(token.strip()):
            return json_response(401, INVALID_TOKEN)
        with self.lock:
            return json_response(200, {"user": USER, "accounts": [dict(a) for a in self.accounts]})

    def _authorize(self, request: Request) -> Response:
        if request.param("client_id") != CLIENT_ID:
            return _oauth_error(400, "invalid_client", "Unknown client_id.")
        redirect = request.param("redirect_uri") or REDIRECT_URI
        harvest = [a for a in self.accounts if a.get("product") == "harvest"]
        scope = " ".join(f"harvest:{a['id']}" for a in harvest)
        state = request.param("state")
        response_type = request.param("response_type")
        with self.lock:
            self.stats[f"authorize:{response_type}"] += 1
            if response_type == "code":
                code = "sbx-code-" + secrets.token_urlsafe(16)
                self.codes.add(code)
                params = {"code": code, "scope": scope}
                location = f"{redirect}?{urlencode({**params, **({'state': state} if state else {})})}"
            elif response_type == "token":
                params = {"access_token": self.tokens.issue(self.expires_in), "token_type": "bearer",
                          "expires_in": self.expires_in, "scope": scope}
                location = f"{redirect}#{urlencode({**params, **({'state': state} if state else {})})}"
            else:
                return _oauth_error(400, "unsupported_response_type", "Use response_type=code or token.")
        return Response(302, b"", headers=[("Location", location)])

    # -- admin --

    def handle_admin(self, request: Request, path: str) -> Response:
        """``GET /state``, ``/issued`` (every token handed out, for tests that look for leaks);
        ``POST /expire``, ``/revoke`` (optional ``access_token`` or
        ``refresh_token``, else every token), ``/accounts`` (add ``{id, name, product}``),
        ``/settings`` (``expires_in``; ``max_uses``: later access tokens expire after that many API
        requests; ``reuse_refresh_tokens``), ``/refresh_tokens`` (mint one);
        ``DELETE /accounts/{id}``."""
        body = request.json() if request.method == "POST" else {}
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object")
        if request.method == "GET" and path == "/state":
            return json_response(200, self._state())
        if request.method == "GET" and path == "/issued":
            with self.lock:
                refresh_tokens = list(self.refresh_tokens)
            return json_response(200, {"access_tokens": self.tokens.issued(), "refresh_tokens": refresh_tokens})
        if request.method == "POST" and path == "/expire":
            return json_response(200, {"expired": self.tokens.expire(body.get("access_token"))})
        if request.method == "POST" and path == "/revoke":
            return json_response(200, self._revoke(body))
        if request.method == "POST" and path == "/accounts":
            return json_response(200, self._add_account(body))
        if request.method == "DELETE" and path.startswith("/accounts/"):
            with self.lock:
                self.accounts = [a for a in self.accounts if str(a.get("id")) != path.rpartition("/")[2]]
            return json_response(200, self._state())
        if request.method == "POST" and path == "/settings":
            return json_response(200, self._settings(body))
        if request.method == "POST" and path == "/refresh_tokens":
            with self.lock:
                return json_response(200, {"refresh_token": self._new_refresh_token()})
        return json_response(404, {"error": f"no sandbox admin route {request.method} /_sandbox/harvest_id{path}"})

    def _state(self) -> dict[str, Any]:
        with self.lock:
            return {
                "accounts": [dict(a) for a in self.accounts],
                "expires_in": self.expires_in,
                "max_uses": self.max_uses,
                "reuse_refresh_tokens": self.reuse_refresh_tokens,
                "live_access_tokens": self.tokens.live_count(),
                "requests": dict(self.stats),
                "api_rejected_tokens": dict(self.tokens.rejected),
            }

    def _revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        revoked = 0
        if body.get("refresh_token") or not body.get("access_token"):
            with self.lock:
                chosen = [body["refresh_token"]] if body.get("refresh_token") else list(self.refresh_tokens)
                for token in chosen:
                    if token in self.refresh_tokens:
                        self.refresh_tokens[token] = False
                        revoked += 1
        if body.get("access_token") or not body.get("refresh_token"):
            revoked += self.tokens.revoke(body.get("access_token"))
        return {"revoked": revoked}

    def _add_account(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            account = {"id": int(body["id"]), "name": str(body["name"]), "product": str(body.get("product", "harvest"))}
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"expected {{id, name, product}}: {exc}") from exc
        with self.lock:
            self.accounts.append(account)
        return self._state()

    def _settings(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            try:
                if "expires_in" in body:
                    self.expires_in = max(1, int(body["expires_in"]))
                if "max_uses" in body:
                    self.max_uses = int(body["max_uses"]) if body["max_uses"] else None
                if "reuse_refresh_tokens" in body:
                    self.reuse_refresh_tokens = bool(body["reuse_refresh_tokens"])
            except (TypeError, ValueError) as exc:
                raise BadRequest(f"expected {{expires_in, max_uses, reuse_refresh_tokens}}: {exc}") from exc
        return self._state()


def _form(request: Request) -> dict[str, str]:
    """The token request's fields, from a form or a JSON body (clients send either)."""
    kind = (request.headers.get("Content-Type") or "").lower()
    if "json" in kind or request.body.lstrip().startswith(b"{"):
        body = request.json()
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object")
        return {str(k): str(v) for k, v in body.items() if v is not None}
    return dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))


def _oauth_error(status: int, error: str, description: str) -> Response:
    return json_response(status, {"error": error, "error_description": description})


__all__ = ["CLIENT_ID", "CLIENT_SECRET", "HarvestIdEmulator", "TokenRegistry"]
