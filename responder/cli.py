"""ddb-responder: serve the responder, or talk to a running one over its HTTP API (like amtool)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ddb_failover.config import CONFIG_ENV, Config, ConfigError, load

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_URL = "http://127.0.0.1:9746"
URL_ENV = "DDB_RESPONDER_URL"
GUNICORN_CONF = Path(__file__).with_name("gunicorn_conf.py")
TIMEOUT_SECONDS = 10.0


class CliError(Exception):
    """A failure to report on stderr with an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: options common to all commands may follow the command."""
    # SUPPRESS: a subcommand's copy of an option must not reset a value given before it.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--config", help=f"config file (default: ${CONFIG_ENV})")
    common.add_argument(
        "--url", help=f"responder URL (default: ${URL_ENV}, config listen, or {DEFAULT_URL})"
    )
    common.add_argument(
        "--token-file",
        type=Path,
        help="bearer token file (default: the config's responder.webhook_token)",
    )
    common.add_argument("--json", action="store_true", help="print the raw JSON answer")
    parser = argparse.ArgumentParser(prog="ddb-responder", description=__doc__, parents=[common])
    parser.set_defaults(config=None, url=None, token_file=None, json=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", parents=[common], help="run the responder under gunicorn")
    serve.add_argument("--listen", help="HOST:PORT, overriding responder.listen")
    serve.add_argument("--workers", type=int, help="gunicorn worker processes")
    commands.add_parser("status", parents=[common], help="show the responder's state")
    history = commands.add_parser("history", parents=[common], help="show transitions, decisions")
    history.add_argument("--limit", type=int, default=20, help="entries of each kind (20)")
    failover = commands.add_parser("failover", parents=[common], help="move traffic to a region")
    failover.add_argument("--to", required=True, metavar="REGION", help="the target region")
    failover.add_argument("--reason", default="", help="why, for the history")
    failover.add_argument(
        "--force",
        action="store_true",
        help="skip dwell and the hourly cap (readiness still applies)",
    )
    freeze = commands.add_parser("freeze", parents=[common], help="stop automatic transitions")
    freeze.add_argument("--reason", default="", help="why, for the status")
    unfreeze = commands.add_parser("unfreeze", parents=[common], help="resume automatic ones")
    unfreeze.add_argument("--reason", default="", help="why")
    commands.add_parser("check-config", parents=[common], help="validate the config and exit")
    commands.add_parser(
        "init-state", parents=[common], help="create the DynamoDB control table (idempotent)"
    )
    return parser.parse_args(argv)


def _config(args: argparse.Namespace, required: bool) -> Config | None:
    if args.config is None and not os.environ.get(CONFIG_ENV) and not required:
        return None
    try:
        return load(args.config)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def base_url(args: argparse.Namespace, config: Config | None) -> str:
    """--url, $DDB_RESPONDER_URL, the config's listen address (on loopback), or the default."""
    if args.url:
        return str(args.url).rstrip("/")
    if os.environ.get(URL_ENV):
        return os.environ[URL_ENV].rstrip("/")
    if config is None:
        return DEFAULT_URL
    host, _, port = config.responder.listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def token(args: argparse.Namespace, config: Config | None) -> str | None:
    """The bearer token from --token-file, else the config's webhook_token secret."""
    if args.token_file is not None:
        try:
            value = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(f"cannot read token file {args.token_file}: {exc.strerror}", 2) from None
        if not value:
            raise CliError(f"token file {args.token_file} is empty", EXIT_USAGE)
        return value
    if config is None:
        return None
    try:
        return config.responder.webhook_token.read()
    except ConfigError as exc:
        raise CliError(f"no token: {exc}", EXIT_USAGE) from None


def request(url: str, method: str, bearer: str | None, body: Any = None) -> tuple[int, Any]:
    """One API call; (status, decoded JSON). CliError when the responder cannot be reached."""
    data = json.dumps(body).encode("utf-8") if body is not None else None
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    call = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(call, timeout=TIMEOUT_SECONDS) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CliError(f"cannot reach the responder at {url}: {reason}") from None
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        raise CliError(f"{url}: HTTP {status} with a body that is not JSON") from None


def _operator() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):
        return "operator"


def render_status(status: dict[str, Any]) -> str:
    """The status as a few human lines."""
    lines = [
        f"active region:  {status.get('active_region')}",
        f"desired region: {status.get('desired_region')}",
        f"phase:          {status.get('phase')}",
    ]
    freeze = status.get("freeze") or {}
    frozen = f"yes, by {freeze.get('by')}: {freeze.get('reason')}" if status.get("frozen") else "no"
    lines.append(f"frozen:         {frozen}")
    if status.get("dry_run"):
        lines.append("dry run:        yes")
    last = status.get("last_transition")
    if last:
        lines.append(
            f"last transition: {last['id']} {last['kind']} {last['from_region']} -> "
            f"{last['to_region']} {last['result']} (started {last['started_at']})"
        )
        lines.extend(f"  {s['action']}: {s['result']}" for s in last.get("steps", ()))
    for name, result in sorted((status.get("actions") or {}).items()):
        lines.append(f"action {name}: {result.get('result')} at {result.get('at')}")
    return "\n".join(lines)


