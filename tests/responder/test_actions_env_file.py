"""env_file: atomic VARIABLE=region writes, other lines intact, reload command run."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ddb_failover.config import EnvFileAction
from responder.actions.base import Transition, reconcile
from responder.actions.env_file import EnvFile, read_value, with_value
from responder.model import fence
from responder.model.errors import PermanentError, TemporaryError
from responder.model.fence import LeaseDeadlinePassed
from sandbox.net import wait_until

TESTDATA = Path(__file__).parent / "testdata"
SAMPLE = TESTDATA / "actions_env_file.env"
EAST, WEST = "us-east-1", "eu-west-1"


def transition(to: str = WEST, dry_run: bool = False) -> Transition:
    return Transition(id="t-42", kind="failover", from_region=EAST, to_region=to, dry_run=dry_run)


def env_file(path: Path, reload: list[str] | None = None, timeout: float = 10.0) -> EnvFile:
    return EnvFile(
        EnvFileAction(
            type="env_file",
            name="wp-env",
            path=path,
            reload_command=tuple(reload) if reload else None,
            timeout_seconds=timeout,
        ),
        path.parent / "records" / "env_file-wp-env.json",
    )


def reloaded(region: str | None, done: bool = True) -> dict[str, object]:
    """The state of an env file with a reload command."""
    return {"value": region, "reloaded": done}


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "dynamodb.env"
    shutil.copy(SAMPLE, path)
    return path


def running(pid: int) -> bool:
    """True while pid is a live process (a zombie awaiting its reaper is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


# --- the pure text functions ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        ("OTHER=1\n", None),
        ("DYNAMODB_REGION=us-east-1\n", "us-east-1"),
        ("export DYNAMODB_REGION='eu-west-1'\n", "eu-west-1"),
        ("DYNAMODB_REGION = us-east-1\n", "us-east-1"),
        ("DYNAMODB_REGION=a\nDYNAMODB_REGION=b\n", "b"),  # the last one wins, as in a shell
        ("# DYNAMODB_REGION=commented\n", None),
        ("DYNAMODB_REGION_FALLBACK=x\n", None),
    ],
)
def test_read_value(text: str | None, expected: str | None) -> None:
    assert read_value(text, "DYNAMODB_REGION") == expected


def test_with_value_replaces_every_assignment_and_keeps_the_rest() -> None:
    text = "A=1\r\nexport DYNAMODB_REGION=x\r\nB=2\nDYNAMODB_REGION=y"
    assert with_value(text, "DYNAMODB_REGION", WEST) == (
        f"A=1\r\nexport DYNAMODB_REGION={WEST}\r\nB=2\nDYNAMODB_REGION={WEST}"
    )


def test_with_value_appends_when_absent() -> None:
    assert with_value(None, "V", WEST) == f"V={WEST}\n"
    assert with_value("A=1", "V", WEST) == f"A=1\nV={WEST}\n"


# --- the action on real files ---


def test_different_value_is_written_and_other_lines_kept(sample: Path) -> None:
    original = SAMPLE.read_text()
    sample.chmod(0o640)

    outcome = reconcile(env_file(sample), transition(WEST))

    assert (outcome.result, outcome.before, outcome.after) == ("applied", EAST, WEST)
    assert sample.read_text() == original.replace(
        'export DYNAMODB_REGION="us-east-1"', f"export DYNAMODB_REGION={WEST}"
    )
    assert sample.stat().st_mode & 0o777 == 0o640
    # No temporary file is left behind in the directory.
    assert sorted(p.name for p in sample.parent.iterdir()) == ["dynamodb.env"]


def test_already_desired_is_unchanged_and_not_rewritten(sample: Path, tmp_path: Path) -> None:
    inode = sample.stat().st_ino

    outcome = reconcile(env_file(sample), transition(EAST))

    assert (outcome.result, outcome.before, outcome.after) == ("unchanged", EAST, EAST)
    assert sample.stat().st_ino == inode  # a rename would have given a new inode


def test_reloaded_value_is_unchanged_and_not_reloaded_again(sample: Path, tmp_path: Path) -> None:
    marker = tmp_path / "reloads"
    action = env_file(sample, reload=py(f"open({str(marker)!r}, 'a').write('x')"))
    assert reconcile(action, transition(WEST)).result == "applied"
    inode = sample.stat().st_ino

    outcome = reconcile(action, transition(WEST))

    assert (outcome.result, outcome.after) == ("unchanged", reloaded(WEST))
    assert sample.stat().st_ino == inode
    assert marker.read_text() == "x"  # one reload, by the first transition


