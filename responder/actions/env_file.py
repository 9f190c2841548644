"""Action env_file: the active region as VARIABLE=region in an env file, then a reload."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from ddb_failover.config import EnvFileAction
from responder.actions import _files, _subprocess
from responder.actions.base import Action, Json, Transition
from responder.actions.inspection import (
    MISSING,
    Limits,
    Problem,
    command_problems,
    writable_problems,
)
from responder.model.errors import ActionError


def _assignment(variable: str) -> re.Pattern[str]:
    return re.compile(rf"^(?P<lead>\s*(?:export\s+)?){re.escape(variable)}\s*=(?P<value>.*)$")


def _unquote(raw: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def read_value(text: str | None, variable: str) -> str | None:
    """The value text assigns to variable (the last assignment wins, as in a shell)."""
    if text is None:
        return None
    pattern = _assignment(variable)
    value = None
    for line in text.splitlines():
        match = pattern.match(line)
        if match:
            value = _unquote(match.group("value"))
    return value


def with_value(text: str | None, variable: str, value: str) -> str:
    """text with every assignment of variable set to value; appended when absent."""
    pattern = _assignment(variable)
    lines = (text or "").splitlines(keepends=True)
    found = False
    for index, line in enumerate(lines):
        body = line.rstrip("\r\n")
        match = pattern.match(body)
        if match:
            found = True
            lines[index] = f"{match.group('lead')}{variable}={value}{line[len(body) :]}"
    if not found:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(f"{variable}={value}\n")
    return "".join(lines)


class EnvFile(Action):
    """Writes the region into an env file atomically, then runs the reload command.

    With a reload command, the state is {"value", "reloaded"}: after a reload succeeds
    the action records the value it reloaded (a small JSON file in state_dir), so a
    process killed between the write and the end of the reload is seen as
    "reloaded": false and the resumed transition reloads instead of calling the step
    unchanged. With no record at all, the application read the file when it started
    (nothing of ours has written it), so its value counts as loaded: a new deployment is
    not drift. The first write seeds the record with the value it replaces, so a crash
    before its reload still shows. When the reload command fails, times out or cannot
    run, the file is put back as it was, so a retry writes and reloads again. The reload
    command gets the same DDB_FAILOVER_* transition variables as the command action.
    """

    type = "env_file"

    def __init__(self, config: EnvFileAction, state_path: Path) -> None:
        super().__init__(config.name)
        self.path = Path(config.path)
        self.variable = config.variable
        self.reload_command = config.reload_command
        self.timeout_seconds = config.timeout_seconds
        self.pass_env = config.pass_env
        self.state_path = state_path

    def current(self) -> Json:
        """The variable's value (None when absent), and whether a reload followed its write."""
        value = read_value(_files.read_text(self.path), self.variable)
        if not self.reload_command:
            return value
        recorded = self._record()
        loaded = value if recorded is None else self._reloaded_value(recorded)
        return {"value": value, "reloaded": value is not None and value == loaded}

    def desired(self, region: str) -> Json:
        """The region name, reloaded when there is a reload command."""
        if not self.reload_command:
            return region
        return {"value": region, "reloaded": True}

    def examine(self, region: str, desired: Json, limits: Limits, problems: list[Problem]) -> Json:
        """Also: its directory takes a new file, the reload command runs.

        A missing file is no problem while its directory takes one: the failover creates it
        (a new deployment has none before its first failover). It is one when it could not.
        """
        unwritable = writable_problems(self.name, self.path)
        if unwritable and not self.path.exists():
            problems.append(Problem(MISSING, f"{self.name}: env file {self.path} does not exist"))
        problems.extend(unwritable)
        if self.reload_command:
            problems.extend(command_problems(self.reload_command, f"{self.name}: reload command"))
            problems.extend(writable_problems(self.name, self.state_path, create_parents=True))
        return self.current()

    def apply(self, desired: Json, transition: Transition) -> None:
        """Write the file if needed, then reload; on a failed reload restore the old file."""
        region = desired["value"] if self.reload_command else desired
        old = _files.read_text(self.path)
        if self.reload_command and self._record() is None:
            self._write_record(read_value(old, self.variable), None)
        if read_value(old, self.variable) != region:
            # A new file gets no world read: it names the region, and may name more.
            _files.atomic_write(
                self.path, with_value(old, self.variable, str(region)), default_mode=0o640
            )
        if not self.reload_command:
            return
        try:
            _subprocess.run(
                self.reload_command,
                timeout=self.timeout_seconds,
                what=f"{self.name}: reload",
                extra_env=_subprocess.transition_env(transition),
                pass_env=self.pass_env,
            )
        except ActionError:
            self._restore(old)
            raise
        self._record_reload(str(region), transition)

    def _record(self) -> str | None:
        """The action's reload record as written, None when there is none."""
        return _files.read_text(self.state_path)

    @staticmethod
    def _reloaded_value(text: str) -> str | None:
        """The value the last successful reload was for, from the record's text."""
        try:
            value = json.loads(text)["value"]
        except (ValueError, KeyError, TypeError):
            return None  # an unreadable record means: reload to be sure
        return value if isinstance(value, str) else None

    def _record_reload(self, region: str, transition: Transition) -> None:
        self._write_record(region, transition.id)

    def _write_record(self, value: str | None, transition_id: str | None) -> None:
        record = {
            "value": value,
            "transition_id": transition_id,
            "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        _files.make_parent(self.state_path, self.name)
        _files.atomic_write(self.state_path, json.dumps(record) + "\n", default_mode=0o600)

    def _restore(self, old: str | None) -> None:
        if old is None:
            _files.remove(self.path)
        else:
            _files.atomic_write(self.path, old)
