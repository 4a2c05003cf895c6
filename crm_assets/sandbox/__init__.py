"""Local emulators of the source and destination APIs, for tests, demos and benchmarks.

Run ``python -m crm_assets.sandbox`` for a server, or use :class:`SandboxProcess` to start one
as a child process for the duration of a ``with`` block. This module imports only the standard
library so that starting the child stays cheap.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

READY_LINE = "# sandbox ready"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


class SandboxError(RuntimeError):
    """The sandbox did not start, or an admin call failed."""


class SandboxProcess:
    """A sandbox server in a child process, with helpers for its admin API.

    ``sb.env`` holds the exported variables (``HARVEST_API_URL`` ...), ``sb.url`` the server's
    base URL. The child serves until :meth:`stop`, or ``lifetime`` seconds when that is > 0;
    it also stops as soon as this process dies, however it dies, because it watches the pipe on
    its stdin whose other end only this process holds.
    """

    def __init__(self, seed: int = 1, scale: float = 1.0, anchor: Any = None, faults: str | None = None,
                 lifetime: float = 0, host: str = "127.0.0.1", startup_timeout: float = 180.0,
                 extra_args: list[str] | None = None):
        self.args = ["--host", host, "--port", "0", "--seed", str(seed), "--scale", str(scale),
                     "--lifetime", str(lifetime), "--exit-with-stdin"]
        if anchor is not None:
            self.args += ["--anchor", str(anchor)]
        if faults:
            self.args += ["--faults", faults]
        self.args += extra_args or []
        self.startup_timeout = startup_timeout
        self.env: dict[str, str] = {}
        self.url = ""
        self.process: subprocess.Popen[str] | None = None
        self._stderr: Any = None

    # -- lifecycle --

    def start(self) -> SandboxProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "crm_assets.sandbox", *self.args],
            stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.PIPE, text=True, encoding="utf-8", env=env,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(self.process.stdout, lines), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise SandboxError(f"sandbox not ready after {self.startup_timeout:.0f}s:\n{self._child_stderr()}") from None
            if line is None:
                self.stop()
                raise SandboxError(f"sandbox exited before it was ready:\n{self._child_stderr()}")
            line = line.rstrip("\n")
            if line == READY_LINE:
                break
            if line.startswith("export "):
                key, _, value = line[len("export "):].partition("=")
                self.env[key] = shlex.split(value)[0] if value else ""
        self.url = self.env["CRM_ASSETS_SANDBOX_URL"]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.process
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _child_stderr(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()[-8000:]

    # -- admin API --

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One admin request; returns the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=600) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise SandboxError(f"{method} {path}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None

    @property
    def harvest_url(self) -> str:
        return self.env["HARVEST_API_URL"]

    def harvest_headers(self, user_agent: str = "crm_assets tests (dev@example.com)") -> dict[str, str]:
        """The three headers Harvest requires, for the sandbox's credentials."""
        return {"Authorization": f"Bearer {self.env['HARVEST_ACCESS_TOKEN']}",
                "Harvest-Account-Id": self.env["HARVEST_ACCOUNT_ID"], "User-Agent": user_agent}

    def harvest_records(self, stream: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
        """Ground truth for a stream; per-parent streams give ``{"parent_id", "record"}`` items."""
        query = f"?fields={','.join(fields)}" if fields else ""
        return self.call("GET", f"/_sandbox/harvest/records/{stream}{query}")["records"]

    def harvest_modify(self, stream: str, count: int | None = None, ids: list[int] | None = None,
                       set: dict[str, Any] | None = None, delete: bool = False) -> list[int]:
        """Edit (or hard-delete) records now; returns the ids touched."""
        body: dict[str, Any] = {"stream": stream}
        if ids is not None:
            body["ids"] = list(ids)
        if count is not None:
            body["count"] = count
        if set:
            body["set"] = set
        if delete:
            body["delete"] = True
        answer = self.call("POST", "/_sandbox/harvest/modify", body)
        return answer["deleted"] if delete else answer["modified"]

    def harvest_delete(self, stream: str, ids: list[int]) -> list[int]:
        return self.harvest_modify(stream, ids=ids, delete=True)

    def harvest_stats(self) -> dict[str, Any]:
        return self.call("GET", "/_sandbox/harvest/stats")

    def reset_harvest_stats(self) -> None:
        self.call("POST", "/_sandbox/harvest/stats/reset")

    def harvest_info(self) -> dict[str, Any]:
        return self.call("GET", "/_sandbox/harvest/info")

    # -- Salesforce (admin routes of salesforce_admin; the API itself is HTTPS, see env) --

    def salesforce_records(self, obj: str, deleted: str = "exclude") -> list[dict[str, Any]]:
        """Every record of `obj` in the org (``deleted``: ``exclude``, ``include`` or ``only``)."""
        return self.call("GET", f"/_sandbox/salesforce/records/{obj}?deleted={deleted}")["records"]

    def salesforce_load(self, obj: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Seed records without API calls; one insert result per record."""
        return self.call("POST", f"/_sandbox/salesforce/records/{obj}", {"records": records})["results"]

    def salesforce_requests(self) -> list[dict[str, Any]]:
        return self.call("GET", "/_sandbox/salesforce/requests")["requests"]

    def salesforce_clear_requests(self) -> None:
        self.call("DELETE", "/_sandbox/salesforce/requests")

    def salesforce_jobs(self) -> list[dict[str, Any]]:
        return self.call("GET", "/_sandbox/salesforce/jobs")["jobs"]

    def salesforce_reset(self) -> None:
        """Empty org, no jobs, no request log, no Salesforce faults."""
        self.call("POST", "/_sandbox/salesforce/reset")

    def salesforce_session(self) -> dict[str, str]:
        """A fresh ``{"session_id", "instance_url"}`` for session-id authentication."""
        return self.call("POST", "/_sandbox/salesforce/sessions")

    def salesforce_issued_sessions(self) -> list[str]:
        """Every session id the org issued (logins and :meth:`salesforce_session`), to look for leaks."""
        return self.call("GET", "/_sandbox/salesforce/sessions")["sessions"]

    def salesforce_expire_sessions(self, after: int = 0) -> None:
        self.call("POST", "/_sandbox/salesforce/sessions/expire", {"after": after})

    def salesforce_fault(self, kind: str, **options: Any) -> dict[str, Any]:
        """Queue or set a Salesforce fault: ``lock``/``batch_failed`` (``count`` or ``probability``),
        ``session_expiry`` (``after``), ``status`` (``status``, ``count``)."""
        return self.call("POST", "/_sandbox/salesforce/faults", {"kind": kind, **options})

    def salesforce_clear_faults(self) -> None:
        self.call("DELETE", "/_sandbox/salesforce/faults")

    def salesforce_settings(self, **settings: Any) -> dict[str, Any]:
        return self.call("POST", "/_sandbox/salesforce/settings", settings)

    def zoho_records(self, table: str, user_type: str | None = None) -> list[dict[str, Any]]:
        """Ground truth for a Zoho table, exactly as the API serves it (users: ``type=AllUsers``)."""
        query = f"?type={user_type}" if user_type else ""
        return self.call("GET", f"/_sandbox/zoho/records/{table}{query}")["records"]

    def zoho_modify(self, table: str, count: int | None = None, ids: list[str] | None = None,
                    set: dict[str, Any] | None = None) -> list[str]:
        """Edit Zoho records now (their modified time moves to now); returns the ids touched."""
        body: dict[str, Any] = {"table": table}
        if ids is not None:
            body["ids"] = [str(i) for i in ids]
        if count is not None:
            body["count"] = count
        if set:
            body["set"] = set
        return self.call("POST", "/_sandbox/zoho/modify", body)["modified"]

    def zoho_stats(self) -> dict[str, Any]:
        return self.call("GET", "/_sandbox/zoho/stats")

    def reset_zoho_stats(self) -> None:
        self.call("POST", "/_sandbox/zoho/stats/reset")

    def zoho_requests(self, api: str | None = None) -> list[dict[str, Any]]:
        """The Zoho request log (``api``: ``crm`` or ``accounts``), without secrets."""
        return self.call("GET", "/_sandbox/zoho/requests" + (f"?api={api}" if api else ""))["requests"]

    def zoho_settings(self, **settings: Any) -> dict[str, Any]:
        """Show or change ``multi_currency``, ``territories_enabled``, ``latency``, ``retry_after_header``,
        ``scope_missing`` (tables whose scope the token lacks)."""
        return self.call("POST", "/_sandbox/zoho/settings", settings)

    def zoho_token_settings(self, **settings: Any) -> dict[str, Any]:
        """Change ``expires_in``, ``access_token_max_uses`` or ``mint_limit`` ({count, seconds})."""
        return self.call("POST", "/_sandbox/zoho/tokens/settings", settings)

    def zoho_expire_access_token(self, access_token: str | None = None) -> int:
        """Expire one access token (every live one by default) now; the CRM then answers INVALID_TOKEN."""
        body = {"access_token": access_token} if access_token else {}
        return self.call("POST", "/_sandbox/zoho/tokens/expire", body)["expired"]

    def zoho_revoke_refresh_token(self, refresh_token: str | None = None) -> int:
        """Revoke a refresh token (every one by default) and the access tokens minted from it."""
        body = {"refresh_token": refresh_token} if refresh_token else {}
        return self.call("POST", "/_sandbox/zoho/tokens/revoke", body)["revoked"]

    def zoho_issued_tokens(self) -> dict[str, list[str]]:
        """Every Zoho access token, refresh token and grant code handed out (to grep outputs for leaks)."""
        return self.call("GET", "/_sandbox/zoho/tokens/issued")

    def inject_fault(self, api: str, status: int, count: int = 1, retry_after: float | None = None) -> None:
        body: dict[str, Any] = {"api": api, "status": status, "count": count}
        if retry_after is not None:
            body["retry_after"] = retry_after
        self.call("POST", "/_sandbox/faults", body)

    def plan_fault(self, api: str, kind: str, count: int = 1, path: str = "", **options: Any) -> dict[str, Any]:
        """Queue a fault kind for the next `count` requests to `api` whose path ends with `path`:
        ``expire``, ``reset``, ``truncate``, ``cut``, ``slow``, ``echo``, ``endless``, or ``respond``
        with ``json=`` (or ``body=`` text, ``status=``, ``content_type=``) to plant a literal answer."""
        return self.call("POST", "/_sandbox/faults", {"api": api, "kind": kind, "count": count, "path": path, **options})

    def add_fault_rule(self, api: str, rule: str) -> dict[str, Any]:
        """Add one ``--faults`` rule for `api` now, e.g. ``reset@0.1`` or ``slow=1.5``."""
        return self.call("POST", "/_sandbox/faults", {"api": api, "spec": rule})

    def clear_faults(self, api: str | None = None) -> None:
        self.call("DELETE", "/_sandbox/faults" + (f"?api={api}" if api else ""))


def _pump(stream: Any, lines: queue.Queue[str | None]) -> None:
    """Forward the child's stdout lines; ``None`` marks its end."""
    for line in stream:
        lines.put(line)
    lines.put(None)


__all__ = ["READY_LINE", "SandboxError", "SandboxProcess"]
