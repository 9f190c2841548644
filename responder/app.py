"""The Flask app factory: create_app() builds everything; nothing is built at import time."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence

from flask import Flask, Response
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import HTTPException

from ddb_failover import logs
from ddb_failover.config import Config, DynamoDBState, load
from ddb_failover.logs import kv
from responder.actions import registry as action_registry
from responder.actions.base import Action
from responder.handling import ReadinessFn
from responder.metrics import ResponderMetrics, multiprocess_dir
from responder.readiness import CachedReadiness, ReadinessChecker
from responder.reconciler import Reconciler, StepEvent
from responder.runner import Runner
from responder.secrets import Secrets
from responder.service import Service
from responder.state import open_store
from responder.state.base import StateStore, StoreUnavailable
from responder.web import api, ops, pages, reports, webhook
from responder.web.common import AUTH, SERVICE, Authenticator, RequestProblem, error

DEFAULT_LEASE_SECONDS = 15.0
# Knobs for operators and tests; the config file stays the contract.
LEASE_ENV = "DDB_RESPONDER_LEASE_SECONDS"
POLL_ENV = "DDB_RESPONDER_POLL_SECONDS"
LOG_LEVEL_ENV = "DDB_RESPONDER_LOG_LEVEL"
STORE_RETRY_AFTER = "5"
# The page has no script and loads only its own stylesheet.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
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
) -> Flask:
    """The responder app; its runner is started by the caller (gunicorn's post_worker_init).

    Every secret is read now, so a missing or weak one stops the start (ConfigError).
    """
    secrets = Secrets.from_config(config)
    logs.set_redactor(secrets.redact)
    if store is None:
        store = open_store(config, clock)
    actions = list(actions) if actions is not None else action_registry.build(config)
    metrics = ResponderMetrics(
        registry if registry is not None else CollectorRegistry(),
        config.region_names,
        [a.name for a in actions],
        multiprocess_dir(),
    )
    if readiness is None:
        readiness = CachedReadiness(ReadinessChecker.from_config(config)).check

    def on_step(event: StepEvent) -> None:
        metrics.action_runs.labels(event.action, event.result).inc()

    reconciler = Reconciler(
        store,
        actions,
        config.responder.retry,
        lease_seconds=_lease_seconds(config, lease_seconds),
        renew_seconds=_renew_seconds(config, lease_seconds),
        clock=clock,
        on_step=on_step,
        on_finished=metrics.finished,
        redact=secrets.redact,
    )
    runner = Runner(
        store,
        reconciler,
        interval_seconds=poll_seconds,
        retain_seconds=config.responder.history.retain_days * 86400,
        clock=clock,
    )
    service = Service(config, store, actions, metrics, readiness, runner, clock)

    app = Flask(__name__, static_folder=None)  # the pages blueprint serves its stylesheet
    # No MAX_CONTENT_LENGTH: werkzeug would silently truncate a chunked body at the limit;
    # web.common.read_json enforces responder.max_body_bytes itself.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[SERVICE] = service
    app.extensions[AUTH] = Authenticator(secrets.tokens, config.responder.auth.public)
    for blueprint in (webhook.bp, api.bp, ops.bp, pages.bp, reports.bp):
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


def runner_of(app: Flask) -> Runner:
    """The app's reconciler runner (gunicorn_conf starts it in each worker)."""
    service: Service = app.extensions[SERVICE]
    return service.runner
