"""App Platform apps and their deployments, as DigitalOcean runs them (no HTTP here).

Every spec update (and every POST .../deployments) makes a deployment. It moves through
PENDING_BUILD, BUILDING, PENDING_DEPLOY and DEPLOYING, a quarter of the app's
deploy_seconds each, then becomes ACTIVE: the app's active_deployment, and the one it
replaces SUPERSEDED. A deployment fault ends it in ERROR instead, at the end of the phase
the fault names, with the failed step's reason. A new deployment supersedes one still in
progress; cancel ends it CANCELED. Phases are worked out from the clock whenever the app
is read, so nothing runs in the background.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.do_api import rules, spec
from sandbox.do_api.errors import not_found, unprocessable
from sandbox.do_api.faults import DEPLOYMENT_FAILURES, Fault

PHASES = ("PENDING_BUILD", "BUILDING", "PENDING_DEPLOY", "DEPLOYING")
OWNER_UUID = "a4e16f25-cdd1-4483-b246-d77f283c9209"
# App Platform region slug -> (label, continent, data center).
APP_REGIONS = {
    "atl": ("Atlanta", "North America", "atl1"),
    "nyc": ("New York", "North America", "nyc1"),
    "sfo": ("San Francisco", "North America", "sfo3"),
    "tor": ("Toronto", "North America", "tor1"),
    "ams": ("Amsterdam", "Europe", "ams3"),
    "fra": ("Frankfurt", "Europe", "fra1"),
    "lon": ("London", "Europe", "lon1"),
    "blr": ("Bangalore", "Asia", "blr1"),
    "sgp": ("Singapore", "Asia", "sgp1"),
    "syd": ("Sydney", "Australia", "syd1"),
}
# The deployment view's component lists, by the spec's component kinds.
_DEPLOYED_KINDS = ("services", "workers", "jobs", "static_sites", "functions")
_STEP_PHASE = {"build": "BUILDING", "deploy": "DEPLOYING"}
_STATUS_COUNTS = {
    "PENDING": "pending_steps",
    "RUNNING": "running_steps",
    "SUCCESS": "success_steps",
    "ERROR": "error_steps",
}
# Float slack so a time exactly on a phase boundary counts as past it.
_EPSILON = 1e-9


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encrypt_secrets(spec: dict[str, Any]) -> None:
    """Replace SECRET values by an opaque EV[...] form, as DigitalOcean does on submission."""
    for envs in [spec.get("envs")] + [c.get("envs") for c in rules.components(spec)]:
        for env in envs or ():
            value = env.get("value")
            if env.get("type") == "SECRET" and value and not value.startswith("EV["):
                digest = hashlib.sha256(value.encode()).digest()
                env["value"] = f"EV[1:{base64.b64encode(digest).decode()[:32]}]"


@dataclass
class Deployment:
    """One deployment of a spec; phase() is a function of the clock until it has ended."""

    id: str
    spec: dict[str, Any]
    cause: str
    started: float
    seconds: float
    fault: Fault | None = None
    ended: str | None = None  # ACTIVE, ERROR, CANCELED or SUPERSEDED once over
    ended_at: float | None = None

    def boundary(self, stage: int) -> float:
        return self.started + self.seconds * stage / len(PHASES)

    def stage(self, now: float) -> int:
        """0-3: index in PHASES; 4: done (ACTIVE, or ERROR when a fault stops it earlier)."""
        at = now if self.ended_at is None else min(now, self.ended_at)
        if self.seconds <= 0 or self.ended == "ACTIVE":
            return len(PHASES)
        elapsed = (at - self.started) * len(PHASES) / self.seconds
        return min(len(PHASES), int(elapsed + _EPSILON))

    def natural_end(self, now: float) -> tuple[str, float] | None:
        """(ACTIVE or ERROR, when) if the deployment has run its course by now."""
        if self.fault is not None and self.fault.phase is not None:
            stop = PHASES.index(self.fault.phase) + 1
            if self.stage(now) >= stop:
                return "ERROR", self.boundary(stop)
        elif self.stage(now) >= len(PHASES):
            return "ACTIVE", self.boundary(len(PHASES))
        return None

    def phase(self, now: float) -> str:
        if self.ended is not None:
            return self.ended
        return PHASES[min(self.stage(now), len(PHASES) - 1)]

    def view(self, now: float) -> dict[str, Any]:
        """The deployment in the API's shape."""
        phase = self.phase(now)
        changed = self.ended_at if self.ended_at is not None else self.boundary(self.stage(now))
        body: dict[str, Any] = {
            "id": self.id,
            "spec": copy.deepcopy(self.spec),
            "cause": self.cause,
            "phase": phase,
            "phase_last_updated_at": rfc3339(max(changed, self.started)),
            "created_at": rfc3339(self.started),
            "updated_at": rfc3339(max(changed, self.started)),
            "progress": self._progress(now),
            "tier_slug": "basic",
        }
        for kind in _DEPLOYED_KINDS:
            built = [
                {"name": c["name"], "source_commit_hash": _commit(self.id, c["name"])}
                for c in self.spec.get(kind) or ()
            ]
            if built:
                body[kind] = built
        return body

    def _progress(self, now: float) -> dict[str, Any]:
        steps = [self._step(name, now) for name in _STEP_PHASE]
        counts = {s: sum(step["status"] == s for step in steps) for s in _STATUS_COUNTS}
        progress: dict[str, Any] = {_STATUS_COUNTS[s]: n for s, n in counts.items() if n}
        progress.update(total_steps=len(steps), steps=steps)
        return progress

    def _step(self, name: str, now: float) -> dict[str, Any]:
        phase = _STEP_PHASE[name]
        index = PHASES.index(phase)
        stage = self.stage(now)
        failed = self.ended == "ERROR" and self.fault is not None and self.fault.phase == phase
        if failed:
            status = "ERROR"
        elif stage > index:
            status = "SUCCESS"
        elif stage == index and self.ended is None:
            status = "RUNNING"
        else:
            status = "PENDING"
        message = "Building" if name == "build" else "Deploying"
        step: dict[str, Any] = {
            "name": name,
            "status": status,
            "steps": [
                {
                    "name": c["name"],
                    "status": status,
                    "component_name": c["name"],
                    "message_base": f"{message} {c['name']}",
                }
                for c in rules.components(self.spec)
            ],
        }
        if stage >= index:
            step["started_at"] = rfc3339(self.boundary(index))
        if status in ("SUCCESS", "ERROR"):
            step["ended_at"] = rfc3339(self.boundary(index + 1))
        if failed:
            assert self.fault is not None and self.fault.phase is not None
            code, default = DEPLOYMENT_FAILURES[self.fault.phase]
            step["reason"] = {"code": code, "message": self.fault.message or default}
        return step