def test_written_but_not_reloaded_reloads_without_rewriting(sample: Path, tmp_path: Path) -> None:
    """A process killed after the write and before the reload ended: the resumed step reloads."""
    marker = tmp_path / "reloads"
    action = env_file(sample, reload=py(f"open({str(marker)!r}, 'a').write('x')"))
    assert reconcile(action, transition(WEST)).result == "applied"  # a reload recorded
    sample.write_text(with_value(sample.read_text(), "DYNAMODB_REGION", EAST))  # then the kill
    inode = sample.stat().st_ino
    assert action.current() == reloaded(EAST, done=False)

    outcome = reconcile(action, transition(EAST))

    assert (outcome.result, outcome.before, outcome.after) == (
        "applied",
        reloaded(EAST, done=False),
        reloaded(EAST),
    )
    assert marker.read_text() == "xx"
    assert sample.stat().st_ino == inode  # the file already said EAST: not rewritten


def test_a_file_nothing_of_ours_reloaded_counts_as_loaded(sample: Path, tmp_path: Path) -> None:
    """A new deployment: the application read the file at its start; no false drift."""
    action = env_file(sample, reload=py("pass"))
    value = read_value(sample.read_text(), "DYNAMODB_REGION")
    assert value is not None and action.current() == reloaded(value)
    assert not action.state_path.exists()


def test_the_first_write_records_the_value_it_replaces(sample: Path) -> None:
    """So a kill between the first write and its reload still shows as not reloaded."""
    action = env_file(sample, reload=py("import sys; sys.exit(3)"))
    before = read_value(sample.read_text(), "DYNAMODB_REGION")
    assert before != WEST
    with pytest.raises(TemporaryError):
        reconcile(action, transition(WEST))
    assert action.current() == reloaded(before)  # the file put back, as loaded
    sample.write_text(with_value(sample.read_text(), "DYNAMODB_REGION", WEST))  # a killed write
    assert action.current() == reloaded(WEST, done=False)


def test_absent_file_is_created(tmp_path: Path) -> None:
    path = tmp_path / "new.env"

    outcome = reconcile(env_file(path), transition(WEST))

    assert (outcome.result, outcome.before) == ("applied", None)
    assert path.read_text() == f"DYNAMODB_REGION={WEST}\n"


