"""bench chaos on the real stack: a fixed short set of seeds holds every invariant, and the
checker sees a world that does not match the record."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.chaos import report, run_on
from bench.chaos_run import Run
from bench.chaos_schedule import Schedule
from bench.chaos_stack import ChaosStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# Two schedules, each with a transition: seed 12 runs two replicas on the DynamoDB control
# table under approval "all" and kills and restarts one of them; seed 10 fails over, aborts
# with rollback, and delays the next DigitalOcean PATCH past the client's timeout, the
# change landing late (apply "after").
FIXED_SEEDS = (12, 10)


@pytest.fixture(scope="module")
def chaos_stack() -> Iterator[ChaosStack]:
    stack = ChaosStack()
    try:
        stack.start()
        yield stack
    finally:
        stack.close()


def test_fixed_seeds_hold_every_invariant(chaos_stack: ChaosStack) -> None:
    outcomes = run_on(chaos_stack, FIXED_SEEDS)
    assert [o.seed for o in outcomes] == list(FIXED_SEEDS)
    assert [report(o) for o in outcomes if o.violations] == []


def test_a_record_edited_by_hand_is_a_violation(chaos_stack: ChaosStack) -> None:
    chaos_stack.reset(0, 1, "none")
    run = Run(chaos_stack, Schedule(0, 1, "none", ()))
    status = run.quiesce()
    run.close()
    assert run.check(status) == []
    www = next(a for a in chaos_stack.actions if a["name"] == "www")
    records = chaos_stack.do_get(f"/v2/domains/{www['domain']}/records?type=A")
    (record,) = [r for r in records["domain_records"] if r["name"] == www["record_name"]]
    path = f"/v2/domains/{www['domain']}/records/{record['id']}"
    chaos_stack.do_json(path, "PATCH", {"type": "A", "data": "198.51.100.7"}, auth=True)
    found = run.check(status)
    assert any(v.startswith("(a) www:") and "198.51.100.7" in v for v in found), found
    # The hand-made write named no lease holder: (d) sees that too.
    assert any(v.startswith("(d)") and "names no lease holder" in v for v in found), found
