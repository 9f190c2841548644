"""ddb-responder's client side: one running responder's HTTP API, and the commands that use it."""

from __future__ import annotations

import argparse
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddb_failover.config import Config, ConfigError
from responder.records import render, report_markdown

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# `plan`: the plan is not ready; the plan is not evaluated yet, or stale, so nobody can say.
EXIT_NOT_READY, EXIT_UNKNOWN = 3, 4
DEFAULT_URL = "http://127.0.0.1:9746"
URL_ENV = "DDB_RESPONDER_URL"
TOKEN_ENV = "DDB_RESPONDER_TOKEN_FILE"
TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.5
# Commands that change something: they need the token, and say who asked.
MUTATING = (
    "failover",
    "switchover",
    "freeze",
    "unfreeze",
    "retry",
    "skip",
    "abort",
    "approve",
    "decline",
    "repair",
)
Json = Any


class CliError(Exception):
    """A failure to report on stderr with an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


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
    scheme = "https" if config.responder.tls is not None else "http"
    return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The client side of TLS: --cacert to trust, --cert and --key for mTLS; None for defaults."""
    if args.cacert is None and args.cert is None:
        return None
    try:
        context = ssl.create_default_context(cafile=str(args.cacert) if args.cacert else None)
        if args.cert is not None:
            context.load_cert_chain(str(args.cert), str(args.key) if args.key else None)
    except (OSError, ssl.SSLError) as exc:
        raise CliError(f"TLS files: {exc}", EXIT_USAGE) from None
    return context


def token(args: argparse.Namespace, config: Config | None, mutating: bool) -> str | None:
    """The bearer token: --token-file, $DDB_RESPONDER_TOKEN_FILE, else the config's own.

    From the config: the first operator token for a command that changes something, the
    first viewer or operator token for one that reads (responder.auth.tokens).
    """
    path = args.token_file or (Path(os.environ[TOKEN_ENV]) if os.environ.get(TOKEN_ENV) else None)
    if path is not None:
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(f"cannot read token file {path}: {exc.strerror}", EXIT_USAGE) from None
        if not value:
            raise CliError(f"token file {path} is empty", EXIT_USAGE)
        return value
    if config is None:
        return None
    roles = ("operator",) if mutating else ("viewer", "operator")
    named = next((t for r in roles for t in config.responder.auth.tokens if t.role == r), None)
    if named is None:
        return None
    try:
        return named.secret.read()
    except ConfigError as exc:
        raise CliError(f"token {named.name!r}: {exc}", EXIT_USAGE) from None


@dataclass(frozen=True)
class Client:
    """Calls to one responder's API with a bearer token."""

    url: str
    bearer: str | None
    context: ssl.SSLContext | None = None

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One API call; (status, decoded JSON). CliError when the responder cannot be reached."""
        url = f"{self.url}{path}"
        data = json.dumps(body).encode("utf-8") if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.bearer is not None:
            headers["Authorization"] = f"Bearer {self.bearer}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(
                request, timeout=TIMEOUT_SECONDS, context=self.context
            ) as answer:
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

    def ok(self, command: str, method: str, path: str, body: Any = None, show: bool = False) -> Any:
        """The answer of a call that must succeed; CliError naming the refusal otherwise."""
        status, answer = self.call(method, path, body)
        if status >= 400:
            message = answer.get("error") if isinstance(answer, dict) else None
            if show:
                print(json.dumps(answer, indent=2))
            raise CliError(f"{command} refused: HTTP {status}: {message or 'no detail'}")
        return answer


def _print(args: argparse.Namespace, answer: Json, text: Callable[[Json], str]) -> int:
    print(json.dumps(answer, indent=2) if args.json else text(answer))
    return EXIT_OK


def _wait_finished(client: Client, transition_id: str, seconds: float) -> Json | None:
    """The transition once it is no longer in progress; None if still running after seconds."""
    deadline = time.monotonic() + seconds
    path = f"/api/v1/transitions/{urllib.parse.quote(transition_id)}"
    while True:
        record = client.ok("wait", "GET", path)["transition"]
        if record["result"] != "in_progress":
            return record
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_SECONDS)  # polling a remote API: there is nothing to wait on locally


def _switchover_waited(args: argparse.Namespace, client: Client, transition_id: str) -> int:
    """Wait for the switchover to end; print its figures; 0 only when it completed."""
    finished = _wait_finished(client, transition_id, args.wait)
    if finished is None:
        raise CliError(
            f"switchover {transition_id} still in progress after {args.wait:g}s "
            "(`ddb-responder status` shows why)"
        )
    path = f"/api/v1/transitions/{urllib.parse.quote(transition_id, safe='')}/report"
    report = client.ok("report", "GET", path)
    _print(args, report, render.switchover)
    return EXIT_OK if finished["result"] == "completed" else EXIT_FAILED


def _run_line(run: Json) -> str:
    outcome = run.get("outcome") or run.get("phase")
    where = f"{run.get('home')} -> {run.get('target')}" if run.get("target") else ""
    reason = f": {run['reason']}" if run.get("reason") else ""
    return f"{run.get('started_at')}  {outcome:<11} {where}{reason}"


def _practice_text(status: Json) -> str:
    lines = [
        f"practice: {'enabled' if status['enabled'] else 'disabled'}; next start "
        f"{status['next_start'] or '-'}; last success {status['last_success'] or 'never'}"
        + ("; OVERDUE" if status["overdue"] else "")
    ]
    lines += [_run_line(r) for r in status["runs"]] or ["no runs in the history"]
    return "\n".join(lines)


def practice(args: argparse.Namespace, client: Client) -> int:
    """`practice status`; `practice run`: 0 once begun, or with --wait only on SUCCEEDED."""
    if args.what == "status":
        return _print(args, client.ok("practice", "GET", "/api/v1/practice"), _practice_text)
    body: dict[str, Any] = {"now": args.now}
    if args.hold is not None:
        body["hold_seconds"] = args.hold
    begun = client.ok("practice run", "POST", "/api/v1/practice/run", body, show=args.json)
    if args.wait <= 0:
        return _print(args, begun, lambda a: f"practice run {a['run']} begun ({a['transition']})")
    deadline = time.monotonic() + args.wait
    while True:
        status = client.ok("practice", "GET", "/api/v1/practice")
        run = next((r for r in status["runs"] if r["id"] == begun["run"]), None)
        if run is not None and run["phase"] == "ended":
            _print(args, run, _run_line)
            return EXIT_OK if run["outcome"] == "SUCCEEDED" else EXIT_FAILED
        if time.monotonic() > deadline:
            raise CliError(f"practice run {begun['run']} not ended after {args.wait:g}s")
        time.sleep(POLL_SECONDS)


def plan_exit(document: Json, to_region: str | None) -> int:
    """0 ready, 3 not ready, 4 not evaluated yet or stale (nobody can say)."""
    if to_region is not None and to_region == document.get("active_region"):
        return EXIT_OK
    if document.get("stale") or document.get("ready") is None:
        return EXIT_UNKNOWN
    return EXIT_OK if document["ready"] else EXIT_NOT_READY


def plan(args: argparse.Namespace, client: Client) -> int:
    """Print the responder's last evaluation of the plan; the exit code says if it is ready."""
    query = f"?to={urllib.parse.quote(args.to)}" if args.to else ""
    status, answer = client.call("GET", f"/api/v1/plan{query}")
    if status >= 400 or not isinstance(answer, dict):
        message = answer.get("error") if isinstance(answer, dict) else None
        code = EXIT_USAGE if status == 400 else EXIT_FAILED
        raise CliError(f"plan refused: HTTP {status}: {message or 'no detail'}", code)
    if args.json:
        print(json.dumps(answer, indent=2))
    elif args.to is not None and args.to == answer.get("active_region"):
        print(f"{args.to} is the active region: there is no move to plan")
    else:
        print(render.plan(answer))
    return plan_exit(answer, args.to)