def test_symlinked_file_is_written_through_the_link(sample: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.env"
    link.symlink_to(sample)

    reconcile(env_file(link), transition(WEST))

    assert link.is_symlink()
    assert read_value(sample.read_text(), "DYNAMODB_REGION") == WEST


def test_reload_command_runs_after_the_write_with_the_transition(
    sample: Path, tmp_path: Path
) -> None:
    seen = tmp_path / "seen"
    # The reload records what the file said when it ran, and the transition it was told.
    code = (
        "import os, sys; "
        f"text = open({str(sample)!r}).read(); "
        "keys = ('DDB_FAILOVER_TRANSITION_ID', 'DDB_FAILOVER_TO_REGION'); "
        f"open({str(seen)!r}, 'w').write(repr((text, [os.environ[k] for k in keys])))"
    )

    outcome = reconcile(env_file(sample, reload=py(code)), transition(WEST))

    assert (outcome.result, outcome.before, outcome.after) == (
        "applied",
        reloaded(EAST),  # nothing of ours reloaded it: the application read it at its start
        reloaded(WEST),
    )
    text, env = eval(seen.read_text())  # our own repr from just above
    assert read_value(text, "DYNAMODB_REGION") == WEST
    assert env == ["t-42", WEST]


def test_failing_reload_is_temporary_and_restores_the_file(sample: Path) -> None:
    original = sample.read_text()
    action = env_file(
        sample, reload=py("import sys; sys.stderr.write('fpm: bad config'); sys.exit(3)")
    )

    with pytest.raises(TemporaryError, match=r"exited with status 3: fpm: bad config"):
        reconcile(action, transition(WEST))

    # The old value is back, so the retry writes and reloads again rather than seeing "unchanged".
    assert sample.read_text() == original
    assert action.current() == reloaded(EAST)


def test_failing_reload_of_a_new_file_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "new.env"
    with pytest.raises(TemporaryError):
        reconcile(env_file(path, reload=py("raise SystemExit(1)")), transition(WEST))
    assert not path.exists()


def test_hanging_reload_times_out_as_temporary(sample: Path, tmp_path: Path) -> None:
    # The child spawns a grandchild in its process group: both must be killed on timeout.
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    action = env_file(sample, reload=py(code), timeout=1.0)
    started = time.monotonic()

    with pytest.raises(TemporaryError, match="timed out after 1s"):
        reconcile(action, transition(WEST))

    assert time.monotonic() - started < 5
    grandchild = int(pid_file.read_text())
    wait_until(lambda: not running(grandchild), 30, message="grandchild killed")


def test_missing_reload_executable_is_permanent(sample: Path, tmp_path: Path) -> None:
    action = env_file(sample, reload=[str(tmp_path / "no-such-reload")])
    original = sample.read_text()
    with pytest.raises(PermanentError, match="cannot run"):
        reconcile(action, transition(WEST))
    assert sample.read_text() == original


def test_unwritable_directory_is_permanent(tmp_path: Path) -> None:
    action = env_file(tmp_path / "missing-dir" / "x.env")
    with pytest.raises(PermanentError, match="missing-dir"):
        reconcile(action, transition(WEST))


def test_dry_run_changes_nothing(sample: Path, tmp_path: Path) -> None:
    marker = tmp_path / "reloaded"
    original = sample.read_bytes()

    outcome = reconcile(
        env_file(sample, reload=py(f"open({str(marker)!r}, 'w')")), transition(WEST, dry_run=True)
    )

    assert (outcome.result, outcome.before, outcome.after) == (
        "would_apply",
        reloaded(EAST),
        reloaded(WEST),
    )
    assert sample.read_bytes() == original
    assert not marker.exists()


# --- inspect: the plan's read-only view ---


def kinds(action: EnvFile) -> list[str]:
    return [p.kind for p in action.inspect(WEST).problems]


def test_inspect_reads_only(sample: Path) -> None:
    before = sample.read_text()
    seen = env_file(sample, reload=["true"]).inspect(WEST)
    assert (seen.current, seen.desired) == (reloaded(EAST), reloaded(WEST))
    assert (seen.ready, seen.would_change) == (True, True)
    assert sample.read_text() == before
    assert sorted(p.name for p in sample.parent.iterdir()) == ["dynamodb.env"]


def test_inspect_missing_file_and_missing_reload_command(tmp_path: Path) -> None:
    path = tmp_path / "dynamodb.env"
    assert kinds(env_file(path, reload=["no-such-reload-command"])) == ["not_executable"]
    script = tmp_path / "reload.sh"
    script.write_text("#!/bin/sh\n")
    path.write_text("DYNAMODB_REGION=us-east-1\n")
    action = env_file(path, reload=[str(script)])
    assert kinds(action) == ["not_executable"]
    assert action.inspect(WEST).problems[0].message == (
        f"wp-env: reload command: {script} is not executable"
    )
    script.chmod(0o755)
    assert kinds(action) == []


def test_inspect_missing_file_in_a_writable_directory_is_ready(tmp_path: Path) -> None:
    # A new deployment has no env file before its first failover: the action creates it.
    path = tmp_path / "dynamodb.env"
    seen = env_file(path).inspect(WEST)
    assert (list(seen.problems), seen.ready, seen.would_change) == ([], True, True)
    assert (seen.current, seen.desired) == (None, WEST)
    assert not path.exists()


def test_inspect_missing_file_in_a_missing_directory(tmp_path: Path) -> None:
    seen = env_file(tmp_path / "gone" / "dynamodb.env").inspect(WEST)
    assert [p.kind for p in seen.problems] == ["missing", "not_writable"]
    assert f"directory {tmp_path / 'gone'} does not exist" in seen.problems[1].message


def test_inspect_directory_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "wordpress").write_text("not a directory\n")
    seen = env_file(tmp_path / "wordpress" / "dynamodb.env").inspect(WEST)
    assert [p.kind for p in seen.problems][:2] == ["missing", "not_writable"]
    assert f"{tmp_path / 'wordpress'} is not a directory" in seen.problems[1].message


def test_inspect_directory_on_a_virtual_filesystem() -> None:
    seen = env_file(Path("/proc/dynamodb.env")).inspect(WEST)
    assert "not_writable" in [p.kind for p in seen.problems]


def test_inspect_immutable_directory_is_not_writable_even_for_root(
    sample: Path, make_immutable: Any
) -> None:
    undo = make_immutable(sample.parent)
    seen = env_file(sample).inspect(WEST)
    assert [(p.kind, p.message) for p in seen.problems] == [
        ("not_writable", f"wp-env: cannot write {sample}: {sample.parent} is immutable (chattr +i)")
    ]
    # The plan says what a failover would meet: the write fails the same way.
    with pytest.raises(PermanentError, match="Operation not permitted"):
        reconcile(env_file(sample), transition(WEST))
    undo()
    assert env_file(sample).inspect(WEST).problems == ()


def test_a_stray_attempt_cannot_restore_an_old_file_after_its_lease(sample: Path) -> None:
    before = sample.read_text()
    with fence.guarding(fence.Deadline(until=0.0)), pytest.raises(LeaseDeadlinePassed):
        reconcile(env_file(sample), transition(WEST))
    assert sample.read_text() == before  # nothing replaced, no temporary file left
    assert [p.name for p in sample.parent.iterdir() if p.name.endswith(".tmp")] == []
