"""Command line: serve the DigitalOcean API sandbox until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from werkzeug.serving import make_server

from ddb_failover import logs
from sandbox.do_api import spec
from sandbox.do_api.app import SandboxApp
from sandbox.do_api.seed import load_seed
from sandbox.net import serve_until_stopped

log = logging.getLogger("sandbox.do_api")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox.do_api", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token-file", type=Path, required=True, help="bearer token to accept")
    parser.add_argument("--seed", type=Path, required=True, help="JSON seed file")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def read_token(path: Path) -> str:
    """The token in path; ValueError when unreadable or empty."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read token file {path}: {exc.strerror}") from exc
    if not token:
        raise ValueError(f"token file {path} is empty")
    return token


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.setup(args.log_level)
    # werkzeug's access log would repeat ours; keep only its warnings.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        token = read_token(args.token_file)
        seed = load_seed(args.seed)
    except ValueError as exc:
        print(f"do_api: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    spec.openapi()  # parse the spec before listening, so the first call is not slow
    log.info("msg=%s seconds=%.2f", '"OpenAPI description loaded"', time.monotonic() - started)
    app = SandboxApp(seed, token)
    server = make_server(args.host, args.port, app, threaded=True)
    log.info("msg=listening url=http://%s:%d", args.host, server.server_port)
    try:
        serve_until_stopped(server)
    finally:
        app.stop()  # delayed calls end now; their threads are daemons, so none holds up exit
    return 0


if __name__ == "__main__":
    sys.exit(main())
