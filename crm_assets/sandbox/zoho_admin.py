"""The Zoho emulators' admin API under ``/_sandbox/zoho/``: ground truth, edits, tokens, request log.

- ``GET records/<table>`` — ``{"records": [...]}``, every record exactly as the API serves it, in
  its order (``users``: what ``type=AllUsers`` serves; ``?type=DeletedUsers`` and the other types too).
- ``POST modify`` ``{table, ids | count, set?}`` — edit records now: a small realistic change plus
  ``set`` (merged into nested objects), and the table's modified time (``Modified_Time``,
  ``modified_time`` or ``modified_time__s``, with the matching ``modified_by``) moved to now (at
  least a second after the old value), written in the record's own offset. ``count`` takes the
  first records in API order; answers ``{"modified": [ids]}``.
- ``GET settings`` / ``POST settings`` ``{multi_currency, territories_enabled, latency,
  retry_after_header, scope_missing: [tables]}``: multi-currency off makes ``/org/currencies`` 403 ``CURRENCIES_NOT_ENABLED``
  and the org's ``mc_status`` false; territories off makes them 400 ``FEATURE_NOT_ENABLED``;
  ``latency`` (seconds) holds every CRM answer, to put requests in flight together; the tables in
  ``scope_missing`` answer 401 ``OAUTH_SCOPE_MISMATCH``.
- ``GET stats`` — request counts by route (``crm GET /users`` ...; ``accounts /oauth/v2/token issued``,
  ``... invalid_code`` ...) and token state; ``GET requests[?api=crm|accounts]`` — the request log
  (method, path, query, ``If-Modified-Since``/``User-Agent`` headers, the auth scheme, status; token
  request parameters other than ``grant_type``, ``redirect_uri`` and ``scope`` show as
  ``<redacted>``; POST/PUT bodies of the records API whole); ``POST stats/reset`` clears both. ``GET info``.
- Module records (``zoho_records``): ``GET modules/<Module>`` every record as stored,
  ``GET modules/automations`` what each write ran, ``POST modules/reset`` empties every module.
- Tokens (``zoho_accounts``): ``GET tokens``, ``GET tokens/issued``; ``POST tokens/expire``
  ``{access_token?}`` (every live one by default; its answer had said ``expires_in: 3600``),
  ``POST tokens/revoke`` ``{refresh_token?}`` (every one by default, with its access tokens),
  ``POST tokens/refresh_tokens`` (mint one), ``POST tokens/settings`` ``{expires_in,
  access_token_max_uses, mint_limit: {count, seconds}}``, ``POST grant_codes`` ``{redirect_uri?, expires_in?}``.
"""

from __future__ import annotations

import random
import time
from typing import Any

from crm_assets.sandbox import zoho_reference as ref
from crm_assets.sandbox.server import BadRequest, Request, Response, json_response
from crm_assets.sandbox.zoho_data import stamp

Record = dict[str, Any]
# Each table's modified time and modified-by fields (organization has none, §2.2).
MODIFIED_FIELDS = {"users": ("Modified_Time", "Modified_By"), "territories": ("modified_time", "modified_by"),
                   "currencies": ("modified_time", "modified_by"), "profiles": ("modified_time", "modified_by"),
                   "roles": ("modified_time__s", "modified_by__s")}


