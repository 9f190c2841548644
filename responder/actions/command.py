"""Action command: run a configured command with the transition in its environment.

A command has no outside state we can read, so this action keeps its own: after
the command succeeds for a region it records that region in a small JSON file
(next to the responder's state). current() is that record, the last region the
command succeeded for, or None; a transition to that same region is therefore
`unchanged` and does not run the command again. A crash between the command's
success and the record's write runs the command once more, so commands must be
idempotent. The record is local to one machine: replicas sharing a DynamoDB
state store each keep their own.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ddb_failover.config import CommandAction
from responder.actions import _files, _subprocess
from responder.actions.base import Action, Json, Transition
from responder.actions.inspection import Limits, Problem, command_problems, writable_problems
from responder.model.errors import PermanentError


class Command(Action):
    """Runs the command for a region; remembers the last region it succeeded for."""

    type = "command"

    def __init__(self, config: CommandAction, state_path: Path) -> None:
        super().__init__(config.name)
        self.command = config.command
        self.timeout_seconds = config.timeout_seconds
        self.pass_env = config.pass_env
        self.state_path = state_path

    def current(self) -> Json:
        """The last region this command succeeded for, from its state file; None if never."""
        text = _files.read_text(self.state_path)
        if text is None:
            return None
        try:
            record = json.loads(text)
            region = record["region"]
        except (ValueError, KeyError, TypeError):
            raise PermanentError(
                f"{self.name}: state file {self.state_path} is not a command record"
            ) from None
        if not isinstance(region, str):
            raise PermanentError(f"{self.name}: state file {self.state_path} has no region")
        return region

    def desired(self, region: str) -> Json:
        """The region name itself."""
        return region

    def examine(self, region: str, desired: Json, limits: Limits, problems: list[Problem]) -> Json:
        """Also: the command's program runs, and its record can be written."""
        problems.extend(command_problems(self.command, self.name))
        problems.extend(writable_problems(self.name, self.state_path, create_parents=True))
        return self.current()

    def apply(self, desired: Json, transition: Transition) -> None:
        """Run the command; record the region only once it has succeeded."""
        _subprocess.run(
            self.command,
            timeout=self.timeout_seconds,
            what=self.name,
            extra_env=_subprocess.transition_env(transition),
            pass_env=self.pass_env,
        )
        record = {
            "region": desired,
            "transition_id": transition.id,
            "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        _files.make_parent(self.state_path, self.name)
        _files.atomic_write(self.state_path, json.dumps(record) + "\n", default_mode=0o600)
