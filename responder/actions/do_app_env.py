"""Action do_app_env: an App Platform app's env var to the region's value, deployed and live.

The variable lives in the app-level envs (every component sees it) or in one component's
(a service, worker, job, static site or function, by its name, unique in an app).
current() is {"value": in the app's spec, "deployed": in the spec its active deployment
runs}; desired(region) has the region's value (default: the region's name) in both.

DigitalOcean deploys every spec change, which takes from seconds to minutes. apply()
waits for the deployment that carries the value and never starts a second one for it:

- a deployment in progress (or pending) whose spec has the value is waited on, so an
  attempt that crashed or gave up mid-deployment resumes, not re-deploys;
- else, if the spec lacks the value, one PUT of the spec with it starts the deployment;
- else (the spec has it, the live deployment not: an earlier one failed or was canceled)
  one new deployment of the spec.

It polls that deployment every poll_interval_seconds. ACTIVE is done. ERROR is a
PermanentError naming the step that failed, its reason, and the deployment's cause.
CANCELED or SUPERSEDED is a TemporaryError: the next attempt looks afresh. Still running
when the step's timeout_seconds are nearly spent (a few seconds are kept for verify), a
TemporaryError: the reconciler retries, and the next attempt waits on the same deployment.

A SECRET variable is refused (DigitalOcean hands back only its encrypted form, so it could
never be verified); so is an app-level variable that a component sets too (the component's
value wins there). A variable the spec lacks is added as GENERAL, scope RUN_TIME, so that
switching regions needs no rebuild. The plan's inspection reports the same refusals.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ddb_failover.config import AppEnvAction
from responder.actions.base import Action, Json, Transition
from responder.actions.do_client import DOClient
from responder.actions.inspection import INVALID_TARGET, MISSING, Limits, Problem, problem_of
from responder.model.errors import PermanentError, TemporaryError

COMPONENT_KINDS = ("services", "workers", "jobs", "static_sites", "functions")
RUNNING_PHASES = ("UNKNOWN", "PENDING_BUILD", "BUILDING", "PENDING_DEPLOY", "DEPLOYING")
# Kept from the step's timeout for verify's read after the wait.
VERIFY_RESERVE_SECONDS = 5.0
_REASON_CHARS = 300


def components(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every component of an app spec, of every kind."""
    for kind in COMPONENT_KINDS:
        yield from spec.get(kind) or ()


def failed_step(steps: list[Any]) -> dict[str, Any] | None:
    """The innermost step in ERROR that gives a reason, else the first in ERROR."""
    for step in steps:
        if not isinstance(step, dict) or step.get("status") != "ERROR":
            continue
        inner = failed_step(step.get("steps") or [])
        return inner if inner is not None and inner.get("reason") else step
    return None


