"""The responder's metric families, on an injected registry; right under gunicorn's workers.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set before prometheus_client is
imported (responder/gunicorn_conf.py), every worker writes its values to files
there, and each scrape aggregates them with a MultiProcessCollector in a fresh
registry. Counters sum over workers. State-derived gauges (active region,
frozen, ...) use "mostrecent": the worker answering a scrape refreshes them
from the store first, so its values are the newest whichever worker answers.
The plan's gauges follow the same rule, refreshed from the replica's plan file
(responder/plan/plan_file.py), whichever worker evaluated it. DigitalOcean's rate limit
gauges are "mostrecent" too, set by whichever worker saw a DigitalOcean answer last (0 before
any). responder_action_drift is a custom collector, computed at each scrape from the plan
file and the store (shared by every worker, so it is right whichever worker answers): it
must have no sample at all while a transition is in progress, which a multiprocess gauge
cannot express.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ddb_failover.config import NOTIFY_EVENTS
from responder.actions.do_budget import RateLimit
from responder.decide.practice import OUTCOMES
from responder.plan.plan import READINESS_ACTION, SITE_ACTION
from responder.state.records import PHASES, Json, State, TransitionRecord

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TRANSITION_KINDS = ("failover", "failback", "manual", "switchover", "practice")
TRANSITION_RESULTS = ("completed", "blocked", "failed")
ACTION_RESULTS = ("applied", "unchanged", "would_apply", "failed")
# Transition results as the counter reports them: an abort is a transition that did not
# complete; a declined one, or one whose target was not ready at approval, was wanted but
# refused: blocked.
COUNTED_RESULTS = {
    "completed": "completed",
    "failed": "failed",
    "aborted": "failed",
    "declined": "blocked",
    "blocked": "blocked",
}
NOTIFY_RESULTS = ("delivered", "retried", "failed")
# How many recent transitions the approval gauge keeps current (older ones stay 0).
APPROVAL_WINDOW = 5
DECISION_KINDS = (
    "failover",
    "failback",
    "manual",
    "switchover",
    "practice",
    "ignored",
    "blocked",
    "duplicate",
)
WEBHOOK_CODES = ("202", "400", "401", "403", "413", "415", "500", "503")


class DriftCollector(Collector):
    """responder_action_drift{action}: 1 when the live state differs from the active region's
    desired state, 0 when it matches; no sample while a transition is in progress, or for an
    action whose read failed, or from a plan stale or made for another active region."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def refresh(self, plan: dict[str, Any], state: State | None) -> None:
        """Set the values from the replica's plan document and the store's snapshot."""
        current = (
            state is not None
            and state.in_progress is None
            and not plan.get("stale")
            and plan.get("active_region") == state.active_region
        )
        drifted = {d.get("action") for d in plan.get("drift") or ()}
        checked = plan.get("drift_checked") or () if current else ()
        self.values = {a: 1.0 if a in drifted else 0.0 for a in checked}

    def collect(self) -> Any:
        family = GaugeMetricFamily(
            "responder_action_drift",
            "1 when the action's live state differs from the active region's desired state, "
            "0 when it matches; no sample while a transition is in progress.",
            labels=["action"],
        )
        for action, value in sorted(self.values.items()):
            family.add_metric([action], value)
        yield family


