"""The plan and DigitalOcean's API budget: the reserve, the warning, and reads held back.

Pure: the DigitalOcean "API" is a counter that answers with ratelimit-* headers, on an
injected clock. tests/e2e/test_budget.py does the same with the real sandbox and responder.
"""

from __future__ import annotations

import re
from pathlib import Path

from responder.actions.base import Action, Json
from responder.actions.do_budget import Budget, current_caller, spend
from responder.actions.inspection import KINDS, RATELIMIT, Limits
from responder.plan.budget import BudgetReport, reserve
from responder.plan.plan import Plan, evaluate
from tests.responder.fakes import EAST, WEST, MemoryAction, always_ready

SOUTH = "ap-south-1"
T0 = 1_800_000_000.0


class Token:
    """DigitalOcean's count for one token: an hour's limit, each call counting for an hour."""

    def __init__(self, limit: int, used: int = 0) -> None:
        self.limit = limit
        self.used = used
        self.now = T0
        self.budget = Budget(clock=lambda: self.now)

    def answer(self) -> None:
        """One call answered: counted, and its headers told to the budget."""
        self.used += 1
        self.budget.observe(
            {
                "ratelimit-limit": str(self.limit),
                "ratelimit-remaining": str(self.limit - self.used),
                "ratelimit-reset": str(int(self.now) + 3600),
            }
        )


class Remote(MemoryAction):
    """A DigitalOcean action: each read is one call, made only if the budget allows it."""

    def __init__(self, name: str, token: Token, calls: int = 4) -> None:
        super().__init__(name, {name: {"region": EAST}})
        self.token = token
        self.move_calls = calls
        self.callers: list[str] = []

    def current(self) -> Json:
        spend(self.token.budget, f"{self.name}: read")
        caller = current_caller()
        self.callers.append(caller.holder if caller else "")
        self.token.answer()
        return super().current()

    def digitalocean_calls(self) -> int:
        return self.move_calls


def plan(actions: list[Action], token: Token, regions: tuple[str, ...] = (EAST, WEST)) -> Plan:
    return evaluate(
        actions,
        regions,
        EAST,
        always_ready,
        60.0,
        Limits(),
        clock=lambda: token.now,
        budget=token.budget,
        evaluator="host-1:42",
    )


def problems(planned: Plan, kind: str = RATELIMIT) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for region in planned.regions:
        for inspection in region.inspections:
            messages = [p.message for p in inspection.problems if p.kind == kind]
            if messages:
                found[(region.region, inspection.action)] = messages
    return found


def test_the_reserve_is_a_failover_and_a_failback_of_every_digitalocean_action() -> None:
    token = Token(5000)
    actions: list[Action] = [Remote("www", token, 4), Remote("app", token, 66)]
    assert reserve([*actions, MemoryAction("env", {})]) == 2 * (4 + 66)
    assert reserve([MemoryAction("env", {})]) == 0


def test_a_plenty_budget_is_read_and_reported_without_a_problem() -> None:
    token = Token(5000, used=100)
    www = Remote("www", token)

    planned = plan([www, MemoryAction("env", {})], token)

    assert problems(planned) == {} and planned.ready
    assert www.callers == ["plan:host-1:42"]  # its requests name the plan
    assert planned.to_json()["digitalocean"] == {
        "limit": 5000,
        "left": 4899,
        "reset": "2027-01-15T09:00:00.000Z",
        "reserve": 8,
        "low": False,
        "calls": 1,
        "kept": 0,
    }


def test_under_three_reserves_every_digitalocean_action_says_so() -> None:
    token = Token(60, used=60 - 24)  # 24 left: two reads leave 22, under 3 x 8
    www = Remote("www", token)

    planned = plan([www, MemoryAction("env", {})], token, (EAST, WEST, SOUTH))

    assert set(problems(planned)) == {(WEST, "www"), (SOUTH, "www")}
    [message] = problems(planned)[(WEST, "www")]
    assert message.startswith("DigitalOcean API budget low: 22 call(s) left of 60 an hour, ")
    assert "under 3 x the 8 a failover and a failback need" in message
    assert "expires at 2027-01-15T09:00:00.000Z" in message
    assert not planned.ready
    report = planned.digitalocean
    assert isinstance(report, BudgetReport) and report.low and report.calls == 2


def test_reads_that_would_eat_into_the_reserve_are_not_made() -> None:
    token = Token(60, used=60 - 17)  # reserve 16: one read, then none
    www, glb = Remote("www", token), Remote("glb", token)

    planned = plan([www, glb], token, (EAST, WEST, SOUTH))

    assert (www.calls, glb.calls, token.used) == (1, 0, 44)
    assert planned.digitalocean is not None
    assert (planned.digitalocean.calls, planned.digitalocean.kept) == (1, 3)
    found = problems(planned)
    assert set(found) == {(WEST, "www"), (WEST, "glb"), (SOUTH, "www"), (SOUTH, "glb")}
    assert found[(WEST, "glb")] == [
        "glb: read: not read, to keep DigitalOcean's API budget for a failover: 16 call(s) "
        "left of 60 an hour, 16 kept for a failover and a failback"
    ]
    assert [len(m) for m in found.values()] == [1, 1, 1, 1]  # held back: not warned twice
    unknown = [i for r in planned.regions for i in r.inspections if i.action == "glb"]
    assert all(i.current is None and i.would_change is None for i in unknown)


def test_reads_resume_once_calls_expire() -> None:
    token = Token(60, used=60 - 17)
    token.answer()  # a transition's call: 16 left, all of them the reserve
    www = Remote("www", token, calls=8)
    held = plan([www], token).digitalocean
    assert held is not None and (held.calls, held.kept) == (0, 1)

    token.now = T0 + 3600  # the oldest counted call expires: one read may be made
    token.used = 10  # and its answer says most have
    planned = plan([www], token)

    assert www.calls == 1 and planned.ready
    assert planned.digitalocean is not None and planned.digitalocean.left == 49


def test_without_digitalocean_actions_there_is_no_budget_entry() -> None:
    planned = plan([MemoryAction("env", {})], Token(5000))
    assert planned.digitalocean is None
    assert planned.to_json()["digitalocean"] is None


def test_every_problem_kind_has_its_runbook_section() -> None:
    runbook = (Path(__file__).resolve().parents[2] / "docs" / "runbook.md").read_text()
    sections = set(re.findall(r"^### (\w+)$", runbook, re.M))
    assert set(KINDS) - sections == set()
