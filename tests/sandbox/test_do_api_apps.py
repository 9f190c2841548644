"""App Platform in the sandbox: app specs with their envs, and the deployments they make."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from sandbox.net import wait_until
from tests.sandbox.doapi import OBJECTS, PRIMARY, SECONDARY, SEED, Server

APP_ID = OBJECTS["app_id"]
APP_PATH = f"/v2/apps/{APP_ID}"
DEPLOY_SECONDS = 0.8
ORDER = ["PENDING_BUILD", "BUILDING", "PENDING_DEPLOY", "DEPLOYING", "ACTIVE"]


def every_kind_spec() -> dict[str, Any]:
    """An app with one component of each kind, each with its own envs."""
    image = {"registry_type": "DOCKER_HUB", "repository": "wordpress", "tag": "6"}
    git = {"repo_clone_url": "https://github.com/example/site.git", "branch": "main"}

    def envs(value: str) -> list[dict[str, Any]]:
        return [{"key": "DYNAMODB_REGION", "value": value, "scope": "RUN_TIME"}]

    return {
        "name": "every-kind",
        "region": "nyc",
        "envs": envs(PRIMARY),
        "services": [{"name": "web", "image": image, "http_port": 80, "envs": envs(PRIMARY)}],
        "workers": [{"name": "queue", "image": image, "envs": envs(PRIMARY)}],
        "jobs": [{"name": "migrate", "image": image, "kind": "PRE_DEPLOY", "envs": envs(PRIMARY)}],
        "static_sites": [{"name": "docs", "git": git, "envs": envs(PRIMARY)}],
        "functions": [{"name": "hooks", "git": git, "envs": envs(PRIMARY)}],
    }


def reseed(server: Server, spec: dict[str, Any] | None = None, seconds: float = 0.0) -> None:
    seed = copy.deepcopy(SEED)
    app = seed["apps"][0]
    app["deploy_seconds"] = seconds
    if spec is not None:
        app["spec"] = spec
    server.reseed(seed)


def get_app(server: Server) -> dict[str, Any]:
    status, _, body = server.call("GET", APP_PATH)
    assert status == 200, body
    return dict(body["app"])


def put_spec(server: Server, spec: dict[str, Any]) -> tuple[int, Any]:
    status, _, body = server.call("PUT", APP_PATH, {"spec": spec})
    return status, body


def get_deployment(server: Server, deployment_id: str) -> dict[str, Any]:
    status, _, body = server.call("GET", f"{APP_PATH}/deployments/{deployment_id}")
    assert status == 200, body
    return dict(body["deployment"])


def with_env(spec: dict[str, Any], value: str, component: str | None = None) -> dict[str, Any]:
    """spec with DYNAMODB_REGION set to value at app level or in the named component."""
    changed = copy.deepcopy(spec)
    holders = [changed] if component is None else []
    for kind in ("services", "workers", "jobs", "static_sites", "functions"):
        holders += [c for c in changed.get(kind, []) if c["name"] == component]
    [holder] = holders
    for env in holder["envs"]:
        if env["key"] == "DYNAMODB_REGION":
            env["value"] = value
    return changed


def env_value(spec: dict[str, Any], component: str | None = None) -> str | None:
    holder = spec
    for kind in ("services", "workers", "jobs", "static_sites", "functions"):
        holder = next((c for c in spec.get(kind, []) if c["name"] == component), holder)
    return next((e["value"] for e in holder.get("envs", []) if e["key"] == "DYNAMODB_REGION"), None)


def test_get_app_has_its_spec_envs_and_active_deployment(server: Server) -> None:
    app = get_app(server)
    assert app["id"] == APP_ID
    assert env_value(app["spec"]) == PRIMARY
    assert app["active_deployment"]["phase"] == "ACTIVE"
    assert app["active_deployment"]["spec"] == app["spec"]
    assert "in_progress_deployment" not in app
    listed = server.client().apps.list(enforce_https=False)["apps"]
    assert [a["id"] for a in listed] == [APP_ID]


def test_a_spec_change_deploys_through_the_phases_to_active_after_the_delay(
    server: Server,
) -> None:
    reseed(server, seconds=DEPLOY_SECONDS)
    old = get_app(server)["active_deployment"]
    started = time.monotonic()

    status, body = put_spec(server, with_env(old["spec"], SECONDARY))

    assert status == 200, body
    assert env_value(body["app"]["spec"]) == SECONDARY
    running = body["app"]["in_progress_deployment"]
    assert (running["phase"], running["cause"]) == ("PENDING_BUILD", "app spec updated")
    assert env_value(running["spec"]) == SECONDARY
    assert body["app"]["active_deployment"]["id"] == old["id"]  # still serving the old spec
    seen: list[str] = []

    def active() -> bool:
        phase = get_deployment(server, running["id"])["phase"]
        if not seen or seen[-1] != phase:
            seen.append(phase)
        return phase == "ACTIVE"

    wait_until(active, 30, interval=0.05, message="the deployment ACTIVE")
    assert time.monotonic() - started >= DEPLOY_SECONDS * 0.95
    assert seen == sorted(seen, key=ORDER.index) and seen[-1] == "ACTIVE"
    app = get_app(server)
    assert app["active_deployment"]["id"] == running["id"]
    assert env_value(app["active_deployment"]["spec"]) == SECONDARY
    assert "in_progress_deployment" not in app
    assert get_deployment(server, old["id"])["phase"] == "SUPERSEDED"
    done = get_deployment(server, running["id"])
    assert [s["status"] for s in done["progress"]["steps"]] == ["SUCCESS", "SUCCESS"]
    assert done["progress"]["success_steps"] == done["progress"]["total_steps"] == 2


@pytest.mark.parametrize("component", [None, "web", "queue", "migrate", "docs", "hooks"])
def test_envs_at_app_level_and_in_every_component_kind(
    server: Server, component: str | None
) -> None:
    reseed(server, every_kind_spec())
    spec = get_app(server)["spec"]

    status, body = put_spec(server, with_env(spec, SECONDARY, component))

    assert status == 200, body
    wait_until(lambda: "in_progress_deployment" not in get_app(server), 30, interval=0.05)
    live = get_app(server)["active_deployment"]["spec"]
    for name in (None, "web", "queue", "migrate", "docs", "hooks"):
        expected = SECONDARY if name == component else PRIMARY
        assert env_value(live, name) == expected, name


def test_deployments_list_create_get_and_cancel(server: Server) -> None:
    reseed(server, seconds=30)
    client = server.client()
    initial = client.apps.list_deployments(APP_ID, enforce_https=False)["deployments"]
    assert [d["phase"] for d in initial] == ["ACTIVE"]

    created = client.apps.create_deployment(APP_ID, {"force_build": True}, enforce_https=False)
    deployment = created["deployment"]
    assert (deployment["phase"], deployment["cause"]) == ("PENDING_BUILD", "manual")
    listed = client.apps.list_deployments(APP_ID, enforce_https=False)
    assert [d["id"] for d in listed["deployments"]] == [deployment["id"], initial[0]["id"]]
    assert listed["meta"]["total"] == 2
    fetched = client.apps.get_deployment(APP_ID, deployment["id"], enforce_https=False)
    assert fetched["deployment"]["id"] == deployment["id"]

    canceled = client.apps.cancel_deployment(APP_ID, deployment["id"], enforce_https=False)
    assert canceled["deployment"]["phase"] == "CANCELED"
    app = get_app(server)
    assert "in_progress_deployment" not in app
    assert app["active_deployment"]["id"] == initial[0]["id"]
    status, _, error = server.call("POST", f"{APP_PATH}/deployments/{deployment['id']}/cancel")
    assert (status, error["id"]) == (422, "unprocessable_entity")
    assert "only a deployment in progress can be canceled" in error["message"]
    missing = f"{APP_PATH}/deployments/00000000-0000-4000-8000-000000000000"
    assert server.call("GET", missing)[0] == 404
    assert server.call("GET", "/v2/apps/no-such-app")[0] == 404


def test_a_new_deployment_supersedes_one_in_progress(server: Server) -> None:
    reseed(server, seconds=30)
    spec = get_app(server)["spec"]
    first = put_spec(server, with_env(spec, SECONDARY))[1]["app"]["in_progress_deployment"]
    second = put_spec(server, with_env(spec, PRIMARY))[1]["app"]["in_progress_deployment"]
    assert first["id"] != second["id"]
    assert get_deployment(server, first["id"])["phase"] == "SUPERSEDED"
    assert get_app(server)["in_progress_deployment"]["id"] == second["id"]


@pytest.mark.parametrize("phase", ["BUILDING", "DEPLOYING"])
def test_a_deployment_fault_ends_it_in_error_with_the_steps_reason(
    server: Server, phase: str
) -> None:
    reseed(server, seconds=0.2)
    server.control(
        "POST",
        "faults",
        {"deployment": "ERROR", "phase": phase, "count": 1, "message": "health check failed"},
    )
    old = get_app(server)["active_deployment"]

    failing = put_spec(server, with_env(old["spec"], SECONDARY))[1]["app"]["in_progress_deployment"]

    wait_until(
        lambda: get_deployment(server, failing["id"])["phase"] == "ERROR",
        30,
        interval=0.05,
        message="the deployment in ERROR",
    )
    failed = get_deployment(server, failing["id"])
    steps = {s["name"]: s for s in failed["progress"]["steps"]}
    failed_step = "build" if phase == "BUILDING" else "deploy"
    assert steps[failed_step]["status"] == "ERROR"
    assert steps[failed_step]["reason"]["message"] == "health check failed"
    assert steps[failed_step]["reason"]["code"]
    assert failed["progress"]["error_steps"] == 1
    app = get_app(server)
    assert app["active_deployment"]["id"] == old["id"]  # the old spec keeps serving
    assert env_value(app["spec"]) == SECONDARY
    # The fault was for one deployment: the next one goes through.
    retried = server.client().apps.create_deployment(APP_ID, {}, enforce_https=False)
    wait_until(
        lambda: get_deployment(server, retried["deployment"]["id"])["phase"] == "ACTIVE",
        30,
        interval=0.05,
    )
    assert server.control("GET", "faults")["faults"] == []


def test_a_deployment_fault_can_name_its_app(server: Server) -> None:
    reseed(server)
    server.control("POST", "faults", {"deployment": "ERROR", "app_id": "another-app"})
    spec = get_app(server)["spec"]
    deployment = put_spec(server, with_env(spec, SECONDARY))[1]["app"]["active_deployment"]
    assert deployment["phase"] == "ACTIVE"  # no delay: active at once, and not faulted
    assert env_value(deployment["spec"]) == SECONDARY


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s["workers"].append({"name": "web"}),
            "spec: component name(s) ['web'] used more than once",
        ),
        (
            lambda s: s["envs"].append({"key": "DYNAMODB_REGION", "value": "x"}),
            "spec.envs: key(s) ['DYNAMODB_REGION'] set more than once",
        ),
        (
            lambda s: s["envs"].append({"key": "1BAD", "value": "x"}),
            "spec.envs[1].key: '1BAD' does not match",
        ),
        (
            lambda s: s["services"][0]["envs"].append({"key": "X", "scope": "SOMETIMES"}),
            "scope",
        ),
        (lambda s: s.pop("name"), "'name' is a required property"),
    ],
)
def test_spec_updates_keep_digitaloceans_rules(server: Server, change: Any, message: str) -> None:
    spec = get_app(server)["spec"]
    change(spec)
    before = server.control("GET", "state")

    status, error = put_spec(server, spec)

    assert (status, error["id"]) == (422, "unprocessable_entity")
    assert message in error["message"]
    assert server.control("GET", "state") == before


def test_secret_values_come_back_encrypted(server: Server) -> None:
    spec = get_app(server)["spec"]
    spec["envs"].append({"key": "DB_PASSWORD", "value": "hunter2", "type": "SECRET"})

    status, body = put_spec(server, spec)

    assert status == 200
    [secret] = [e for e in body["app"]["spec"]["envs"] if e["key"] == "DB_PASSWORD"]
    assert secret["value"].startswith("EV[1:") and "hunter2" not in secret["value"]
    # Sent back as read, the encrypted value stays as it is.
    assert put_spec(server, body["app"]["spec"])[1]["app"]["spec"] == body["app"]["spec"]
