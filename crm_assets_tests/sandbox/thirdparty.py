"""Throwaway virtual environments for Harvest clients written by others (dlt, tap-harvest).

Each client gets its own venv under ``.venv-thirdparty/<name>`` at the repository root, so that
its pins never fight the project's. A venv is reused while its marker names the same
requirement; the folder ignores itself in git (a ``.gitignore`` holding ``*``). When pip cannot
install the client here (no network, no index), the calling test is skipped with pip's words.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENVS = ROOT / ".venv-thirdparty"
RUNNERS = Path(__file__).resolve().parent
INSTALL_TIMEOUT_SECONDS = 900


def client_python(name: str, requirement: str) -> Path:
    """The interpreter of a venv holding ``requirement``, installed from PyPI on first use."""
    home = VENVS / name
    python = home / "bin" / "python"
    marker = home / ".installed"
    if marker.exists() and marker.read_text() == requirement and python.exists():
        return python
    VENVS.mkdir(exist_ok=True)
    (VENVS / ".gitignore").write_text("*\n")
    shutil.rmtree(home, ignore_errors=True)
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True, timeout=300)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement],
        capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS,
    )
    if pip.returncode != 0:
        shutil.rmtree(home, ignore_errors=True)
        pytest.skip(f"cannot install {requirement} with pip here: {pip.stderr.strip()[-600:]}")
    marker.write_text(requirement)
    print(f"installed {requirement} into {home} in {time.monotonic() - began:.0f}s", file=sys.stderr)
    return python


def run_client(python: Path, runner: str, args: list[str], cwd: Path, timeout: float = 600,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run one of this folder's ``run_*.py`` scripts with a client's interpreter."""
    child_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    child_env.update(env or {})
    proc = subprocess.run([str(python), str(RUNNERS / runner), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=child_env)
    assert proc.returncode == 0, f"{runner} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return proc


def write_json(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj))
    return path
