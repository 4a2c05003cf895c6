"""The Zoho Accounts emulator: the OAuth token endpoint of spec §1, served under ``/zoho_accounts``.

``ZOHO_ACCOUNTS_URL=<base>/zoho_accounts``, so the token URL is ``<base>/zoho_accounts/oauth/v2/token``:

- ``POST /oauth/v2/token`` takes its parameters from the query string or a form body (§1.2):
  ``grant_type=refresh_token`` (``client_id``, ``client_secret``, ``refresh_token``) answers
  ``{"access_token", "scope", "api_domain", "token_type": "Bearer", "expires_in": 3600}``;
  ``grant_type=authorization_code`` (``code`` from ``POST /_sandbox/zoho/grant_codes``, single use,
  3 minutes; ``redirect_uri`` optional but must match when the code was minted with one) answers
  the same plus ``refresh_token``. ``api_domain`` is the CRM emulator, ``<base>/zoho``: the API
  is at ``<api_domain>/crm/v8/...``.
- Failures come back with **HTTP 200** and one key (§1.6): ``{"error": "invalid_client"}`` (unknown
  client id), ``{"error": "invalid_client_secret"}``, ``{"error": "invalid_code"}`` (refresh token
  unknown or revoked; code unknown, used or expired), ``{"error": "invalid_redirect_uri"}``, and
  ``{"error": "unsupported_grant_type"}`` (inferred: not in the spec). With a mint limit set,
  going over it answers **HTTP 400** ``{"error": "Access Denied", "error_description": "You have
  made too many requests continuously. Please try again after some time.", "status": "failure"}``.
- A refresh token keeps at most 30 live access tokens: minting another deletes the oldest (§1.4).
- ``POST /oauth/v2/token/revoke?token=<refresh_token>`` answers ``{"status": "success"}`` and
  revokes that refresh token and the access tokens minted from it.

Access tokens live in :class:`TokenStore`, shared with the CRM emulator, which answers 401
``INVALID_TOKEN`` for expired, revoked and unknown ones. Its admin routes (served under
``/_sandbox/zoho/`` by the CRM emulator, see ``zoho``) expire access tokens now, revoke refresh
tokens, change lifetimes and limits, mint grant codes and count token requests. No token, secret
or code is ever written to the request log.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter, deque
from typing import Any
from urllib.parse import parse_qsl

from crm_assets.sandbox.faults import FaultInjector, fault_response
from crm_assets.sandbox.server import BadRequest, Request, Response, json_response

CLIENT_ID = "1000.SANDBOX7Q2ZOHOCLIENT0000000"
CLIENT_SECRET = "sbx-zoho-client-secret-4e7a91c2d05b"
SCOPE = ("ZohoCRM.org.READ ZohoCRM.users.READ ZohoCRM.settings.currencies.READ ZohoCRM.settings.profiles.READ "
         "ZohoCRM.settings.roles.READ ZohoCRM.settings.territories.READ ZohoCRM.settings.fields.READ ZohoCRM.modules.ALL")
EXPIRES_IN = 3600
CODE_LIFETIME = 180
MAX_LIVE_ACCESS_TOKENS = 30  # per refresh token; minting the 31st deletes the oldest (§1.4)
# What the request log may show of a token request's parameters; every other value is redacted.
LOGGABLE_PARAMS = frozenset({"grant_type", "redirect_uri", "scope"})
THROTTLED = {"error": "Access Denied", "status": "failure",
             "error_description": "You have made too many requests continuously. Please try again after some time."}


def _token() -> str:
    """Zoho's token shape: ``1000.<hex>.<hex>``."""
    return f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"


class RequestLog:
    """Every request to either Zoho emulator, without secrets, plus counters by route."""

    def __init__(self, keep: int = 20_000):
        self.lock = threading.Lock()
        self.entries: deque[dict[str, Any]] = deque(maxlen=keep)
        self.counts: Counter[str] = Counter()

    def add(self, entry: dict[str, Any], counter: str) -> None:
        with self.lock:
            self.entries.append({"time": round(time.time(), 3), **entry})
            self.counts[counter] += 1

    def snapshot(self) -> tuple[list[dict[str, Any]], dict[str, int]]:
        with self.lock:
            return list(self.entries), dict(sorted(self.counts.items()))

    def reset(self) -> None:
        with self.lock:
            self.entries.clear()
            self.counts.clear()


