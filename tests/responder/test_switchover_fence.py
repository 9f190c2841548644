"""Fence actions for real: an env file with a reload, a command told which value it sets;
and the plan's verdict on a switchover (pure)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ddb_failover.config import CommandAction, EnvFileAction
from responder.actions.base import Transition, reconcile
from responder.actions.command import Command
from responder.actions.env_file import EnvFile
from responder.actions.fence import FenceValues, fence_step, steady_fence, unfence_step
from responder.plan.plan_file import not_ready

EAST, WEST = "us-east-1", "eu-west-1"
FORWARD = Transition("t-1", "switchover", EAST, WEST)
BACK = Transition("t-1", "switchover", WEST, EAST)  # a rollback's direction
VALUES = FenceValues("1", "0")


def env_file(tmp_path: Path) -> EnvFile:
    path = tmp_path / "wp.env"
    path.write_text("DYNAMODB_REGION=us-east-1\nWP_READ_ONLY=0\n")
    reload = (sys.executable, "-c", "pass")
    config = EnvFileAction(
        type="env_file", name="ro", path=path, variable="WP_READ_ONLY", reload_command=reload
    )
    return EnvFile(config, tmp_path / "env_file-ro.json")


def test_an_env_file_fence_closes_opens_and_a_rollback_opens(tmp_path: Path) -> None:
    inner = env_file(tmp_path)
    fence = fence_step(inner, VALUES, WEST)
    done = reconcile(fence, FORWARD)
    assert (done.action, done.result) == ("fence:ro", "applied")
    assert done.after == {"value": "1", "reloaded": True}
    assert "WP_READ_ONLY=1" in inner.path.read_text()
    assert "DYNAMODB_REGION=us-east-1" in inner.path.read_text()  # the rest stays
    assert steady_fence(inner, VALUES).left_on(inner.current())
    back = reconcile(fence, BACK)  # abort --rollback: towards the source, the fence opens
    assert (back.result, back.after) == ("applied", {"value": "0", "reloaded": True})
    assert reconcile(unfence_step(inner, VALUES), FORWARD).result == "unchanged"
    assert not steady_fence(inner, VALUES).left_on(inner.current())


def test_a_command_fence_learns_which_value_it_sets(tmp_path: Path) -> None:
    log = tmp_path / "log"
    code = (
        "import json, os; "
        f"open({str(log)!r}, 'a').write(json.dumps([os.environ.get('DDB_FAILOVER_FENCE'), "
        "os.environ.get('DDB_FAILOVER_TO_REGION')]) + '\\n')"
    )
    config = CommandAction(type="command", name="mm", command=(sys.executable, "-c", code))
    inner = Command(config, tmp_path / "command-mm.json")
    values = FenceValues("activate", "deactivate")
    assert reconcile(fence_step(inner, values, WEST), FORWARD).after == "activate"
    assert reconcile(unfence_step(inner, values), FORWARD).after == "deactivate"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines == [["fenced", WEST], ["open", WEST]]


def plan(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "stale": False,
        "active_region": EAST,
        "regions": {WEST: {"ready": True, "actions": []}},
        "fences": [{"action": "fence:ro", "problems": []}],
    }
    return {**document, **changes}


def error(message: str) -> dict[str, Any]:
    return {"action": "x", "problems": [{"severity": "error", "message": message}]}


@pytest.mark.parametrize(
    ("document", "verdict"),
    [
        (plan(), None),
        (plan(stale=True), "the plan has no fresh evaluation (none yet, or stale): try again"),
        (plan(regions={}), f"the plan has no entry for {WEST}"),
        # Evaluated before the last move: its entries plan moves from the old active region.
        (
            plan(active_region=WEST, regions={EAST: {"ready": True, "actions": []}}),
            f"the plan has no fresh evaluation (evaluated while {WEST} was active, now {EAST})",
        ),
        (
            plan(regions={WEST: {"ready": False, "actions": [error("dns: 401")]}}),
            f"the plan for {WEST} is not ready: dns: 401",
        ),
        (
            plan(fences=[error("ro: env file /x is not writable")]),
            f"the plan for {WEST} is not ready: ro: env file /x is not writable",
        ),
    ],
)
def test_the_plan_must_be_fresh_and_ready_for_a_switchover(
    document: dict[str, Any], verdict: str | None
) -> None:
    found = not_ready(document, WEST, EAST)
    assert found == verdict or (verdict is not None and found and found.startswith(verdict))
