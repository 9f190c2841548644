"""DynamoDBRegionDown keeps its promise at every alignment of probes, scrapes and evaluations.

Generated promtool suites (tests/alerting/phases.py): for each profile, every
outage of at most the window, at every phase step, never fires; every outage
that lasts fires within the profile's detection bound. The same generator
shows that counting evaluations with `for:`, the rule this one replaced, does
fire on blips of a little over half its window when scrapes are slow.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from sandbox import profiles
from tests.alerting.phases import Cover, Grid, write_suites

pytestmark = pytest.mark.slow

# The rule this one replaced: every probe failing at each evaluation for 10 s.
COUNTING_RULE = """
groups:
  - name: counting-evaluations
    rules:
      - record: ddb:vantage_probe_success:max
        expr: max by (region, table, vantage) (dynamodb_probe_success)
      - record: ddb:region_down_vantages:ratio
        expr: avg by (region, table) (ddb:vantage_probe_success:max == bool 0)
      - alert: DynamoDBRegionDown
        expr: ddb:region_down_vantages:ratio > 0.5
        for: 10s
        labels: {severity: critical}
"""


def promtool_tests(*suites: Path) -> list[subprocess.CompletedProcess[str]]:
    """Run `promtool test rules` on each suite, side by side."""
    with ThreadPoolExecutor(len(suites)) as pool:
        return list(
            pool.map(
                lambda suite: subprocess.run(
                    ["promtool", "test", "rules", str(suite)],
                    capture_output=True,
                    text=True,
                    timeout=300,
                ),
                suites,
            )
        )


def down_group(profile: profiles.Profile, directory: Path) -> Path:
    """The profile's DynamoDBRegionDown group as shipped, alone: no other group affects it."""
    for path in profile.rule_files:
        for group in yaml.safe_load(path.read_text())["groups"]:
            if any(rule.get("alert") == profiles.DOWN_ALERT for rule in group["rules"]):
                out = directory / "region-down.yml"
                out.write_text(yaml.safe_dump({"groups": [group]}, sort_keys=False))
                return out
    raise AssertionError(f"no {profiles.DOWN_ALERT} in {profile.rule_files}")


@pytest.mark.parametrize(
    ("name", "tick", "step"),
    [("shipped", 0.1, 1.0), ("fast", 0.05, 0.5)],
    ids=["shipped-1s-steps", "fast-0.5s-steps"],
)
def test_blips_never_fire_and_outages_fire_within_the_bound(
    name: str, tick: float, step: float, tmp_path: Path
) -> None:
    profile = profiles.load(name)
    grid = Grid.of(profile, tick, step)
    suites, outages = write_suites(grid, [down_group(profile, tmp_path)], tmp_path)
    for result in promtool_tests(*suites):
        assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert outages >= 2000


def test_the_suite_catches_a_rule_that_counts_evaluations(tmp_path: Path) -> None:
    # As the old rule shipped: 5 s evaluations, a 10 s `for:`. Blips from 5 s, the
    # range where it fails; fast-slow-slow scrapes, the timing that defeats it.
    profile = dataclasses.replace(profiles.load("shipped"), evaluation_interval=5.0)
    grid = Grid.of(profile, 0.1, 1.0)
    cover = Cover(patterns=("fss",), modes=("refused", "timeout"), shortest=5.0, with_success=True)
    old = tmp_path / "counting.yml"
    old.write_text(COUNTING_RULE)
    (tmp_path / "counting").mkdir()
    (tmp_path / "window").mkdir()
    [counting_suite], _ = write_suites(grid, [old], tmp_path / "counting", cover, parts=1)
    # The rule that replaced it must pass the very same suite, evaluated every 5 s.
    rules = [down_group(profile, tmp_path)]
    [window_suite], _ = write_suites(grid, rules, tmp_path / "window", cover, parts=1)
    counting, window = promtool_tests(counting_suite, window_suite)

    assert window.returncode == 0, (window.stdout + window.stderr)[-6000:]
    assert counting.returncode != 0
    report = counting.stdout + counting.stderr
    got = [line for line in report.splitlines() if line.strip().startswith("got:")]
    blips = {int(d) * grid.tick for line in got for d in re.findall(r'table="o\d+-d(\d+)-', line)}
    assert blips, report[-3000:]
    assert min(blips) <= 6.0  # "an outage of a little over 5 s"
