"""Run an outside command with a deadline, mapping its failures to our two error classes."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence

from ddb_failover.logs import redact
from responder.actions.base import Transition
from responder.model import fence
from responder.model.errors import PermanentError, TemporaryError

STDERR_TAIL_CHARS = 500
# All a command inherits from the responder's environment, besides what its action lists
# in pass_env: the responder's own tokens and keys must never reach a child process.
INHERITED_ENV = ("PATH", "LANG", "HOME")
# After SIGKILL the pipes close at once unless a grandchild escaped the process group.
_REAP_SECONDS = 5.0
PR_SET_PDEATHSIG = 1


def _death_signal() -> Callable[[], None] | None:
    """What the child runs before exec so that it is killed when the worker dies (Linux).

    Resolved here, before any fork: the child only makes the one system call. The signal
    comes when the thread that started the child ends, and an attempt's thread waits for
    its command, so in effect: when the worker process dies, its commands die with it.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl

    def die_with_parent() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return die_with_parent


_DIE_WITH_PARENT = _death_signal()


def transition_env(transition: Transition) -> dict[str, str]:
    """The variables a command learns the transition from."""
    env = {
        "DDB_FAILOVER_TRANSITION_ID": transition.id,
        "DDB_FAILOVER_TRANSITION_KIND": transition.kind,
        "DDB_FAILOVER_FROM_REGION": transition.from_region or "",
        "DDB_FAILOVER_TO_REGION": transition.to_region,
        "DDB_FAILOVER_DRY_RUN": "1" if transition.dry_run else "0",
    }
    if transition.fence is not None:
        env["DDB_FAILOVER_FENCE"] = transition.fence
    return env


def tail(data: bytes, limit: int = STDERR_TAIL_CHARS) -> str:
    """The last limit characters of a command's output, decoded leniently and trimmed;
    redacted first, so a cut through a secret cannot leave part of it."""
    text = redact(data.decode("utf-8", errors="replace").strip())
    return text if len(text) <= limit else "..." + text[-limit:]


def child_env(pass_env: Sequence[str], extra_env: Mapping[str, str] | None) -> dict[str, str]:
    """The minimal environment a command gets: PATH, LANG, HOME, pass_env, then extra_env."""
    names = (*INHERITED_ENV, *pass_env)
    env = {name: os.environ[name] for name in names if name in os.environ}
    return {**env, **(extra_env or {})}


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    what: str,
    extra_env: Mapping[str, str] | None = None,
    pass_env: Sequence[str] = (),
) -> None:
    """Run argv to completion within timeout; TemporaryError on failure or timeout."""
    env = child_env(pass_env, extra_env)
    fence.check(f"{what}: run {argv[0]!r}")  # a command changes things: not after the lease
    try:
        # A new session makes the command a process group we can kill whole on timeout.
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
            preexec_fn=_DIE_WITH_PARENT,
        )
    except OSError as exc:
        raise PermanentError(f"{what}: cannot run {argv[0]!r}: {exc.strerror or exc}") from None
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise TemporaryError(f"{what}: {argv[0]!r} timed out after {timeout:g}s") from None
    if proc.returncode != 0:
        detail = tail(stderr)
        raise TemporaryError(
            f"{what}: {argv[0]!r} exited with status {proc.returncode}"
            + (f": {detail}" if detail else "")
        )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=_REAP_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
