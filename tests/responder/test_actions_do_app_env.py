"""do_app_env through pydo against the DigitalOcean API sandbox, deployments and all."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from ddb_failover.config import AppEnvAction
from responder.actions.base import reconcile
from responder.actions.do_app_env import AppEnv, failed_step
from responder.actions.do_client import DOClient
from responder.model.errors import PermanentError, TemporaryError
from tests.responder.dosandbox import EAST, TOKEN, WEST, Sandbox, transition

APP_ID = "ac208c53-859f-5bcf-8813-cc5cc769f1ea"
APP_PATH = f"/v2/apps/{APP_ID}"
POLL = 0.05


class Crash(Exception):
    """The responder process dying at this point."""


def config(**fields: Any) -> AppEnvAction:
    return AppEnvAction.model_validate(
        {
            "type": "do_app_env",
            "name": "wordpress-app",
            "app_id": APP_ID,
            "timeout_seconds": 20,
            "poll_interval_seconds": POLL,
            **fields,
        }
    )


def app_env(sandbox: Sandbox, sleep: Callable[[float], None] = time.sleep, **fields: Any) -> AppEnv:
    """A new action instance with its own client, as a (re)started responder builds it."""
    return AppEnv(config(**fields), DOClient(sandbox.url, TOKEN, 2.0), sleep=sleep)


def deployments(sandbox: Sandbox) -> list[str]:
    """The app's deployments' phases, oldest first (read through pydo, not logged as ours)."""
    listed = DOClient(sandbox.url, TOKEN, 2.0).pydo.apps.list_deployments(APP_ID)
    return [d["phase"] for d in reversed(listed["deployments"])]


def env(spec: dict[str, Any], key: str, component: str | None = None) -> dict[str, Any] | None:
    holder = spec
    for kind in ("services", "workers", "jobs"):
        holder = next((c for c in spec.get(kind, []) if c["name"] == component), holder)
    return next((e for e in holder.get("envs", []) if e["key"] == key), None)


def value_of(spec: dict[str, Any], key: str, component: str | None = None) -> str | None:
    found = env(spec, key, component)
    return None if found is None else str(found["value"])


def app_writes(sandbox: Sandbox) -> list[str]:
    return [w for w in sandbox.writes() if w.startswith(f"PUT {APP_PATH}") or "deploy" in w]


def crash_on_first_wait(seconds: float) -> None:
    raise Crash("killed while waiting for the deployment")


def test_already_set_and_live_is_unchanged_with_one_read(sandbox: Sandbox) -> None:
    outcome = reconcile(app_env(sandbox), transition(EAST))

    expected = {"value": EAST, "deployed": EAST}
    assert (outcome.result, outcome.before) == ("unchanged", expected)
    assert [r["method"] for r in sandbox.requests()] == ["GET"]


def test_app_level_value_is_set_deployed_and_verified(sandbox: Sandbox) -> None:
    outcome = reconcile(app_env(sandbox), transition(WEST))

    assert outcome.result == "applied"
    assert outcome.before == {"value": EAST, "deployed": EAST}
    assert outcome.after == {"value": WEST, "deployed": WEST}
    app = sandbox.app()
    assert env(app["spec"], "DYNAMODB_REGION") == {
        "key": "DYNAMODB_REGION",
        "value": WEST,
        "scope": "RUN_TIME",
    }
    assert value_of(app["active_deployment"]["spec"], "DYNAMODB_REGION") == WEST
    # The rest of the spec went back as it was: the secret still in its encrypted form.
    assert value_of(app["spec"], "DB_PASSWORD") == "EV[1:c2VjcmV0]"
    assert app_writes(sandbox) == [f"PUT {APP_PATH}"]
    paths = [f"{r['method']} {r['path']}" for r in sandbox.requests()]
    assert paths[:3] == [f"GET {APP_PATH}", f"GET {APP_PATH}", f"PUT {APP_PATH}"]
    assert paths[-1] == f"GET {APP_PATH}"
    assert all(p.startswith(f"GET {APP_PATH}/deployments/") for p in paths[3:-1])
    assert deployments(sandbox) == ["SUPERSEDED", "ACTIVE"]
    assert reconcile(app_env(sandbox), transition(WEST)).result == "unchanged"


def test_a_component_value_is_set_and_a_missing_variable_added(sandbox: Sandbox) -> None:
    queue = app_env(sandbox, component="queue", variable="QUEUE_REGION")
    web = app_env(sandbox, component="web", values={EAST: "east.example", WEST: "west.example"})

    assert reconcile(queue, transition(WEST)).result == "applied"
    outcome = reconcile(web, transition(WEST))

    assert (outcome.before, outcome.after) == (
        {"value": None, "deployed": None},
        {"value": "west.example", "deployed": "west.example"},
    )
    spec = sandbox.app()["active_deployment"]["spec"]
    assert value_of(spec, "QUEUE_REGION", "queue") == WEST
    assert env(spec, "DYNAMODB_REGION", "web") == {
        "key": "DYNAMODB_REGION",
        "scope": "RUN_TIME",
        "type": "GENERAL",
        "value": "west.example",
    }
    assert value_of(spec, "DYNAMODB_REGION") == EAST  # the app level is kept


def test_a_failed_deployment_is_permanent_with_its_phase_and_cause(sandbox: Sandbox) -> None:
    sandbox.fault(deployment="ERROR", phase="DEPLOYING", count=1, message="health checks failed")

    with pytest.raises(PermanentError) as failed:
        reconcile(app_env(sandbox), transition(WEST))

    text = str(failed.value)
    assert text.startswith("wordpress-app: deployment ")
    assert text.endswith(
        f"of DYNAMODB_REGION (app level) of app {APP_ID} ended in phase ERROR at step deploy "
        "(DeployContainerHealthChecksFailed: health checks failed); its cause: app spec updated"
    )
    app = sandbox.app()
    assert value_of(app["active_deployment"]["spec"], "DYNAMODB_REGION") == EAST
    # An operator's retry: the spec has the value, so only a new deployment of it is made.
    outcome = reconcile(app_env(sandbox), transition(WEST))
    assert (outcome.before, outcome.result) == ({"value": WEST, "deployed": EAST}, "applied")
    assert app_writes(sandbox) == [f"PUT {APP_PATH}", f"POST {APP_PATH}/deployments"]


def test_a_crash_mid_deployment_resumes_waiting_on_it(sandbox: Sandbox) -> None:
    sandbox.reseed(deploy_seconds=1.0)
    with pytest.raises(Crash):
        reconcile(app_env(sandbox, sleep=crash_on_first_wait), transition(WEST))
    assert deployments(sandbox) == ["ACTIVE", "PENDING_BUILD"]

    # The restarted responder: a new action instance and client.
    outcome = reconcile(app_env(sandbox), transition(WEST))

    assert outcome.before == {"value": WEST, "deployed": EAST}
    assert (outcome.result, outcome.after) == ("applied", {"value": WEST, "deployed": WEST})
    assert app_writes(sandbox) == [f"PUT {APP_PATH}"]  # one spec change, no new deployment
    assert deployments(sandbox) == ["SUPERSEDED", "ACTIVE"]


def test_still_running_at_the_timeout_is_temporary_and_the_retry_waits_on_it(
    sandbox: Sandbox,
) -> None:
    sandbox.reseed(deploy_seconds=2.0)

    # The attempt gives up at its timeout: had it waited for the deployment, it would have applied.
    with pytest.raises(TemporaryError) as timed_out:
        reconcile(app_env(sandbox, timeout_seconds=0.4), transition(WEST))

    assert "still" in str(timed_out.value) and "the next attempt waits on it" in str(
        timed_out.value
    )
    outcome = reconcile(app_env(sandbox), transition(WEST))
    assert outcome.result == "applied"
    assert app_writes(sandbox) == [f"PUT {APP_PATH}"]
    assert deployments(sandbox) == ["SUPERSEDED", "ACTIVE"]


def test_a_5xx_while_waiting_is_temporary_then_no_second_deployment(sandbox: Sandbox) -> None:
    sandbox.reseed(deploy_seconds=0.5)
    sandbox.fault(status=503, count=1, path_prefix=f"{APP_PATH}/deployments/")

    with pytest.raises(TemporaryError, match=r"get deployment .*HTTP 503"):
        reconcile(app_env(sandbox), transition(WEST))
    outcome = reconcile(app_env(sandbox), transition(WEST))

    assert outcome.result == "applied"
    assert app_writes(sandbox) == [f"PUT {APP_PATH}"]
    assert deployments(sandbox) == ["SUPERSEDED", "ACTIVE"]


def test_a_5xx_on_the_spec_update_is_temporary_then_one_update(sandbox: Sandbox) -> None:
    sandbox.fault(status=500, count=1, method="PUT", path_prefix=APP_PATH)

    with pytest.raises(TemporaryError, match=r"update the spec .*HTTP 500"):
        reconcile(app_env(sandbox), transition(WEST))
    assert deployments(sandbox) == ["ACTIVE"]
    assert reconcile(app_env(sandbox), transition(WEST)).result == "applied"
    puts = [(r["status"], r["fault"]) for r in sandbox.requests() if r["method"] == "PUT"]
    assert puts == [(500, True), (200, False)]


def test_a_canceled_deployment_is_temporary_and_the_retry_redeploys(sandbox: Sandbox) -> None:
    sandbox.reseed(deploy_seconds=1.0)

    def cancel_it(seconds: float) -> None:
        running = sandbox.app()["in_progress_deployment"]["id"]
        client = DOClient(sandbox.url, TOKEN, 2.0).pydo
        client.apps.cancel_deployment(APP_ID, running)

    with pytest.raises(TemporaryError, match="ended CANCELED"):
        reconcile(app_env(sandbox, sleep=cancel_it), transition(WEST))
    assert deployments(sandbox) == ["ACTIVE", "CANCELED"]
    outcome = reconcile(app_env(sandbox), transition(WEST))

    assert outcome.result == "applied"
    ours = [w for w in app_writes(sandbox) if not w.endswith("/cancel")]  # the test canceled
    assert ours == [f"PUT {APP_PATH}", f"POST {APP_PATH}/deployments"]
    assert deployments(sandbox) == ["SUPERSEDED", "CANCELED", "ACTIVE"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"variable": "DB_PASSWORD"},
            f"DB_PASSWORD (app level) of app {APP_ID} is a SECRET; its value cannot be read back",
        ),
        (
            {"component": "admin"},
            f"app {APP_ID} has no component admin (its components: migrate, queue, web)",
        ),
        (
            {"variable": "QUEUE_REGION"},
            "component(s) queue set QUEUE_REGION too, overriding the app-level value",
        ),
    ],
)
def test_what_cannot_be_managed_is_permanent(
    sandbox: Sandbox, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(PermanentError) as refused:
        reconcile(app_env(sandbox, **fields), transition(WEST))
    assert str(refused.value) == f"wordpress-app: {message}"
    assert sandbox.writes() == []


def test_dry_run_changes_nothing(sandbox: Sandbox) -> None:
    outcome = reconcile(app_env(sandbox), transition(WEST, dry_run=True))

    assert (outcome.result, outcome.after) == ("would_apply", {"value": WEST, "deployed": WEST})
    assert sandbox.writes() == []


def test_failed_step_finds_the_innermost_reason() -> None:
    reason = {"code": "BuildJobFailed", "message": "exit 1"}
    steps = [
        {"name": "build", "status": "ERROR", "steps": [{"name": "web", "status": "ERROR"}]},
    ]
    assert failed_step(steps) == steps[0]
    steps[0]["steps"][0]["reason"] = reason
    assert failed_step(steps) == {"name": "web", "status": "ERROR", "reason": reason}
    assert failed_step([{"name": "build", "status": "SUCCESS"}]) is None


# --- inspect: the plan's read-only view ---


def test_inspect_reads_the_app_once_and_says_what_would_change(sandbox: Sandbox) -> None:
    seen = app_env(sandbox).inspect(WEST)

    assert (seen.current, seen.desired) == (
        {"value": EAST, "deployed": EAST},
        {"value": WEST, "deployed": WEST},
    )
    assert (seen.would_change, seen.ready, seen.problems) == (True, True, ())
    assert [f"{r['method']} {r['path']}" for r in sandbox.requests()] == [f"GET {APP_PATH}"]


@pytest.mark.parametrize(
    ("fields", "kind", "current", "message"),
    [
        (
            {"variable": "DB_PASSWORD"},
            "invalid_target",
            {"value": None, "deployed": None},
            f"DB_PASSWORD (app level) of app {APP_ID} is a SECRET; its value cannot be read back",
        ),
        (
            {"variable": "QUEUE_REGION"},
            "invalid_target",
            {"value": None, "deployed": None},
            "component(s) queue set QUEUE_REGION too, overriding the app-level value",
        ),
        (
            {"component": "admin"},
            "missing",
            None,
            f"app {APP_ID} has no component admin (its components: migrate, queue, web)",
        ),
        (
            {"app_id": "5d3ba2a8-1b8c-4a39-8b8e-2d2a7f3b1c00"},
            "missing",
            None,
            "get app 5d3ba2a8-1b8c-4a39-8b8e-2d2a7f3b1c00: HTTP 404",
        ),
    ],
)
def test_inspect_names_what_apply_would_refuse(
    sandbox: Sandbox, fields: dict[str, Any], kind: str, current: Any, message: str
) -> None:
    seen = app_env(sandbox, **fields).inspect(WEST)

    assert [p.kind for p in seen.problems] == [kind]
    assert seen.problems[0].message.startswith(f"wordpress-app: {message}")
    assert (seen.current, seen.ready) == (current, False)
    assert sandbox.writes() == []


def test_inspect_with_a_revoked_token_is_a_credentials_problem(sandbox: Sandbox) -> None:
    sandbox.fault(status=401, path_prefix="/v2/apps")
    seen = app_env(sandbox).inspect(WEST)
    assert [(p.kind, "HTTP 401" in p.message) for p in seen.problems] == [("credentials", True)]
    assert seen.would_change is None
