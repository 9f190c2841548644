"""Small in-memory and file-backed actions, and helpers shared by the responder core tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ddb_failover.config import Config, parse
from responder.actions.base import Action, Json, Transition
from responder.decide.decision import Check, Readiness
from responder.model.alerts import Alert, parse_notification
from responder.state.keys import AuditKeys

EAST, WEST = "us-east-1", "eu-west-1"
TESTDATA = Path(__file__).parent / "testdata"
AUDIT_KEY_FILE = TESTDATA / "audit-key"  # the test audit key (HMAC of the audit chain)
KEYS = AuditKeys.of(AUDIT_KEY_FILE.read_bytes().strip())


def config(**policy: Any) -> Config:
    """A two-region config with the given policy overrides."""
    return parse(
        {
            "tables": ["wordpress_posts"],
            "canary": {"key": "health_check_id", "value": "ping"},
            "regions": [{"name": EAST}, {"name": WEST}],
            "responder": {"policy": policy, "audit": {"key_file": str(AUDIT_KEY_FILE)}},
        }
    )


def region_down_alerts() -> tuple[Alert, ...]:
    """The alerts of testdata/region_down.json (us-east-1 down, two tables)."""
    data = json.loads((TESTDATA / "region_down.json").read_text(encoding="utf-8"))
    return parse_notification(data).alerts


def always_ready(check: Check) -> Readiness:
    """A readiness function for tests of everything but readiness."""
    return Readiness(check.target, True, 1.5)


class MemoryAction(Action):
    """An outside object held in a dict; apply() can be scripted to raise first."""

    type = "memory"

    def __init__(
        self,
        name: str,
        world: dict[str, Json],
        failures: list[Exception] | None = None,
        on_apply: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name)
        self.world = world
        self.failures = list(failures or [])
        self.on_apply = on_apply
        self.applied: list[Json] = []
        self.calls = 0

    def current(self) -> Json:
        self.calls += 1
        return self.world.get(self.name)

    def desired(self, region: str) -> Json:
        return {"region": region}

    def apply(self, desired: Json, transition: Transition) -> None:
        if self.on_apply is not None:
            self.on_apply()
        if self.failures:
            raise self.failures.pop(0)
        self.applied.append(desired)
        self.world[self.name] = desired


class FileAction(Action):
    """An outside object in a JSON file, so it outlives a killed process; logs each apply."""

    type = "file"

    def __init__(self, name: str, directory: Path, block: bool = False) -> None:
        super().__init__(name)
        self.path = directory / f"{name}.json"
        self.log = directory / f"{name}.applies"
        self.reached = directory / f"{name}.reached"
        self.block = block

    def current(self) -> Json:
        return json.loads(self.path.read_text()) if self.path.exists() else None

    def desired(self, region: str) -> Json:
        return {"region": region}

    def apply(self, desired: Json, transition: Transition) -> None:
        if self.block:
            self.reached.write_text("1")
            while True:  # stand-in for a call that never returns; the test kills us here
                time.sleep(1)
        with self.log.open("a") as log:
            log.write(json.dumps(desired) + "\n")
        self.path.write_text(json.dumps(desired))

    def apply_count(self) -> int:
        """How many times apply() changed the object, across processes."""
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0
