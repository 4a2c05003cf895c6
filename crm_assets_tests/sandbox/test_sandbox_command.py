"""`python -m crm_assets.sandbox` from a shell: a busy port is one clear line, and the output is a
script another shell can source."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SMALL = ["--scale", "0.05"]


def test_a_port_in_use_is_one_clear_line_and_exit_code_2():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "crm_assets.sandbox", "--port", str(port), *SMALL],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0], done.stderr
    assert done.stdout == ""


def test_its_output_can_be_sourced_by_another_shell_while_it_serves(tmp_path):
    """What the README tells a user to do: run it in the background into a file, wait for the
    ready line, source the file."""
    env_file = tmp_path / "sandbox.env"
    with open(env_file, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "crm_assets.sandbox", *SMALL], stdout=out, stderr=subprocess.DEVNULL
        )
    try:
        deadline = time.monotonic() + 120
        while "# sandbox ready" not in env_file.read_text():
            assert server.poll() is None and time.monotonic() < deadline, "the sandbox never got ready"
            time.sleep(0.1)
        shell = subprocess.run(
            ["sh", "-c", f'. "{env_file}" && printf %s "$HARVEST_API_URL"'],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=Path.cwd(),
        )
        assert shell.returncode == 0, shell.stderr
        api_url = shell.stdout
        assert api_url.startswith("http://127.0.0.1:") and api_url.endswith("/harvest/v2"), api_url
        with urllib.request.urlopen(
            api_url.rsplit("/harvest/", 1)[0] + "/_sandbox/harvest/info", timeout=10
        ) as r:
            assert r.status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
