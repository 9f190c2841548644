"""command: runs with the transition in its environment; remembers where it succeeded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ddb_failover.config import CommandAction
from responder.actions.base import Transition, reconcile
from responder.actions.command import Command
from responder.model import fence
from responder.model.errors import PermanentError, TemporaryError
from responder.model.fence import LeaseDeadlinePassed
from sandbox.net import wait_until
from tests.responder.test_actions_env_file import running

REPO = Path(__file__).resolve().parents[2]

EAST, WEST = "us-east-1", "eu-west-1"
VARIABLES = (
    "DDB_FAILOVER_TRANSITION_ID",
    "DDB_FAILOVER_TRANSITION_KIND",
    "DDB_FAILOVER_FROM_REGION",
    "DDB_FAILOVER_TO_REGION",
    "DDB_FAILOVER_DRY_RUN",
)


def transition(to: str = WEST, dry_run: bool = False, frm: str | None = EAST) -> Transition:
    return Transition(id="t-7", kind="failover", from_region=frm, to_region=to, dry_run=dry_run)


def recorder(log: Path) -> tuple[str, ...]:
    """A command that appends the transition variables it was given to log, one JSON line each."""
    code = (
        "import json, os; "
        f"keys = {VARIABLES!r}; "
        f"open({str(log)!r}, 'a').write(json.dumps([os.environ.get(k) for k in keys]) + '\\n')"
    )
    return (sys.executable, "-c", code)


def command(argv: tuple[str, ...], state: Path, timeout: float = 10.0) -> Command:
    config = CommandAction(type="command", name="notify", command=argv, timeout_seconds=timeout)
    return Command(config, state)


def runs(log: Path) -> list[list[str | None]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_first_run_applies_with_the_transition_in_its_environment(tmp_path: Path) -> None:
    log, state = tmp_path / "log", tmp_path / "state" / "command-notify.json"
    action = command(recorder(log), state)

    outcome = reconcile(action, transition(WEST))

    assert (outcome.result, outcome.before, outcome.after) == ("applied", None, WEST)
    assert runs(log) == [["t-7", "failover", EAST, WEST, "0"]]
    assert json.loads(state.read_text())["transition_id"] == "t-7"


def test_same_region_again_is_unchanged_and_does_not_run(tmp_path: Path) -> None:
    log, state = tmp_path / "log", tmp_path / "command-notify.json"
    action = command(recorder(log), state)
    reconcile(action, transition(WEST))

    outcome = reconcile(action, transition(WEST))

    assert (outcome.result, outcome.before) == ("unchanged", WEST)
    assert len(runs(log)) == 1


def test_other_region_runs_again(tmp_path: Path) -> None:
    log, state = tmp_path / "log", tmp_path / "command-notify.json"
    action = command(recorder(log), state)
    reconcile(action, transition(WEST))

    outcome = reconcile(action, transition(EAST, frm=WEST))

    assert (outcome.result, outcome.before, outcome.after) == ("applied", WEST, EAST)
    assert [run[2:4] for run in runs(log)] == [[EAST, WEST], [WEST, EAST]]


def test_no_from_region_is_an_empty_variable(tmp_path: Path) -> None:
    log = tmp_path / "log"
    reconcile(command(recorder(log), tmp_path / "s.json"), transition(WEST, frm=None))
    assert runs(log)[0][2] == ""


def test_failure_is_temporary_and_not_recorded(tmp_path: Path) -> None:
    state = tmp_path / "command-notify.json"
    argv = (
        sys.executable,
        "-c",
        "import sys; sys.stderr.write('x' * 2000 + 'THE END'); sys.exit(2)",
    )
    action = command(argv, state)

    with pytest.raises(TemporaryError, match=r"exited with status 2: \.\.\.x+THE END$") as caught:
        reconcile(action, transition(WEST))

    assert len(str(caught.value)) < 700  # only the tail of stderr
    assert action.current() is None  # so the retry runs it again


def test_timeout_is_temporary(tmp_path: Path) -> None:
    action = command((sys.executable, "-c", "import time; time.sleep(60)"), tmp_path / "s", 0.5)
    started = time.monotonic()
    with pytest.raises(TemporaryError, match=r"timed out after 0\.5s"):
        reconcile(action, transition(WEST))
    assert time.monotonic() - started < 30  # killed at the timeout, not after the 60 s sleep


def test_missing_executable_is_permanent(tmp_path: Path) -> None:
    action = command((str(tmp_path / "nope"),), tmp_path / "s")
    with pytest.raises(PermanentError, match="cannot run"):
        reconcile(action, transition(WEST))


def test_corrupt_state_file_is_permanent(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    state.write_text("not json")
    with pytest.raises(PermanentError, match="not a command record"):
        command(("true",), state).current()


def test_dry_run_does_not_run(tmp_path: Path) -> None:
    log, state = tmp_path / "log", tmp_path / "s.json"

    outcome = reconcile(command(recorder(log), state), transition(WEST, dry_run=True))

    assert (outcome.result, outcome.before, outcome.after) == ("would_apply", None, WEST)
    assert not log.exists()
    assert not state.exists()


# --- inspect: the plan's read-only view ---


def test_inspect_finds_a_missing_program_without_running_anything(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    good = command(("sh", "-c", f"touch {ran}"), tmp_path / "command-notify.json")
    seen = good.inspect(WEST)
    assert (seen.ready, seen.current, seen.desired, seen.would_change) == (True, None, WEST, True)
    assert not ran.exists()

    seen = command(("ddb-no-such-program", "--now"), tmp_path / "c.json").inspect(WEST)
    assert [(p.kind, p.message) for p in seen.problems] == [
        ("not_executable", "notify: 'ddb-no-such-program' is not found on PATH")
    ]


@pytest.mark.parametrize("cut", range(1, 18))
def test_a_secret_cut_by_the_stderr_tail_leaves_no_part_of_it(cut: int) -> None:
    from ddb_failover import logs
    from responder.actions._subprocess import STDERR_TAIL_CHARS, tail

    secret = "dop_v1_0123456789"
    logs.set_redactor(lambda text: text.replace(secret, "[redacted]"))
    try:
        # The last STDERR_TAIL_CHARS characters begin `cut` characters into the secret.
        stderr = ("x" * 50 + secret + "y" * (STDERR_TAIL_CHARS - len(secret) + cut)).encode()
        shown = tail(stderr)
    finally:
        logs.set_redactor(str)
    assert not any(secret[i:] in shown for i in range(len(secret) - 3))
    assert not any(secret[:i] in shown for i in range(4, len(secret) + 1))


def test_no_command_starts_after_the_lease_ran_out(tmp_path: Path) -> None:
    log = tmp_path / "log"
    action = command(recorder(log), tmp_path / "s")
    with fence.guarding(fence.Deadline(until=0.0)), pytest.raises(LeaseDeadlinePassed):
        reconcile(action, transition(WEST))
    assert runs(log) == []  # not run at all
    with fence.guarding(fence.Deadline(until=time.time() + 60)):
        reconcile(action, transition(WEST))
    assert len(runs(log)) == 1


# A worker whose attempt thread runs a command that never ends; it prints the command's pid.
WORKER = """
import sys, threading
from responder.actions import _subprocess
pid_file = sys.argv[1]
argv = ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 600"]
run = lambda: _subprocess.run(argv, timeout=600, what="t")  # noqa: E731
thread = threading.Thread(target=run)
thread.start()
thread.join()
"""


def test_a_command_dies_with_its_worker(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(pid_file)], cwd=REPO)
    try:
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 30)
        child = int(pid_file.read_text())
        assert running(child)
    finally:
        worker.kill()  # SIGKILL: no handler of the worker runs
        worker.wait()
    try:
        wait_until(lambda: not running(child), 30, message="the command died with its worker")
    finally:
        if running(child):
            os.kill(child, signal.SIGKILL)
