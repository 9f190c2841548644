"""promtool suites that place outages at every phase of the probe, scrape and evaluation grids.

A model of what Prometheus stores from one exporter, exact to a tick:

- the exporter starts probe round k at probe_phase + k*P; a probe fails when
  the region refuses it (refused: it starts inside the outage) or when no
  answer comes within T (timeout: it starts inside the outage, at least T
  before the end). A round is recorded when its last probe is done, or at
  its deadline when another region hangs in every round (slow round), and
  sets dynamodb_probe_failing_seconds as the exporter does;
- Prometheus starts scrape j at scrape_phase + j*S. The scrape reads the
  exporter's state at its start (records made strictly before) and its
  samples become visible only when it ends, d later: fast scrapes take one
  tick, slow ones most of the scrape timeout, in repeating patterns (every
  rotation of fast-fast-slow and fast-slow-slow) in which slow scrapes follow
  fast ones, the timing that defeats counting evaluations. A sample is placed
  at the time it becomes visible;
- promtool evaluates the rules every E from time 0.

Each promtool test group is one alignment of the three grids and one scrape
pattern; in it every scenario is a table of its own: an onset at each phase
step over a probe interval, a duration in phase steps up to the window (must
never fire) or an outage that lasts (must fire within the bound), for each
failure mode. Times are integer ticks so no float rounding moves an edge.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sandbox.profiles import Profile

ALERT = "DynamoDBRegionDown"
REGION = "us-east-1"
# Scrape durations, repeating: f fast, s slow. A fast scrape followed by slow ones
# makes two evaluations in a row read one sample, or skips one.
PATTERNS = ("f", "s", "ffs", "fss")
MODES = ("refused", "timeout", "refused-slowround", "timeout-slowround")
LABELS = 'job="ddb_exporter",instance="e1",vantage="v1",region="us-east-1",operation="read"'


@dataclass(frozen=True)
class Grid:
    """One suite's timings in integer ticks of `tick` seconds."""

    profile: Profile
    tick: float  # the input series' resolution
    step: int  # the phase step
    p: int  # probe interval
    t: int  # probe timeout
    s: int  # scrape interval
    slow: int  # a slow scrape's duration: the scrape timeout less one tick
    evaluation: int  # E: promtool takes it from the test file, not the rule group
    w: int  # the window

    @classmethod
    def of(cls, profile: Profile, tick: float, step: float) -> Grid:
        """profile's timings in ticks (ValueError if one is not a whole number of them)."""

        def ticks(seconds: float) -> int:
            n = round(seconds / tick)
            if not math.isclose(n * tick, seconds, abs_tol=1e-9):
                raise ValueError(f"{seconds} s is not a whole number of {tick} s ticks")
            return n

        seconds = (
            step, profile.probe_interval, profile.probe_timeout, profile.scrape_interval,
            profile.scrape_timeout, profile.evaluation_interval, profile.window,
        )  # fmt: skip
        step_, p, t, s, timeout, e, w = map(ticks, seconds)
        return cls(profile, tick, step_, p, t, s, timeout - 1, e, w)

    def bound(self, pattern: str) -> int:
        """The detection bound in ticks for the pattern's slowest scrape."""
        d = self.slow if "s" in pattern else 1
        return round(self.profile.detection_bound(d * self.tick) / self.tick)


@dataclass(frozen=True)
class Scenario:
    """One outage: onset and duration in ticks (None: it lasts), and how probes fail."""

    onset: int
    duration: int | None
    mode: str

    @property
    def table(self) -> str:
        length = "lasting" if self.duration is None else f"d{self.duration}"
        return f"o{self.onset}-{length}-{self.mode}"


def probe_records(grid: Grid, phase: int, scenario: Scenario, end: int) -> list[tuple[int, int]]:
    """(tick recorded, failing ticks or -1 after a success) for every probe round until end."""
    a = scenario.onset
    b = math.inf if scenario.duration is None else a + scenario.duration
    refused = scenario.mode.startswith("refused")
    records: list[tuple[int, int]] = []
    first: int | None = None
    k = 0
    while (start := phase + k * grid.p) <= end:
        if refused:
            failed, done = a <= start < b, start
        else:
            failed = a <= start and start + grid.t <= b
            done = start + grid.t if failed else (int(b) if a <= start < b else start)
        if scenario.mode.endswith("slowround"):  # another region hangs every round
            done = max(done, start + grid.t)
        if failed:
            first = k if first is None else first
            records.append((done, (k - first) * grid.p))
        else:
            first = None
            records.append((done, -1))
        k += 1
    return records


def scrape_duration(grid: Grid, pattern: str, j: int) -> int:
    """How long scrape j takes under pattern (repeated), in ticks."""
    return grid.slow if pattern[j % len(pattern)] == "s" else 1


def samples(
    grid: Grid, scrape_phase: int, pattern: str, records: list[tuple[int, int]], end: int
) -> dict[int, int]:
    """Visible tick -> the failing ticks (or -1) that scrape read."""
    found: dict[int, int] = {}
    j = 0
    while (start := scrape_phase + j * grid.s) <= end:
        state = -1  # before the first round: failing_seconds pre-created at 0
        for recorded, value in records:
            if recorded >= start:
                break
            state = value
        visible = start + scrape_duration(grid, pattern, j)
        if visible <= end:
            found[visible] = state
        j += 1
    return found


def values(found: dict[int, int], end: int, render: Any) -> str:
    """promtool's notation for samples at their ticks, gaps as _xN."""
    out: list[str] = []
    gap = 0
    for tick in range(end + 1):
        if tick not in found:
            gap += 1
            continue
        if gap:
            out.append("_" if gap == 1 else f"_x{gap}")
            gap = 0
        out.append(render(found[tick]))
    return " ".join(out)