class ZohoAdmin:
    """Mixed into :class:`~crm_assets.sandbox.zoho.ZohoEmulator`, which owns the state."""

    seed: int
    scale: float
    start_date: str
    lock: Any
    log: Any
    accounts: Any
    tokens: Any
    settings: dict[str, Any]
    tables: dict[str, list[Record]]
    user_types: dict[str, Any]
    admin_user: Record
    modifications: int
    records: Any

    def handle_admin(self, request: Request, path: str) -> Response:
        if path.startswith("/modules/"):
            return self.records.admin(request, path[len("/modules"):])
        if path.startswith("/records/") and request.method == "GET":
            return self._records(path[len("/records/"):], request.param("type"))
        if path == "/modify" and request.method == "POST":
            return self._modify(request.json())
        if path == "/settings":
            if request.method == "POST":
                self._settings(request.json())
            return json_response(200, dict(self.settings))
        if path == "/stats" and request.method == "GET":
            entries, counts = self.log.snapshot()
            crm = sum(n for k, n in counts.items() if k.startswith("crm "))
            return json_response(200, {"crm_requests": crm, "token_requests": sum(n for k, n in counts.items()
                                                                                  if k.startswith("accounts /oauth/v2/token ")),
                                       "by_route": counts, "tokens": self.tokens.describe()})
        if path == "/requests" and request.method == "GET":
            entries, _ = self.log.snapshot()
            api = request.param("api")
            return json_response(200, {"requests": [e for e in entries if api in (None, e["api"])]})
        if path == "/stats/reset" and request.method == "POST":
            self.log.reset()
            return json_response(200, {"crm_requests": 0, "token_requests": 0, "by_route": {}})
        if path == "/info" and request.method == "GET":
            with self.lock:
                counts = {t: len(rows) for t, rows in self.tables.items()}
            return json_response(200, {"seed": self.seed, "scale": self.scale, "start_date": self.start_date,
                                       "counts": counts, "settings": dict(self.settings),
                                       "routes": sorted(f"/crm/{ref.API_VERSION}{e.path}" for e in ref.ENDPOINTS.values())})
        answer = self.accounts.admin(request, path)
        if answer is not None:
            return answer
        return json_response(404, {"error": f"no zoho admin route {request.method} {path}"})

    def _records(self, table: str, kind: str | None) -> Response:
        if table not in self.tables:
            return json_response(404, {"error": f"unknown table {table!r}; one of {sorted(self.tables)}"})
        with self.lock:
            rows = self.tables[table]
            if table == "users":
                rule = self.user_types.get(kind or "AllUsers")
                if rule is None:
                    raise BadRequest(f"type must be one of {', '.join(ref.USER_TYPES)}")
                rows = [u for u in rows if rule(u)]
            return json_response(200, {"records": rows})

    def _settings(self, body: Any) -> None:
        if not isinstance(body, dict) or set(body) - set(self.settings):
            raise BadRequest(f"expected an object with some of {sorted(self.settings)}")
        with self.lock:
            for key, value in body.items():
                if key == "scope_missing":
                    unknown = set(value or ()) - set(self.tables)
                    if unknown:
                        raise BadRequest(f"scope_missing: unknown tables {sorted(unknown)}")
                    self.settings[key] = sorted(value or ())
                else:
                    self.settings[key] = float(value) if key == "latency" else bool(value)
            self.tables["organization"][0]["mc_status"] = self.settings["multi_currency"]

    def _modify(self, body: Any) -> Response:
        if not isinstance(body, dict) or body.get("table") not in self.tables:
            raise BadRequest(f"table must be one of {sorted(self.tables)}")
        table, patch = body["table"], body.get("set") or {}
        if not isinstance(patch, dict):
            raise BadRequest("set must be an object")
        with self.lock:
            rows = self.tables[table]
            index = {r["id"]: i for i, r in enumerate(rows)}
            if body.get("ids") is not None:
                ids = [str(i) for i in body["ids"]]
                missing = [i for i in ids if i not in index]
                if missing:
                    return json_response(404, {"error": f"unknown {table} ids", "ids": missing})
            elif body.get("count") is not None:
                ids = [r["id"] for r in rows[: int(body["count"])]]
            else:
                raise BadRequest("give ids or count")
            self.modifications += 1
            rng = random.Random(f"zoho:{self.seed}:modify:{self.modifications}")
            for rid in ids:
                rows[index[rid]] = self._edited(table, rows[index[rid]], patch, rng)
        return json_response(200, {"modified": ids})

    def _edited(self, table: str, old: Record, patch: dict[str, Any], rng: random.Random) -> Record:
        rec = _merge(old, _change(table, old, rng))
        if table in MODIFIED_FIELDS:
            time_field, by_field = MODIFIED_FIELDS[table]
            previous = old.get(time_field)
            offset = "+05:30"
            now = int(time.time())
            if previous:
                offset = "Z" if previous.endswith("Z") else previous[-6:]
                now = max(now, int(ref.parse_time(previous).timestamp()) + 1)
            rec[time_field] = stamp(now, offset)
            rec[by_field] = {"name": self.admin_user["name"], "id": self.admin_user["id"]}
        return _merge(rec, patch)


def _change(table: str, old: Record, rng: random.Random) -> Record:
    """A plausible edit someone might make in the CRM's settings."""
    if table == "users":
        return {"phone": f"+1 555 02{rng.randrange(10000):04d}", "Isonline": not old["Isonline"]}
    if table == "currencies":
        rate = float(old["exchange_rate"]) if not old["is_base"] else 1.0
        return {} if old["is_base"] else {"exchange_rate": f"{rate * rng.uniform(0.97, 1.03):.9f}"}
    if table == "organization":
        return {"employee_count": str(int(old["employee_count"]) + rng.randrange(1, 20))}
    return {"description": f"{old['name']}, revised {rng.randrange(1000)}"}


def _merge(base: Record, patch: dict[str, Any]) -> Record:
    """``base`` with ``patch`` merged in; nested dicts merge, copying (they may be shared)."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


__all__ = ["ZohoAdmin"]