def multiprocess_dir() -> str | None:
    """The multiprocess directory when running under gunicorn's workers, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


class ResponderMetrics:
    """Every responder series; label values are pre-created so series exist from the start."""

    def __init__(
        self,
        registry: CollectorRegistry,
        regions: Sequence[str],
        actions: Sequence[str],
        multiproc_dir: str | None = None,
        receivers: Sequence[str] = (),
        sites: bool = False,
    ) -> None:
        self.registry = registry
        self.multiproc_dir = multiproc_dir
        self.drift = DriftCollector()
        if multiproc_dir is None:
            registry.register(self.drift)
        self.regions = tuple(regions)
        self.active_region = Gauge(
            "responder_active_region",
            "1 for the region traffic is directed to, 0 for the others.",
            ["region"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.primary_region = Gauge(
            "responder_primary_region",
            "1 for the primary region (where failback goes), 0 for the others.",
            ["region"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.frozen = Gauge(
            "responder_frozen",
            "1 while automatic transitions are frozen.",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.in_progress = Gauge(
            "responder_transition_in_progress",
            "1 while a transition is being reconciled.",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.phase = Gauge(
            "responder_phase",
            "1 for the responder's phase (steady, failing_over, stalled, ...), 0 for the others.",
            ["phase"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.action_region = Gauge(
            "responder_action_region",
            "1 for the region an action's last verified state belongs to, 0 for the others.",
            ["action", "region"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.awaiting_approval = Gauge(
            "responder_awaiting_approval",
            "1 while the transition waits for a person's approve or decline, else 0.",
            ["transition"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.notifications = Counter(
            "responder_notifications",
            "Notification deliveries by receiver, event and result (retried: a temporary "
            "failure that will be tried again).",
            ["receiver", "event", "result"],
            registry=registry,
        )
        # Not pre-created: a zero is not a time. Each label set keeps the newest transition of
        # its kind and regions; Prometheus keeps the ones before, so every transition scraped
        # once is on the dashboard as an annotation at its start and at its end.
        self.transition_times = Gauge(
            "responder_transition_timestamp_seconds",
            "Unix time the newest transition of a kind and regions started and ended, by event "
            "(started, completed, failed, aborted).",
            ["kind", "from_region", "to_region", "event"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.store_up = Gauge(
            "responder_state_store_up",
            "1 if the state store answered its last read for a scrape (at most 1 s old), else 0.",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.plan_ready = self._latest(
            "responder_plan_ready",
            "1 when a move to the region passes the action's checks (action readiness: the "
            "region itself), 0 when not; NaN for the active region and before an evaluation.",
            ["region", "action"],
        )
        self.plan_evaluated = self._latest(
            "responder_plan_evaluated_timestamp_seconds",
            "Unix time of the last plan evaluation on this replica; 0 before the first.",
        )
        self.plan_duration = self._latest(
            "responder_plan_evaluation_duration_seconds",
            "How long the last plan evaluation on this replica took.",
        )
        self.do_ratelimit_remaining = self._latest(
            "responder_digitalocean_ratelimit_remaining",
            "Requests the DigitalOcean token has left this hour, as its newest answer said "
            "(ratelimit-remaining; 0 before any answer).",
        )
        self.do_ratelimit_limit = self._latest(
            "responder_digitalocean_ratelimit_limit",
            "Requests an hour the DigitalOcean token may make, as its newest answer said "
            "(ratelimit-limit; 0 before any answer).",
        )
        self.practice_runs = self._latest(
            "responder_practice_runs_total",
            "Practice runs the history holds, by outcome (a gauge: it counts the runs within "
            "history.retain_days, read from the store at each scrape).",
            ["outcome"],
        )
        self.practice_last_success = self._latest(
            "responder_practice_last_success_timestamp_seconds",
            "When the newest SUCCEEDED practice run ended (0: none in the history).",
        )
        self.practice_max_age = self._latest(
            "responder_practice_max_age_seconds",
            "responder.practice.max_age_days in seconds while practice is enabled, else 0 "
            "(FailoverPracticeOverdue compares the last success with it).",
        )
        self.transitions = Counter(
            "responder_transitions",
            "Transitions by kind, regions and result (blocked: wanted but not started).",
            ["kind", "from_region", "to_region", "result"],
            registry=registry,
        )
        self.action_runs = Counter(
            "responder_action_runs",
            "Action attempts by result; each failed attempt counts, retried or not.",
            ["action", "result"],
            registry=registry,
        )
        self.webhook_requests = Counter(
            "responder_webhook_requests",
            "Webhook requests by HTTP status code.",
            ["code"],
            registry=registry,
        )
        self.decisions = Counter(
            "responder_decisions",
            "Decisions made on webhooks and operator requests, by kind.",
            ["kind"],
            registry=registry,
        )
        self.actions = tuple(actions)
        # The plan's own checks, before the actions: readiness, and site when configured.
        self.plan_checks = (READINESS_ACTION, SITE_ACTION) if sites else (READINESS_ACTION,)
        self._precreate(actions)
        for receiver in receivers:
            for event in NOTIFY_EVENTS:
                for result in NOTIFY_RESULTS:
                    self.notifications.labels(receiver, event, result)
        self._primary = self.regions[0] if self.regions else None

    def _latest(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge whose newest value wins across workers (set at each scrape)."""
        return Gauge(
            name, documentation, labels, registry=self.registry, multiprocess_mode="mostrecent"
        )

    def _precreate(self, actions: Sequence[str]) -> None:
        for region in self.regions:
            self.active_region.labels(region)
            self.primary_region.labels(region).set(1 if region == self.regions[0] else 0)
            for action in actions:
                self.action_region.labels(action, region)
        for name in PHASES:
            self.phase.labels(name)
        for kind in TRANSITION_KINDS:
            for source in self.regions:
                for target in self.regions:
                    if source == target:
                        continue
                    for result in TRANSITION_RESULTS:
                        self.transitions.labels(kind, source, target, result)
        for action in actions:
            for result in ACTION_RESULTS:
                self.action_runs.labels(action, result)
        for code in WEBHOOK_CODES:
            self.webhook_requests.labels(code)
        for kind in DECISION_KINDS:
            self.decisions.labels(kind)

    def approvals(self, recent: Sequence[Json]) -> None:
        """1 for a recent transition (history JSON) waiting for approval, 0 for the others.

        The most recent ones, not only the last: one approved and followed by another
        before any scrape must still go back to 0.
        """
        for record in recent[:APPROVAL_WINDOW]:
            approval = record.get("approval") or {}
            waiting = record["result"] == "in_progress" and approval.get("state") == "waiting"
            self.awaiting_approval.labels(record["id"]).set(1 if waiting else 0)

    def refresh(self, state: State | None, actions: dict[str, Json] | None = None) -> None:
        """Set the state-derived gauges from a store snapshot; None when the store is down.

        actions is the store's action_results(): each action's last verified region.
        """
        for region in self.regions:
            self.primary_region.labels(region).set(1 if region == self._primary else 0)
        if state is None:
            self.store_up.set(0)
            return
        self.store_up.set(1)
        for region in self.regions:
            self.active_region.labels(region).set(1 if region == state.active_region else 0)
        for name in PHASES:
            self.phase.labels(name).set(1 if name == state.phase else 0)
        self.frozen.set(1 if state.frozen is not None else 0)
        self.in_progress.set(1 if state.in_progress is not None else 0)
        last = state.last_transition
        if last is not None:
            regions = (last.kind, last.from_region or "", last.to_region)
            self.transition_times.labels(*regions, "started").set(last.started_at)
            if last.finished_at is not None:
                self.transition_times.labels(*regions, last.result).set(last.finished_at)
        if actions is not None:
            for action in self.actions:
                where = (actions.get(action) or {}).get("region")
                for region in self.regions:
                    self.action_region.labels(action, region).set(1 if region == where else 0)

    def refresh_plan(self, plan: dict[str, Any], active_region: str | None) -> None:
        """Set the plan's gauges from the replica's plan document (plan_file.PlanFile.read())."""
        ready = {
            (region, entry["action"]): entry["ready"]
            for region, planned in (plan.get("regions") or {}).items()
            for entry in planned.get("actions", ())
        }
        active = active_region or plan.get("active_region")
        for region in self.regions:
            for action in (*self.plan_checks, *self.actions):
                value = ready.get((region, action))
                known = isinstance(value, bool) and region != active
                gauge = self.plan_ready.labels(region, action)
                gauge.set((1.0 if value else 0.0) if known else math.nan)
        self.plan_evaluated.set(plan.get("evaluated_at_unix") or 0)
        self.plan_duration.set(plan.get("duration_seconds") or 0)

    def refresh_practice(
        self, outcomes: Sequence[str | None], last_success: float | None, max_age: float
    ) -> None:
        """Practice runs by outcome (runs under way have none yet), the last success, and
        the age past which FailoverPracticeOverdue fires (0: practice disabled)."""
        self.practice_max_age.set(max_age)
        for outcome in OUTCOMES:
            self.practice_runs.labels(outcome).set(sum(1 for o in outcomes if o == outcome))
        self.practice_last_success.set(last_success or 0.0)

    def digitalocean_ratelimit(self, seen: RateLimit) -> None:
        """Set DigitalOcean's rate limit gauges from an answer's headers (a Budget listener)."""
        self.do_ratelimit_remaining.set(seen.remaining)
        self.do_ratelimit_limit.set(seen.limit)

    def transition(self, kind: str, source: str | None, target: str | None, result: str) -> None:
        """Count a transition outcome: completed, failed, or blocked."""
        self.transitions.labels(kind, source or "", target or "", result).inc()

    def finished(self, record: TransitionRecord) -> None:
        """Count a transition the reconciler finished (an aborted one as failed)."""
        result = COUNTED_RESULTS.get(record.result, "failed")
        self.transition(record.kind, record.from_region, record.to_region, result)

    def render(self) -> bytes:
        """The exposition text: aggregated over workers in multiprocess mode."""
        if self.multiproc_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiproc_dir)
        registry.register(self.drift)
        return generate_latest(registry)