def run(args: argparse.Namespace, config: Config | None) -> int:
    """The commands that talk to a running responder."""
    command = args.command
    mutating = command in MUTATING or (command == "practice" and args.what == "run")
    client = Client(base_url(args, config), token(args, config, mutating), tls_context(args))
    if mutating and client.bearer is None:
        raise CliError(
            f"no operator token: pass --token-file, set ${TOKEN_ENV}, or --config with an "
            "operator token in responder.auth.tokens",
            EXIT_USAGE,
        )
    if command == "status":
        return _print(args, client.ok(command, "GET", "/api/v1/status"), render.status)
    if command == "history":
        answer = client.ok(command, "GET", f"/api/v1/history?limit={args.limit}")
        return _print(args, answer, render.history)
    if command == "plan":
        return plan(args, client)
    if command == "practice":
        return practice(args, client)
    if command == "report":
        path = f"/api/v1/transitions/{urllib.parse.quote(args.transition_id, safe='')}/report"
        answer = client.ok(command, "GET", path)
        args.json = args.json or args.format == "json"
        return _print(args, answer, report_markdown.markdown)
    who = {"reason": args.reason}
    if command in ("failover", "switchover"):
        body = {**who, "to": args.to, "force": args.force}
        answer = client.ok(command, "POST", f"/api/v1/{command}", body, show=args.json)
        t = answer["transition"]
        if command == "switchover" and args.wait > 0:
            return _switchover_waited(args, client, t["id"])
        return _print(
            args,
            answer,
            lambda _: (
                f"transition {t['id']} accepted: {t['kind']} {t['from_region']} -> {t['to_region']}"
            ),
        )
    if command in ("freeze", "unfreeze"):
        answer = client.ok(command, "POST", f"/api/v1/{command}", who, show=args.json)
        return _print(args, answer, render.status)
    body = {**who, "action": args.action} if command == "skip" else dict(who)
    if command in ("approve", "decline"):
        body["transition_id"] = args.id
    if command == "abort":
        body["rollback"] = args.rollback
    if command == "repair" and args.action:
        body["action"] = args.action
    answer = client.ok(command, "POST", f"/api/v1/{command}", body, show=args.json)
    record = answer["transition"]
    if command != "abort" or args.wait <= 0:
        return _print(args, answer, lambda _: f"{command}: {render.transition_line(record)}")
    finished = _wait_finished(client, record["id"], args.wait)
    if finished is None:
        raise CliError(
            f"abort of {record['id']} requested; still in progress after {args.wait:g}s "
            "(`ddb-responder status` shows why)"
        )
    return _print(
        args,
        {"transition": finished},
        lambda a: render.history({"transitions": [a["transition"]], "decisions": []}),
    )
