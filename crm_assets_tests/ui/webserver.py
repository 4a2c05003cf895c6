"""`dagster-webserver` as a child process of a test: started on a free loopback port in its own
process group, waited for until its code location has loaded, queried over GraphQL, and
stopped (the whole group, with its code server) within a bounded time."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 3.0

LOCATIONS_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def project_environment(tmp: Path, sandbox_env: Mapping[str, str], start_date: str) -> dict[str, str]:
    """The environment of a fresh project under `tmp`: a DAGSTER_HOME holding a copy of the
    shipped dagster.yaml, a new warehouse file, the sandbox's variables and both sources'
    start date."""
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        **sandbox_env,
        "HARVEST_START_DATE": start_date,
        "ZOHO_START_DATE": start_date,
        "DAGSTER_HOME": str(home),
        "CRM_ASSETS_DUCKDB_PATH": str(tmp / "crm.duckdb"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Webserver:
    """One `dagster-webserver -m <module>` with the given environment and working directory."""

    def __init__(self, module: str, cwd: Path, env: Mapping[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-m", module, "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=cwd,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the code server too
        )

    def graphql(self, query: str, variables: dict[str, Any] | None = None, timeout: float = 30.0) -> dict:
        """The `data` of a GraphQL answer; an answer with `errors` raises, naming them."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.load(response)
        if answer.get("errors"):
            raise AssertionError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> float:
        """Seconds until the code location has loaded; fails with the webserver's log when it
        exits, reports a load error, or is not ready within `timeout`."""
        began = time.monotonic()
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"dagster-webserver exited with {self._process.returncode}:\n{self.log()}")
            try:
                entries = self.graphql(LOCATIONS_QUERY, timeout=5)["workspaceOrError"]["locationEntries"]
            except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
                entries = []
            for entry in entries:
                error = entry["locationOrLoadError"]
                if error and error["__typename"] == "PythonError":
                    raise RuntimeError(f"code location {entry['name']} failed to load: {error['message']}")
            if entries and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries):
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise RuntimeError(f"dagster-webserver not ready within {timeout:.0f}s:\n{self.log()}")
            time.sleep(0.5)

    def log(self, tail: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-tail:]

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM to the process group (webserver and code server), SIGKILL to whatever of it
        outlasts `timeout`."""
        group = self._process.pid
        try:
            _signal_group(group, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _signal_group(group, 0) and time.monotonic() < deadline:
                self._process.poll()  # reap the leader, so a finished group reads as gone
                time.sleep(0.1)
            _signal_group(group, signal.SIGKILL)
            self._process.wait(timeout=timeout)
        finally:
            self._log.close()


def _signal_group(group: int, sig: int) -> bool:
    """Send `sig` to the process group; False when no process of it is left."""
    try:
        os.killpg(group, sig)
        return True
    except ProcessLookupError:
        return False