class TokenStore:
    """Refresh tokens, grant codes and the access tokens minted from them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.refresh: dict[str, bool] = {}  # token -> usable
        self.access: dict[str, dict[str, Any]] = {}  # token -> {expires, refresh, revoked, uses_left}
        self.codes: dict[str, tuple[float, str | None]] = {}  # code -> (expires, redirect_uri)
        self.mints: dict[str, deque[float]] = {}
        self.rejected: Counter[str] = Counter()
        self.expires_in = EXPIRES_IN
        self.max_uses: int | None = None
        self.mint_limit: tuple[int, float] | None = None
        self.initial_refresh_token = self.new_refresh_token()

    def new_refresh_token(self) -> str:
        token = _token()
        with self.lock:
            self.refresh[token] = True
        return token

    def new_code(self, redirect_uri: str | None, lifetime: float = CODE_LIFETIME) -> str:
        code = _token()
        with self.lock:
            self.codes[code] = (time.time() + lifetime, redirect_uri)
        return code

    def mint(self, refresh_token: str) -> str | None:
        """A new access token, or None when the mint limit for this refresh token is reached."""
        with self.lock:
            if self.mint_limit is not None:
                limit, window = self.mint_limit
                now = time.monotonic()
                recent = self.mints.setdefault(refresh_token, deque())
                while recent and recent[0] <= now - window:
                    recent.popleft()
                if len(recent) >= limit:
                    return None
                recent.append(now)
            now = time.time()
            live = [t for t, i in self.access.items() if i["refresh"] == refresh_token and i["expires"] > now
                    and not i["revoked"]]
            for oldest in live[: max(0, len(live) - MAX_LIVE_ACCESS_TOKENS + 1)]:
                self.access[oldest]["revoked"] = True
            token = _token()
            self.access[token] = {"expires": now + self.expires_in, "refresh": refresh_token,
                                  "revoked": False, "uses_left": self.max_uses}
            return token

    def state(self, token: str) -> str:
        """``live``, ``expired``, ``revoked`` or ``unknown``; a live use counts against max_uses."""
        with self.lock:
            info = self.access.get(token)
            if info is None:
                return "unknown"
            if info["revoked"]:
                state = "revoked"
            elif time.time() >= info["expires"]:
                state = "expired"
            elif info["uses_left"] is not None and info["uses_left"] <= 0:
                info["expires"] = time.time() - 1
                state = "expired"
            else:
                if info["uses_left"] is not None:
                    info["uses_left"] -= 1
                return "live"
            self.rejected[state] += 1
            return state

    def expire(self, token: str | None = None) -> int:
        with self.lock:
            now = time.time()
            chosen = [token] if token else [t for t, i in self.access.items() if i["expires"] > now]
            for t in chosen:
                if t in self.access:
                    self.access[t]["expires"] = now - 1
            return sum(1 for t in chosen if t in self.access)

    def revoke(self, refresh_token: str | None = None) -> int:
        """Revoke a refresh token (every one when None) and the access tokens minted from it."""
        with self.lock:
            chosen = [refresh_token] if refresh_token else list(self.refresh)
            for t in chosen:
                if t in self.refresh:
                    self.refresh[t] = False
            for info in self.access.values():
                if info["refresh"] in chosen:
                    info["revoked"] = True
            return sum(1 for t in chosen if t in self.refresh)

    def describe(self) -> dict[str, Any]:
        now = time.time()
        with self.lock:
            return {
                "expires_in": self.expires_in, "access_token_max_uses": self.max_uses,
                "mint_limit": None if self.mint_limit is None else {"count": self.mint_limit[0], "seconds": self.mint_limit[1]},
                "live_access_tokens": sum(1 for i in self.access.values() if i["expires"] > now and not i["revoked"]),
                "access_tokens_issued": len(self.access),
                "live_refresh_tokens": sum(self.refresh.values()),
                "api_rejected_tokens": dict(self.rejected),
            }

    def issued(self) -> dict[str, list[str]]:
        """Every token handed out, for tests that grep outputs for leaks."""
        with self.lock:
            return {"access_tokens": list(self.access), "refresh_tokens": list(self.refresh), "codes": list(self.codes)}


class ZohoAccountsEmulator:
    """Serves ``/zoho_accounts/oauth/v2/token[/revoke]``; its admin API lives under ``/_sandbox/zoho/``."""

    name = "zoho_accounts"

    def __init__(self, tokens: TokenStore, log: RequestLog, crm_prefix: str = "/zoho", faults: FaultInjector | None = None):
        self.faults = faults
        self.tokens = tokens
        self.log = log
        self.crm_prefix = crm_prefix

    def env(self, base_url: str) -> dict[str, str]:
        return {
            "ZOHO_CLIENT_ID": CLIENT_ID,
            "ZOHO_CLIENT_SECRET": CLIENT_SECRET,
            "ZOHO_REFRESH_TOKEN": self.tokens.initial_refresh_token,
            "ZOHO_ACCOUNTS_URL": f"{base_url}/{self.name}",
        }

    def handle_api(self, request: Request, path: str) -> Response:
        params = dict(request.query)
        if request.body:
            params.update(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        fault = self.faults.take(self.name) if self.faults is not None else None
        if fault is not None:
            answer, outcome = fault_response(fault), f"fault {fault.status}"
        elif path == "/oauth/v2/token" and request.method == "POST":
            answer, outcome = self._grant(request, params)
        elif path == "/oauth/v2/token/revoke" and request.method == "POST":
            revoked = self.tokens.revoke(params["token"]) if params.get("token") else 0
            answer, outcome = json_response(200, {"status": "success"}), f"revoked {revoked}"
        else:
            answer, outcome = json_response(404, {"error": "not_found"}), "no route"
        shown = [(k, v if k in LOGGABLE_PARAMS else "<redacted>") for k, v in params.items()]
        self.log.add({"api": "accounts", "method": request.method, "path": path, "query": shown,
                      "status": answer.status, "outcome": outcome}, f"accounts {path} {outcome.split(' ')[0]}")
        return answer

    def _grant(self, request: Request, params: dict[str, str]) -> tuple[Response, str]:
        if params.get("client_id") != CLIENT_ID:
            return _error("invalid_client")
        if params.get("client_secret") != CLIENT_SECRET:
            return _error("invalid_client_secret")
        grant = params.get("grant_type")
        body: dict[str, Any] = {}
        if grant == "refresh_token":
            refresh_token = params.get("refresh_token", "")
            if not self.tokens.refresh.get(refresh_token):
                return _error("invalid_code")
        elif grant == "authorization_code":
            with self.tokens.lock:
                expires, redirect = self.tokens.codes.get(params.get("code", ""), (0.0, None))
                if expires < time.time():
                    return _error("invalid_code")
                if redirect and params.get("redirect_uri") not in (None, redirect):
                    return _error("invalid_redirect_uri")
                self.tokens.codes.pop(params["code"], None)
            refresh_token = self.tokens.new_refresh_token()
            body["refresh_token"] = refresh_token
        else:
            return _error("unsupported_grant_type")
        access = self.tokens.mint(refresh_token)
        if access is None:
            return json_response(400, THROTTLED), "throttled"
        body = {"access_token": access, **body, "scope": SCOPE, "api_domain": request.base_url + self.crm_prefix,
                "token_type": "Bearer", "expires_in": EXPIRES_IN}
        return json_response(200, body), f"issued {grant}"

    def handle_admin(self, request: Request, path: str) -> Response:
        return json_response(404, {"error": "the Zoho admin routes are under /_sandbox/zoho/"})

    def admin(self, request: Request, path: str) -> Response | None:
        """The token admin routes (``/_sandbox/zoho/...``), or None when `path` is not one."""
        body = request.json() if request.method == "POST" else {}
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object")
        if request.method == "GET" and path == "/tokens":
            return json_response(200, self.tokens.describe())
        if request.method == "GET" and path == "/tokens/issued":
            return json_response(200, self.tokens.issued())
        if request.method == "POST" and path == "/tokens/expire":
            return json_response(200, {"expired": self.tokens.expire(body.get("access_token"))})
        if request.method == "POST" and path == "/tokens/revoke":
            return json_response(200, {"revoked": self.tokens.revoke(body.get("refresh_token"))})
        if request.method == "POST" and path == "/tokens/refresh_tokens":
            return json_response(200, {"refresh_token": self.tokens.new_refresh_token()})
        if request.method == "POST" and path == "/grant_codes":
            return json_response(200, {"code": self.tokens.new_code(body.get("redirect_uri"),
                                                                    float(body.get("expires_in", CODE_LIFETIME)))})
        if request.method == "POST" and path == "/tokens/settings":
            return json_response(200, self._settings(body))
        return None

    def _settings(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            with self.tokens.lock:
                if "expires_in" in body:  # the real lifetime; the answer keeps saying 3600 (§1.4)
                    self.tokens.expires_in = max(1.0, float(body["expires_in"]))
                if "access_token_max_uses" in body:
                    self.tokens.max_uses = int(body["access_token_max_uses"]) or None
                if "mint_limit" in body:
                    limit = body["mint_limit"]
                    self.tokens.mint_limit = None if not limit else (int(limit["count"]), float(limit["seconds"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"expected {{expires_in, access_token_max_uses, mint_limit: {{count, seconds}}}}: {exc}") from exc
        return self.tokens.describe()


def _error(code: str) -> tuple[Response, str]:
    """A token-endpoint failure: HTTP 200 with a one-key body (§1.6)."""
    return json_response(200, {"error": code}), code


__all__ = ["CLIENT_ID", "CLIENT_SECRET", "RequestLog", "TokenStore", "ZohoAccountsEmulator"]