def _check_app_envs(app_spec: dict[str, Any]) -> None:
    """App-level envs, as the App Spec reference has them, against the description's schema.

    The (trimmed) description lists envs per component only, so nothing else checks them.
    """
    for index, env in enumerate(app_spec.get("envs") or ()):
        problem = spec.check_schema("app_variable_definition", env, f"spec.envs[{index}]")
        if problem is not None:
            raise unprocessable(problem)


def _commit(deployment_id: str, component: str) -> str:
    return hashlib.sha1(f"{deployment_id}/{component}".encode()).hexdigest()


@dataclass
class App:
    id: str
    spec: dict[str, Any]
    created: float
    updated: float
    deploy_seconds: float
    deployments: list[Deployment] = field(default_factory=list)  # oldest first
    active: Deployment | None = None


class Apps:
    """Apps and deployments; thread-safe. fault_for(app_id) says whether a new deployment fails."""

    def __init__(
        self,
        fault_for: Callable[[str], Fault | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fault_for = fault_for
        self._clock = clock
        self._lock = threading.RLock()
        self._apps: dict[str, App] = {}

    def reset(self, seeded: Sequence[tuple[str, dict[str, Any], float]]) -> None:
        """Forget everything; load (id, spec, deploy_seconds) apps, each already ACTIVE."""
        with self._lock:
            self._apps = {}
            now = self._clock()
            for app_id, spec, seconds in seeded:
                app = App(app_id, copy.deepcopy(spec), now, now, seconds)
                encrypt_secrets(app.spec)
                spec_now = copy.deepcopy(app.spec)
                first = Deployment(str(uuid.uuid4()), spec_now, "initial deployment", now, 0)
                first.ended, first.ended_at = "ACTIVE", now
                app.deployments.append(first)
                app.active = first
                self._apps[app_id] = app

    def list_apps(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._view(app) for app in self._apps.values()]

    def get(self, app_id: str) -> dict[str, Any]:
        with self._lock:
            return self._view(self._app(app_id))

    def update(self, app_id: str, new_spec: dict[str, Any]) -> dict[str, Any]:
        """PUT: the new spec, checked, secrets encrypted; it starts a deployment."""
        with self._lock:
            app = self._app(app_id)
            _check_app_envs(new_spec)
            rules.check_app_spec(new_spec)
            app.spec = copy.deepcopy(new_spec)
            encrypt_secrets(app.spec)
            app.updated = self._clock()
            self._deploy(app, "app spec updated")
            return self._view(app)

    def list_deployments(self, app_id: str) -> list[dict[str, Any]]:
        """Newest first, as DigitalOcean lists them."""
        with self._lock:
            app = self._app(app_id)
            now = self._clock()
            return [d.view(now) for d in reversed(app.deployments)]

    def create_deployment(self, app_id: str) -> dict[str, Any]:
        with self._lock:
            app = self._app(app_id)
            return self._deploy(app, "manual").view(self._clock())

    def get_deployment(self, app_id: str, deployment_id: str) -> dict[str, Any]:
        with self._lock:
            app = self._app(app_id)
            return self._deployment(app, deployment_id).view(self._clock())

    def cancel_deployment(self, app_id: str, deployment_id: str) -> dict[str, Any]:
        with self._lock:
            app = self._app(app_id)
            deployment = self._deployment(app, deployment_id)
            now = self._clock()
            if deployment.ended is not None:
                raise unprocessable(
                    f"deployment {deployment_id} is {deployment.ended}; "
                    "only a deployment in progress can be canceled"
                )
            deployment.ended, deployment.ended_at = "CANCELED", now
            return deployment.view(now)

    # Internals (callers hold the lock)

    def _app(self, app_id: str) -> App:
        if app_id not in self._apps:
            raise not_found()
        app = self._apps[app_id]
        self._advance(app, self._clock())
        return app

    def _deployment(self, app: App, deployment_id: str) -> Deployment:
        for deployment in app.deployments:
            if deployment.id == deployment_id:
                return deployment
        raise not_found()

    def _advance(self, app: App, now: float) -> None:
        """Record every deployment that has run its course; the newest ACTIVE one is live."""
        for deployment in app.deployments:
            if deployment.ended is not None:
                continue
            end = deployment.natural_end(now)
            if end is None:
                continue
            deployment.ended, deployment.ended_at = end
            if deployment.ended == "ACTIVE":
                if app.active is not None:
                    app.active.ended, app.active.ended_at = "SUPERSEDED", deployment.ended_at
                app.active = deployment

    def _in_progress(self, app: App) -> Deployment | None:
        return next((d for d in reversed(app.deployments) if d.ended is None), None)

    def _deploy(self, app: App, cause: str) -> Deployment:
        now = self._clock()
        running = self._in_progress(app)
        if running is not None:
            running.ended, running.ended_at = "SUPERSEDED", now
        deployment = Deployment(
            id=str(uuid.uuid4()),
            spec=copy.deepcopy(app.spec),
            cause=cause,
            started=now,
            seconds=app.deploy_seconds,
            fault=self._fault_for(app.id),
        )
        app.deployments.append(deployment)
        self._advance(app, now)
        return deployment

    def _view(self, app: App) -> dict[str, Any]:
        now = self._clock()
        slug = str(app.spec.get("region") or "nyc")
        label, continent, data_center = APP_REGIONS.get(slug, (slug, "", slug))
        host = f"{app.spec['name']}-{app.id[:5]}.ondigitalocean.app"
        body: dict[str, Any] = {
            "id": app.id,
            "owner_uuid": OWNER_UUID,
            "spec": copy.deepcopy(app.spec),
            "default_ingress": f"https://{host}",
            "live_url": f"https://{host}",
            "live_url_base": f"https://{host}",
            "live_domain": host,
            "created_at": rfc3339(app.created),
            "updated_at": rfc3339(app.updated),
            "last_deployment_created_at": rfc3339(app.deployments[-1].started),
            "region": {
                "slug": slug,
                "label": label,
                "flag": slug,
                "continent": continent,
                "data_centers": [data_center],
                "default": slug == "nyc",
                "disabled": False,
            },
            "tier_slug": "basic",
        }
        if app.active is not None:
            body["active_deployment"] = app.active.view(now)
        running = self._in_progress(app)
        if running is not None:
            body["in_progress_deployment"] = running.view(now)
        return body
