"""``python -m crm_assets.sandbox``: serve the emulated APIs and print where they are.

The ``export`` lines on stdout point the platform at the sandbox: stdout is a shell script, so
redirect it to a file and source that file from another shell once it ends with the
``# sandbox ready`` line, which also tells :class:`SandboxProcess` that the server is accepting
connections. The server runs until SIGTERM/SIGINT, ``--lifetime`` seconds, or (``--exit-with-stdin``)
until its stdin closes, which is how a child stops when the process that started it dies.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import signal
import sys
import threading
import time

from crm_assets.sandbox import READY_LINE
from crm_assets.sandbox.harvest import ACCOUNT_ID, COMPANY, HarvestEmulator
from crm_assets.sandbox.harvest_id import HarvestIdEmulator, TokenRegistry
from crm_assets.sandbox.salesforce import SalesforceEmulator
from crm_assets.sandbox.faults import FaultInjector
from crm_assets.sandbox.server import SandboxServer, serve
from crm_assets.sandbox.zoho import zoho_emulators


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m crm_assets.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--seed", type=int, default=1, help="data seed (default 1)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the large tables (1 = 5,000 time entries)")
    parser.add_argument("--faults", default=None,
                        help="faults and rate limits for any API, e.g. harvest:429@0.1,zoho:reset@0.1,"
                             "salesforce:expire@0.05,harvest:rate=100/15 (every kind: crm_assets/sandbox/faults.py)")
    parser.add_argument("--anchor", type=dt.date.fromisoformat, default=None,
                        help="YYYY-MM-DD; seeded timestamps fall in the 400 days before it (default: today, UTC)")
    parser.add_argument("--lifetime", type=float, default=0, help="stop after this many seconds (0 = until SIGTERM/SIGINT)")
    parser.add_argument("--exit-with-stdin", action="store_true",
                        help="stop when stdin reaches end of file (the parent holding its other end is gone)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    try:
        faults = FaultInjector(args.seed, args.faults)
    except ValueError as exc:
        print(f"--faults: {exc}", file=sys.stderr)
        return 2
    tokens = TokenRegistry()  # Harvest ID issues OAuth access tokens that the Harvest API accepts
    harvest = HarvestEmulator(seed=args.seed, scale=args.scale, anchor=args.anchor, faults=faults, tokens=tokens)
    harvest_id = HarvestIdEmulator(tokens, accounts=[
        {"id": int(ACCOUNT_ID), "name": COMPANY["name"], "product": "harvest"},
        {"id": int(ACCOUNT_ID) + 1, "name": f"{COMPANY['name']} Forecast", "product": "forecast"},
    ], faults=faults)
    try:
        salesforce = SalesforceEmulator(faults, seed=args.seed)  # HTTPS on its own port, admin routes here
        emulators = [harvest, harvest_id, salesforce, *zoho_emulators(args.seed, args.scale, args.anchor, faults)]
        server = SandboxServer((args.host, args.port), emulators, faults, verbose=args.verbose)
        salesforce.listen(args.host)
    except OSError as exc:
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
              " (pick another --port, or 0 for a free one)", file=sys.stderr)
        return 2

    def announce() -> None:
        for key, value in server.env().items():
            print(f"export {key}={shlex.quote(value)}")
        print(READY_LINE, flush=True)
        if args.exit_with_stdin:  # started once serve() handles SIGTERM, which it raises
            threading.Thread(target=_stop_at_stdin_eof, name="sandbox-stdin-watch", daemon=True).start()
        print(f"sandbox: serving {server.url} (seed {args.seed}, scale {args.scale:g}, "
              f"started in {time.monotonic() - began:.1f}s)", file=sys.stderr, flush=True)

    serve(server, args.lifetime, announce)
    return 0


def _stop_at_stdin_eof() -> None:
    """Block until stdin closes, then stop the server the way SIGTERM does: sent to the main
    thread, which waits in serve() (a signal raised in this thread would not wake it)."""
    while sys.stdin.buffer.read(4096):
        pass
    signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main())