class AppEnv(Action):
    """Drives one env var of one App Platform app (or component) to the region's value."""

    type = "do_app_env"

    def __init__(
        self,
        config: AppEnvAction,
        client: DOClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(config.name)
        self.config = config
        self.client = client
        self._clock = clock
        self._sleep = sleep

    @property
    def _where(self) -> str:
        component = self.config.component
        scope = f"component {component}" if component else "app level"
        return f"{self.config.variable} ({scope}) of app {self.config.app_id}"

    # Reading

    def _get_app(self) -> dict[str, Any]:
        body = self.client.call(
            f"{self.name}: get app {self.config.app_id}",
            self.client.pydo.apps.get,
            self.config.app_id,
        )
        app = (body or {}).get("app")
        if not isinstance(app, dict) or not isinstance(app.get("spec"), dict):
            raise PermanentError(f"{self.name}: response has no app with a spec")
        return app

    def _component(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        """The spec itself (app level) or the configured component; None when it has none."""
        if self.config.component is None:
            return spec
        return next((c for c in components(spec) if c.get("name") == self.config.component), None)

    def _env(self, holder: dict[str, Any] | None) -> dict[str, Any] | None:
        for env in (holder or {}).get("envs") or ():
            if isinstance(env, dict) and env.get("key") == self.config.variable:
                return env
        return None

    def _holder(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Where the variable goes in spec; PermanentError when the component is missing."""
        holder = self._component(spec)
        if holder is None:
            names = ", ".join(sorted(str(c.get("name")) for c in components(spec))) or "none"
            raise PermanentError(
                f"{self.name}: app {self.config.app_id} has no component "
                f"{self.config.component} (its components: {names})",
                MISSING,
            )
        return holder

    def _unmanageable(self, spec: dict[str, Any]) -> PermanentError | None:
        """Why apply must not manage the variable in spec, as an error to raise; None if it may.

        A missing component is raised at once (PermanentError of kind missing).
        """
        env = self._env(self._holder(spec))
        if env is not None and env.get("type") == "SECRET":
            return PermanentError(
                f"{self.name}: {self._where} is a SECRET; its value cannot be read back",
                INVALID_TARGET,
            )
        if self.config.component is None:
            overriding = [str(c.get("name")) for c in components(spec) if self._env(c)]
            if overriding:
                return PermanentError(
                    f"{self.name}: component(s) {', '.join(overriding)} set "
                    f"{self.config.variable} too, overriding the app-level value",
                    INVALID_TARGET,
                )
        return None

    def _value(self, spec: dict[str, Any]) -> str | None:
        """The variable's value in the app's spec; PermanentError when it cannot be managed."""
        refused = self._unmanageable(spec)
        if refused is not None:
            raise refused
        env = self._env(self._holder(spec))
        return None if env is None else str(env.get("value", ""))

    def _deployed(self, deployment: Any) -> str | None:
        """The variable's value in a deployment's spec, None wherever it is not set."""
        if not isinstance(deployment, dict) or not isinstance(deployment.get("spec"), dict):
            return None
        env = self._env(self._component(deployment["spec"]))
        return None if env is None else str(env.get("value", ""))

    def _carries(self, deployment: Any, value: str) -> bool:
        return self._deployed(deployment) == value

    def current(self) -> Json:
        """{"value": in the spec, "deployed": in the active deployment's spec}."""
        app = self._get_app()
        return {
            "value": self._value(app["spec"]),
            "deployed": self._deployed(app.get("active_deployment")),
        }

    def digitalocean_calls(self) -> int:
        """Read; read again, PUT the spec and find its deployment; poll it; read back.

        The polls are bounded by the step's timeout: one every poll_interval_seconds.
        """
        timeout = self.config.timeout_seconds
        waiting = timeout - min(VERIFY_RESERVE_SECONDS, timeout / 4)
        polls = math.ceil(waiting / self.config.poll_interval_seconds) + 1
        return 5 + polls

    def desired(self, region: str) -> Json:
        """The region's value (its name unless configured), in the spec and deployed."""
        values = self.config.values or {}
        value = values.get(region, region)
        return {"value": value, "deployed": value}

    def examine(self, region: str, desired: Json, limits: Limits, problems: list[Problem]) -> Json:
        """Also, from the one read of the app: what apply would refuse, as a problem.

        The app or the component missing is a problem of kind missing (and the state
        unknown); a SECRET variable, or an app-level one a component overrides, one of kind
        invalid_target, with the state as far as it can be read (a SECRET's cannot be).
        """
        app = self._get_app()
        spec = app["spec"]
        env = self._env(self._holder(spec))  # no such component: raised, a problem of its kind
        refused = self._unmanageable(spec)
        if refused is not None:
            problems.append(problem_of(refused))
        if env is not None and env.get("type") == "SECRET":
            return {"value": None, "deployed": None}  # only its encrypted form comes back
        value = None if env is None else str(env.get("value", ""))
        return {"value": value, "deployed": self._deployed(app.get("active_deployment"))}

    # Changing

    def apply(self, desired: Json, transition: Transition) -> None:
        """Find or start the deployment carrying the value, and wait for it to be ACTIVE."""
        timeout = self.config.timeout_seconds
        deadline = self._clock() + timeout - min(VERIFY_RESERVE_SECONDS, timeout / 4)
        value = str(desired["value"])
        app = self._get_app()
        deployment = self._running(app, value)
        if deployment is None and self._value(app["spec"]) != value:
            app = self._update_spec(app["spec"], value)
            deployment = self._running(app, value) or self._newest_running(value)
        elif deployment is None and not self._carries(app.get("active_deployment"), value):
            deployment = self._create_deployment()
        if deployment is None:
            if self._carries(self._get_app().get("active_deployment"), value):
                return  # deployed already (a fast deployment, or someone else's)
            raise TemporaryError(f"{self.name}: no deployment of {self._where} is visible yet")
        self._wait(str(deployment["id"]), deadline)

    def _running_with(self, candidates: Iterable[Any], value: str) -> dict[str, Any] | None:
        """The first of candidates still running with a spec that has the value."""
        for deployment in candidates:
            if self._carries(deployment, value) and deployment.get("phase") in RUNNING_PHASES:
                return dict(deployment)
        return None

    def _running(self, app: dict[str, Any], value: str) -> dict[str, Any] | None:
        """The app's deployment in progress (or pending) for a spec with the value."""
        keys = ("in_progress_deployment", "pending_deployment")
        return self._running_with((app.get(k) for k in keys), value)

    def _newest_running(self, value: str) -> dict[str, Any] | None:
        """The newest deployment still running with the value, from the deployments list."""
        body = self.client.call(
            f"{self.name}: list deployments of app {self.config.app_id}",
            self.client.pydo.apps.list_deployments,
            self.config.app_id,
        )
        return self._running_with((body or {}).get("deployments") or (), value)

    def _update_spec(self, spec: dict[str, Any], value: str) -> dict[str, Any]:
        """PUT the spec with the variable at value (DigitalOcean starts a deployment)."""
        changed = copy.deepcopy(spec)
        holder = self._holder(changed)
        env = self._env(holder)
        if env is None:
            env = {"key": self.config.variable, "scope": "RUN_TIME", "type": "GENERAL"}
            holder.setdefault("envs", []).append(env)
        env["value"] = value
        body = self.client.call(
            f"{self.name}: update the spec of app {self.config.app_id}",
            self.client.pydo.apps.update,
            self.config.app_id,
            {"spec": changed},
        )
        app = (body or {}).get("app")
        return app if isinstance(app, dict) else {}

    def _create_deployment(self) -> dict[str, Any] | None:
        body = self.client.call(
            f"{self.name}: create a deployment of app {self.config.app_id}",
            self.client.pydo.apps.create_deployment,
            self.config.app_id,
            {},
        )
        deployment = (body or {}).get("deployment")
        return deployment if isinstance(deployment, dict) else None

    def _wait(self, deployment_id: str, deadline: float) -> None:
        """Poll the deployment until it is ACTIVE; raise when it ends otherwise or time is up."""
        started = self._clock()
        while True:
            body = self.client.call(
                f"{self.name}: get deployment {deployment_id}",
                self.client.pydo.apps.get_deployment,
                self.config.app_id,
                deployment_id,
            )
            deployment = (body or {}).get("deployment") or {}
            phase = deployment.get("phase")
            if phase == "ACTIVE":
                return
            if phase == "ERROR":
                raise PermanentError(self._failure(deployment_id, deployment))
            if phase not in RUNNING_PHASES:
                raise TemporaryError(
                    f"{self.name}: deployment {deployment_id} of {self._where} ended {phase}"
                )
            left = deadline - self._clock()
            if left <= 0:
                raise TemporaryError(
                    f"{self.name}: deployment {deployment_id} of {self._where} still "
                    f"{phase} after {self._clock() - started:.0f}s; the next attempt waits on it"
                )
            self._sleep(min(self.config.poll_interval_seconds, left))

    def _failure(self, deployment_id: str, deployment: dict[str, Any]) -> str:
        """The PermanentError text of a deployment in ERROR: step, reason and cause."""
        step = failed_step((deployment.get("progress") or {}).get("steps") or [])
        detail = ""
        if step is not None:
            reason = step.get("reason") or {}
            why = ": ".join(str(reason[k]) for k in ("code", "message") if reason.get(k))
            detail = f" at step {step.get('name')}" + (f" ({why[:_REASON_CHARS]})" if why else "")
        cause = deployment.get("cause")
        return (
            f"{self.name}: deployment {deployment_id} of {self._where} ended in phase ERROR"
            f"{detail}" + (f"; its cause: {str(cause)[:_REASON_CHARS]}" if cause else "")
        )
