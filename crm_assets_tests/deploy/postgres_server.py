"""A throwaway PostgreSQL server for the deploy test and the bookkeeping benchmark.

It runs Debian's (or any) PostgreSQL binaries found under /usr/lib/postgresql/<version>/bin,
in a fresh temporary folder, listening on 127.0.0.1 at a free port and on a Unix socket in
that folder (never /var/run/postgresql, which needs the distribution's service set-up).
PostgreSQL refuses to run as root, so as root the server runs as the `postgres` account the
Debian package creates (else `nobody`) through `runuser`; the folder is handed to that user.
Connections over TCP need the password the server is created with, so whoever connects
proves that the credentials reached it.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 15
USERNAME = "dagster"
DATABASE = "dagster"


def postgres_bin_dir() -> Path | None:
    """The newest PostgreSQL server's bin folder on this machine (initdb, pg_ctl), or None."""
    candidates = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    on_path = shutil.which("pg_ctl")
    if on_path and (Path(on_path).resolve().parent / "initdb").is_file():
        return Path(on_path).resolve().parent
    return None


def _service_user() -> str | None:
    """The account to run the server as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' account exists")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """`with PostgresServer() as pg:` a running server; `pg.env` holds the DAGSTER_PG_* variables
    deploy/dagster.yaml reads. Stopped (fast shutdown, then killed) and deleted on exit.

    `durable=False` turns off fsync, for tests that do not measure anything.
    """

    def __init__(self, durable: bool = True):
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise FileNotFoundError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        self.bin_dir = bin_dir
        self.durable = durable
        self.user = _service_user()
        self.password = secrets.token_urlsafe(16)
        self.port = 0
        self.root: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": USERNAME,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": DATABASE,
        }

    @property
    def url(self) -> str:
        return f"postgresql://{USERNAME}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def __enter__(self) -> PostgresServer:
        self.root = Path(tempfile.mkdtemp(prefix="crm_assets_pg_"))
        try:
            self._create()
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _create(self) -> None:
        assert self.root is not None
        password_file = self.root / "password"
        password_file.write_text(self.password)
        if self.user:
            record = pwd.getpwnam(self.user)
            os.chown(self.root, record.pw_uid, record.pw_gid)
            os.chown(password_file, record.pw_uid, record.pw_gid)
        done = self._run(
            "initdb", "-D", str(self.root / "data"), "-U", USERNAME, "-E", "UTF8", "--no-sync",
            "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}",
            timeout=120,
        )
        password_file.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")

    def _start(self) -> None:
        assert self.root is not None
        options = f"-h 127.0.0.1 -k {self.root} -c max_connections=100"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        for _ in range(3):  # the free port may be taken between probing and binding it
            self.port = _free_port()
            done = self._run(
                "pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "server.log"),
                "-o", f"{options} -p {self.port}", "-w", "-t", str(START_TIMEOUT_SECONDS), "start",
                timeout=START_TIMEOUT_SECONDS + 10,
            )
            if done.returncode == 0:
                break
        else:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PostgreSQL did not start: {done.stderr}\n{log}")
        done = self._run(
            "psql", "-h", str(self.root), "-p", str(self.port), "-U", USERNAME, "-d", "postgres",
            "-c", f"CREATE DATABASE {DATABASE}", timeout=30,
        )
        if done.returncode != 0:
            raise RuntimeError(f"could not create database {DATABASE}: {done.stderr}")

    def __exit__(self, *exc_info) -> None:
        if self.root is None:
            return
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "-t", str(STOP_TIMEOUT_SECONDS),
                          "stop", timeout=STOP_TIMEOUT_SECONDS + 5)
            except subprocess.TimeoutExpired:
                pass
            self._kill_leftover(data)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    @staticmethod
    def _kill_leftover(data: Path) -> None:
        """SIGKILL the postmaster this server started if fast shutdown did not end it."""
        pid_file = data / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 9)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)