def duration(grid: Grid, ticks: int) -> str:
    """A promtool duration for a number of ticks."""
    return f"{round(ticks * grid.tick * 1000)}ms"


@dataclass(frozen=True)
class Cover:
    """What a suite covers: scrape patterns, failure modes, blips from `shortest` seconds."""

    patterns: tuple[str, ...] = PATTERNS
    modes: tuple[str, ...] = MODES
    shortest: float | None = None  # default: one phase step
    with_success: bool = False  # also dynamodb_probe_success, for rules built on it


def scenarios(grid: Grid, base: int, cover: Cover) -> list[Scenario]:
    """Onsets a phase step apart over one probe interval; blips up to the window, and lasting."""
    onsets = range(base, base + grid.p, grid.step)
    first = grid.step if cover.shortest is None else round(cover.shortest / grid.tick)
    lengths: list[int | None] = [*range(first, grid.w + 1, grid.step), None]
    return [Scenario(o, d, m) for o in onsets for d in lengths for m in cover.modes]


def group(
    grid: Grid, probe_phase: int, scrape_phase: int, pattern: str, cover: Cover
) -> dict[str, Any]:
    """One promtool test group: one alignment and scrape pattern, every scenario."""
    base = 2 * grid.p + grid.s  # a steady state first
    bound = grid.bound(pattern)
    # A blip could fire, wrongly, until its recovery is visible: the next success
    # recorded within P + T of its end, scraped within S + slow, evaluated within E.
    recovered = grid.w + grid.p + grid.t + grid.s + grid.slow + grid.evaluation
    end = base + grid.p + max(bound, recovered) + grid.s
    series: list[dict[str, str]] = []
    lasting: list[Scenario] = []
    for scenario in scenarios(grid, base, cover):
        found = samples(
            grid, scrape_phase, pattern, probe_records(grid, probe_phase, scenario, end), end
        )
        labels = f'{LABELS},table="{scenario.table}"'
        seconds = values(found, end, lambda v: f"{max(v, 0) * grid.tick:g}")
        series.append({"series": f"dynamodb_probe_failing_seconds{{{labels}}}", "values": seconds})
        if cover.with_success:
            ok = values(found, end, lambda v: "1" if v < 0 else "0")
            series.append({"series": f"dynamodb_probe_success{{{labels}}}", "values": ok})
        if scenario.duration is None:
            lasting.append(scenario)

    def firing(selected: list[Scenario], instant: bool) -> list[dict[str, Any]]:
        name = '__name__="ALERTS",' if instant else ""
        return [
            {
                "labels": f'{{{name}alertname="{ALERT}",alertstate="firing",region="{REGION}",'
                f'severity="critical",table="{s.table}"}}',
                "value": 1,
            }
            for s in selected
        ]

    selector = f'ALERTS{{alertname="{ALERT}",alertstate="firing"'
    tests: list[dict[str, Any]] = [
        {  # over the whole run, only the lasting outages ever fired
            "expr": f"max_over_time({selector}}}[{duration(grid, end)}])",
            "eval_time": duration(grid, end),
            "exp_samples": firing(lasting, instant=False),
        }
    ]
    for onset in sorted({s.onset for s in lasting}):
        mine = [s for s in lasting if s.onset == onset]
        match = f',table=~"o{onset}-.*"}}'
        latest = (onset + bound) // grid.evaluation * grid.evaluation
        tests.append(  # not before the window has passed...
            {
                "expr": f"max_over_time({selector}{match}[{duration(grid, grid.w)}])",
                "eval_time": duration(grid, onset + grid.w),
                "exp_samples": [],
            }
        )
        tests.append(  # ...and firing by the bound, at the last evaluation within it
            {
                "expr": f"{selector}{match}",
                "eval_time": duration(grid, latest),
                "exp_samples": firing(mine, instant=True),
            }
        )
    return {
        "name": f"probe phase {probe_phase}, scrape phase {scrape_phase}, scrapes {pattern}",
        "interval": duration(grid, 1),
        "input_series": series,
        "promql_expr_test": tests,
    }


def alignments(grid: Grid, patterns: tuple[str, ...] = PATTERNS) -> Iterator[tuple[int, int, str]]:
    """Every (probe phase, scrape phase, scrape pattern) in phase steps.

    The scrape grid's phase against evaluations at every step within one
    evaluation interval; the probe grid's phase against the scrape grid at
    every step within one scrape interval; every rotation of every pattern.
    """
    scrape_phases = range(0, max(grid.evaluation, grid.step), grid.step)
    rotations = [p[r:] + p[:r] for p in patterns for r in range(len(p))]
    for scrape_phase in scrape_phases:
        for offset in range(0, max(grid.s, grid.step), grid.step):
            for pattern in rotations:
                yield scrape_phase + offset, scrape_phase, pattern


def write_suites(
    grid: Grid, rule_files: list[Path], directory: Path, cover: Cover = Cover(), parts: int = 2
) -> tuple[list[Path], int]:
    """Test files for every alignment, in parts to run side by side; and the number of outages."""
    groups = [
        group(grid, p, s, pattern, cover) for p, s, pattern in alignments(grid, cover.patterns)
    ]
    paths = []
    for part in range(parts):
        suite = {
            "rule_files": [str(f) for f in rule_files],
            "evaluation_interval": duration(grid, grid.evaluation),
            "tests": groups[part::parts],
        }
        paths.append(directory / f"phases-{part}.test.yml")
        paths[-1].write_text(yaml.safe_dump(suite, sort_keys=False, width=1000))
    outages = sum(len(g["input_series"]) for g in groups) // (2 if cover.with_success else 1)
    return paths, outages
