"""The Flask app factory: create_app() builds everything; nothing is built at import time."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path

from flask import Flask, Response
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import HTTPException

from ddb_failover import logs
from ddb_failover.config import Config, DynamoDBState, load
from ddb_failover.logs import kv
from responder.actions import aws_client
from responder.actions import registry as action_registry
from responder.actions.base import Action
from responder.actions.do_budget import Budget
from responder.actions.do_client import DOClient
from responder.actions.drain import Drain, Marker
from responder.actions.fence import FenceValues, steady_fence
from responder.actions.inspection import Limits
from responder.decide.readiness import CachedReadiness, ReadinessChecker
from responder.execute.reconciler import Reconciler, StepEvent
from responder.execute.runner import Runner
from responder.execute.switchover import Course, FencePart
from responder.intake import practice_sources
from responder.intake.handling import ReadinessFn, Telling
from responder.intake.practice import EXTENSION as PRACTICES
from responder.intake.practice import PracticeLoop, Practices
from responder.intake.service import Service
from responder.metrics import ResponderMetrics, multiprocess_dir
from responder.notify.notices import Announcer
from responder.notify.sender import Notifier
from responder.plan.plan_file import PlanFile, stale_after
from responder.plan.plan_runner import PlanRunner, PlanSource
from responder.secrets import Secrets
from responder.state.backends import open_store
from responder.state.records import Json, TransitionRecord
from responder.state.store import StateStore, StoreUnavailable, UnknownTransition
from responder.web import api, forms, ops, pages, reports, webhook
from responder.web.common import AUTH, SERVICE, Authenticator, RequestProblem, error

DEFAULT_LEASE_SECONDS = 15.0
# Knobs for operators and tests; the config file stays the contract.
LEASE_ENV = "DDB_RESPONDER_LEASE_SECONDS"
POLL_ENV = "DDB_RESPONDER_POLL_SECONDS"
PRACTICE_LOOP = "ddb_failover.practice_loop"
LOG_LEVEL_ENV = "DDB_RESPONDER_LOG_LEVEL"
STORE_RETRY_AFTER = "5"
# An approval's preview reads every action live; the webhook waits at most this long for it.
PREVIEW_SECONDS = 5.0
# The page loads only its own stylesheet and script (no inline ones); its forms post to it.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
log = logging.getLogger(__name__)


def _lease_seconds(config: Config, override: float | None) -> float:
    if override is not None:
        return override
    state = config.responder.state
    return state.lease_seconds if isinstance(state, DynamoDBState) else DEFAULT_LEASE_SECONDS


def _renew_seconds(config: Config, override: float | None) -> float | None:
    """The configured renewal period; None (a third of the lease) when the lease is overridden."""
    state = config.responder.state
    return state.renew_seconds if override is None and isinstance(state, DynamoDBState) else None


def create_app(
    config: Config,
    *,
    store: StateStore | None = None,
    actions: Sequence[Action] | None = None,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
    readiness: ReadinessFn | None = None,
    lease_seconds: float | None = None,
    poll_seconds: float = 5.0,
    plan_dir: Path | None = None,
    fences: Sequence[tuple[Action, FenceValues]] | None = None,
    marker: Marker | None = None,
) -> Flask:
    """The responder app; its runners are started by the caller (gunicorn's post_worker_init).

    Every secret is read now, so a missing or weak one stops the start (ConfigError).
    plan_dir holds the replica's plan file and lock (default: beside the metrics).
    fences and marker (a switchover's fence actions and drain marker) are built from the
    configuration unless injected; with injected actions, no fence unless injected too.
    """
    secrets = Secrets.from_config(config)
    logs.set_redactor(secrets.redact)
    if store is None:
        store = open_store(config, clock)
    injected = list(actions) if actions is not None else None
    budget = Budget()  # what DigitalOcean's answers say of the token's rate limit
    actions = list(actions) if actions is not None else _build_actions(config, budget)
    metrics = ResponderMetrics(
        registry if registry is not None else CollectorRegistry(),
        config.region_names,
        [a.name for a in actions],
        multiprocess_dir(),
        [r.name for r in config.responder.notify.receivers],
        sites=any(region.site is not None for region in config.regions),
    )
    budget.listen(metrics.digitalocean_ratelimit)
    # The plan reads readiness uncached, with its own checker, unless one is injected.
    plan_readiness = readiness or ReadinessChecker.from_config(config).check
    if readiness is None:
        readiness = CachedReadiness(ReadinessChecker.from_config(config)).check

    # What /metrics shows from the store, read at most once a second; at once after a step.
    store_reads = ops.Cached(partial(ops.read_store, store), ops.STORE_MAX_AGE_SECONDS)

    def on_step(event: StepEvent) -> None:
        metrics.action_runs.labels(event.action, event.result).inc()
        store_reads.expire()

    def on_finished(record: TransitionRecord) -> None:
        metrics.finished(record)
        store_reads.expire()

    announcer = Announcer(config.responder.notify)
    limits = Limits(max_ttl_seconds=config.responder.plan.max_ttl_seconds)
    telling = Telling(announcer, lambda region: preview(actions, region, limits))

    def problem(record: TransitionRecord) -> str | None:
        return service.problem(record)

    reconciler = Reconciler(
        store,
        actions,
        config.responder.retry,
        lease_seconds=_lease_seconds(config, lease_seconds),
        renew_seconds=_renew_seconds(config, lease_seconds),
        clock=clock,
        on_step=on_step,
        on_finished=on_finished,
        redact=secrets.redact,
        announcer=announcer,
        readiness=problem,
        course=_course(config, actions, injected, fences, marker, store),
    )
    runner = Runner(
        store,
        reconciler,
        interval_seconds=poll_seconds,
        retain_seconds=config.responder.history.retain_days * 86400,
        clock=clock,
    )
    notifier = Notifier(
        store,
        config.responder.notify,
        secrets.receivers,
        count=lambda receiver, event, result: metrics.notifications.labels(
            receiver, event, result
        ).inc(),
        redact=secrets.redact,
        clock=clock,
    )
    plan_file, plan_runner = _plan(
        config, store, injected, plan_readiness, plan_dir, clock, secrets.redact, budget, fences
    )
    service = Service(
        config,
        store,
        actions,
        metrics,
        readiness,
        runner,
        clock,
        plan_file,
        plan_runner,
        telling,
        notifier,
    )

    app = Flask(__name__, static_folder=None)  # the pages blueprint serves its stylesheet
    # No MAX_CONTENT_LENGTH: werkzeug would silently truncate a chunked body at the limit;
    # web.common.read_json enforces responder.max_body_bytes itself.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[SERVICE] = service
    app.extensions[AUTH] = Authenticator(secrets.tokens, config.responder.auth.public)
    app.extensions[ops.STORE_READS] = store_reads
    app.extensions[PRACTICES] = Practices(
        service, practice_sources.sources(config.responder.practice), runner.reconciler.holder
    )
    for blueprint in (webhook.bp, api.bp, ops.bp, pages.bp, reports.bp, forms.bp):
        app.register_blueprint(blueprint)
    app.register_error_handler(RequestProblem, _problem)
    app.register_error_handler(StoreUnavailable, _store_unavailable)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _bug)
    app.after_request(lambda response: _outgoing(response, secrets))
    return app


def _outgoing(response: Response, secrets: Secrets) -> Response:
    """Browser hardening on every answer, and no secret in any body that leaves."""
    response.headers.update(SECURITY_HEADERS)
    if not response.direct_passthrough and not response.is_streamed:
        body = response.get_data()
        cleaned = secrets.redact_bytes(body)
        if cleaned is not body:
            response.set_data(cleaned)
    return response


def _problem(problem: RequestProblem) -> Response:
    return error(problem.status, problem.message, problem.field)


def _bug(exc: Exception) -> Response:
    """A bug: logged with its traceback, answered 500 without details."""
    log.exception(kv(event="request_failed", error=type(exc).__name__))
    return error(500, "internal error; the responder's log has the details")


def plan_dir_for(config: Config) -> Path:
    """Where a replica keeps its plan: beside its metrics (emptied at start), else its records."""
    metrics_dir = multiprocess_dir()
    if metrics_dir is not None:
        return Path(metrics_dir) / "plan"
    return action_registry.state_dir_for(config.responder) / "plan"


def _plan(
    config: Config,
    store: StateStore,
    injected: Sequence[Action] | None,
    readiness: ReadinessFn,
    plan_dir: Path | None,
    clock: Callable[[], float],
    redact: Callable[[str], str],
    budget: Budget,
    fences: Sequence[tuple[Action, FenceValues]] | None = None,
) -> tuple[PlanFile, PlanRunner]:
    """The plan file every worker reads, and this worker's evaluation loop.

    The evaluator builds its own actions (its own clients), so it never shares a
    connection with the reconciler's thread; injected actions are shared. Both tell
    the process's one budget what DigitalOcean's answers said.
    """
    interval = config.responder.plan.interval_seconds
    directory = plan_dir or plan_dir_for(config)
    plan_file = PlanFile(directory, stale_after(interval), clock, redact)
    source = PlanSource(
        config,
        store,
        readiness,
        (lambda: injected) if injected is not None else (lambda: _build_actions(config, budget)),
        budget,
        lambda: [steady_fence(a, v) for a, v in _fences(config, injected, fences)],
    )
    return plan_file, PlanRunner(source, plan_file, interval)


def _fences(
    config: Config,
    injected: Sequence[Action] | None,
    fences: Sequence[tuple[Action, FenceValues]] | None,
) -> Sequence[tuple[Action, FenceValues]]:
    """The switchover's fence actions: injected, none beside injected actions, else built."""
    if fences is not None:
        return fences
    return [] if injected is not None else action_registry.build_fences(config)


def _course(
    config: Config,
    actions: Sequence[Action],
    injected: Sequence[Action] | None,
    fences: Sequence[tuple[Action, FenceValues]] | None,
    marker: Marker | None,
    store: StateStore,
) -> Course:
    """What each transition runs: a switchover's fence, drain and unfence around the actions."""
    fences = _fences(config, injected, fences)
    settings = config.responder
    if marker is None:
        endpoints = {region.name: region.endpoint_url for region in config.regions}
        factory = aws_client.client_factory(settings.policy.readiness_timeout_seconds)
        marker = Marker(endpoints, config.tables, config.canary.key, factory)
    wait = settings.switchover.drain_timeout_seconds

    def aborting(transition_id: str) -> bool:
        try:
            return store.transition(transition_id).abort is not None
        except (StoreUnavailable, UnknownTransition):  # the wait goes on, bounded
            return False

    def drain(record: TransitionRecord) -> Action:
        source = record.from_region or record.to_region
        stopped = partial(aborting, record.id)
        return Drain(marker, record.id, source, record.to_region, wait, stopped=stopped)

    return Course(actions, [FencePart(action, values) for action, values in fences], drain)


def _build_actions(config: Config, budget: Budget) -> list[Action]:
    """The configured actions, their DigitalOcean client telling budget what each answer said."""
    do_client = functools.partial(DOClient.from_config, budget=budget)
    return action_registry.build(config, do_client_factory=do_client)


def _store_unavailable(exc: StoreUnavailable) -> Response:
    """503 so Alertmanager (and any client) retries; nothing was recorded."""
    response = error(503, f"state store unavailable: {exc}")
    response.headers["Retry-After"] = STORE_RETRY_AFTER
    return response


def _http_error(exc: HTTPException) -> Response:
    """Errors Flask raises (404, 405, 413, ...) as JSON naming the problem."""
    return error(exc.code or 500, exc.description or exc.name)


def create_app_from_env() -> Flask:
    """The app gunicorn loads: config from $DDB_FAILOVER_CONFIG, knobs from the environment."""
    logs.setup(os.environ.get(LOG_LEVEL_ENV, "INFO"))
    lease = os.environ.get(LEASE_ENV)
    poll = os.environ.get(POLL_ENV)
    return create_app(
        load(None),
        lease_seconds=float(lease) if lease else None,
        poll_seconds=float(poll) if poll else 5.0,
    )


def serves_responder(app: object) -> bool:
    """True for an app create_app() built."""
    return isinstance(app, Flask) and SERVICE in app.extensions


def store_of(app: Flask) -> StateStore:
    """The app's state store (gunicorn_conf closes it when the worker exits)."""
    service: Service = app.extensions[SERVICE]
    return service.store


def runner_of(app: Flask) -> Runner:
    """The app's reconciler runner (gunicorn_conf starts it in each worker)."""
    service: Service = app.extensions[SERVICE]
    return service.runner


def notifier_of(app: Flask) -> Notifier:
    """The app's notification sender (gunicorn_conf starts it in each worker)."""
    service: Service = app.extensions[SERVICE]
    assert service.notifier is not None
    return service.notifier


def preview(actions: Sequence[Action], region: str, limits: Limits) -> tuple[Json, ...]:
    """Per action, what a transition to region would change and what stands in its way.

    Read live (the plan's read-only inspection), all actions at once, for at most
    PREVIEW_SECONDS: the webhook that records the transition waits for it.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, len(actions)), thread_name_prefix="preview")
    futures = [pool.submit(action.inspect, region, limits) for action in actions]
    wait(futures, timeout=PREVIEW_SECONDS)
    # Not a `with` block: leaving one waits for every inspection, however long it hangs.
    # A late one finishes in its thread (each client has its own timeout) and is dropped.
    pool.shutdown(wait=False, cancel_futures=True)
    late = {"kind": "unreachable", "severity": "error", "message": "no answer in time"}
    return tuple(
        f.result().to_json()
        if f.done()
        else {"action": a.name, "type": a.type, "ready": False, "problems": [late]}
        for a, f in zip(actions, futures, strict=True)
    )


def practice_loop_of(app: Flask) -> PracticeLoop:
    """The app's practice loop (gunicorn_conf starts it in each worker), made once."""
    loop = app.extensions.get(PRACTICE_LOOP)
    if loop is None:
        loop = app.extensions[PRACTICE_LOOP] = PracticeLoop(app.extensions[PRACTICES])
    return loop


def plan_runner_of(app: Flask) -> PlanRunner:
    """The app's plan evaluation loop (gunicorn_conf starts it in each worker)."""
    service: Service = app.extensions[SERVICE]
    return service.plan_runner