def render_history(history: dict[str, Any]) -> str:
    """Transitions then decisions, newest first, one line each."""
    lines = ["TRANSITIONS"]
    for t in history.get("transitions", ()):
        lines.append(
            f"{t['started_at']}  {t['id']}  {t['kind']:8} {t['from_region']} -> {t['to_region']}"
            f"  {t['result']}" + ("  (dry run)" if t.get("dry_run") else "")
        )
        lines.extend(f"    {s['action']}: {s['result']}" for s in t.get("steps", ()))
    lines.append("DECISIONS")
    for d in history.get("decisions", ()):
        lines.append(f"{d['at']}  {d['kind']:9} {d['reason']}")
    return "\n".join(lines)


def _serving_config(args: argparse.Namespace) -> Config:
    """The config, with the secret serving needs readable; CliError naming the problem."""
    config = _config(args, required=True)
    assert config is not None
    try:
        config.responder.webhook_token.read()
    except ConfigError as exc:
        raise CliError(f"responder.webhook_token: {exc}", EXIT_USAGE) from None
    return config


def check_config(args: argparse.Namespace) -> int:
    """Validate the config and the secrets the responder needs; print a summary."""
    config = _serving_config(args)
    responder = config.responder
    print(f"config OK: {args.config or os.environ.get(CONFIG_ENV)}")
    print(f"tables:  {', '.join(config.tables)}")
    print(f"regions: {', '.join(config.region_names)} (primary {config.primary})")
    print(f"listen:  {responder.listen}")
    print(f"state:   {responder.state.backend}")
    policy = responder.policy
    print(
        f"policy:  failback={policy.failback} min_dwell={policy.min_dwell_seconds:g}s "
        f"max_per_hour={policy.max_transitions_per_hour} rpo={policy.rpo_seconds:g}s "
        f"dry_run={str(policy.dry_run).lower()}"
    )
    print(f"actions: {len(responder.actions)}")
    for action in responder.actions:
        print(f"  {action.name} ({action.type})")
    return EXIT_OK


def init_state(args: argparse.Namespace) -> int:
    """Create the DynamoDB control table the config names; never done implicitly."""
    from responder.state.base import StoreError
    from responder.state.dynamodb import create_control_table

    config = _config(args, required=True)
    assert config is not None
    try:
        created = create_control_table(config)
    except StoreError as exc:
        raise CliError(f"init-state: {exc}") from None
    state = config.responder.state
    print(f"control table {getattr(state, 'table', '?')}: {'created' if created else 'exists'}")
    return EXIT_OK


def serve(args: argparse.Namespace) -> int:
    """Validate, then exec gunicorn with the responder's settings; does not return."""
    _serving_config(args)  # fail here, with a clear message, not in every worker
    os.environ[CONFIG_ENV] = str(Path(args.config or os.environ[CONFIG_ENV]).resolve())
    argv = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]
    if args.listen:
        argv += ["--bind", args.listen]
    if args.workers:
        argv += ["--workers", str(args.workers)]
    sys.stdout.flush()
    os.execv(sys.executable, argv)
    return EXIT_FAILED  # not reached


def remote(args: argparse.Namespace) -> int:
    """status, history, failover, freeze, unfreeze: one call to a running responder."""
    config = _config(args, required=False)
    url = base_url(args, config)
    mutating = args.command in ("failover", "freeze", "unfreeze")
    bearer = token(args, config)
    if mutating and bearer is None:
        raise CliError("no token: pass --token-file, or --config with a webhook_token", 2)
    if args.command == "status":
        status, body = request(f"{url}/api/v1/status", "GET", bearer)
    elif args.command == "history":
        status, body = request(f"{url}/api/v1/history?limit={args.limit}", "GET", bearer)
    elif args.command == "failover":
        payload = {"to": args.to, "reason": args.reason, "force": args.force, "by": _operator()}
        status, body = request(f"{url}/api/v1/failover", "POST", bearer, payload)
    else:
        payload = {"reason": args.reason, "by": _operator()}
        status, body = request(f"{url}/api/v1/{args.command}", "POST", bearer, payload)
    if status >= 400:
        message = body.get("error") if isinstance(body, dict) else None
        if args.json:
            print(json.dumps(body, indent=2))
        raise CliError(f"{args.command} refused: HTTP {status}: {message or 'no detail'}")
    if args.json:
        print(json.dumps(body, indent=2))
    elif args.command == "history":
        print(render_history(body))
    elif args.command == "failover":
        t = body["transition"]
        print(f"transition {t['id']} accepted: {t['kind']} {t['from_region']} -> {t['to_region']}")
    else:
        print(render_status(body))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of ddb-responder and python -m responder."""
    args = parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "check-config":
            return check_config(args)
        if args.command == "init-state":
            return init_state(args)
        return remote(args)
    except CliError as exc:
        print(f"ddb-responder: {exc}", file=sys.stderr)
        return exc.code
