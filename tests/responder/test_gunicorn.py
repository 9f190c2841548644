"""The responder under real gunicorn (3 workers) with sandbox regions and local actions."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest import approx

from sandbox.net import wait_until
from tests.conftest import RegionFactory
from tests.responder.weblib import (
    OPERATOR,
    VIEWER,
    Responder,
    appender,
    auth,
    blocking,
    http,
    lines,
    payload,
    put_heartbeat,
    rfc_unix,
    write_config,
)

pytestmark = pytest.mark.slow
Start = Callable[..., Responder]


@pytest.fixture
def regions(start_regions: RegionFactory) -> Any:
    """Two sandbox regions; eu-west-1 holds a fresh heartbeat from us-east-1."""
    started = start_regions()
    put_heartbeat(started["eu-west-1"], "us-east-1")
    return started


@pytest.fixture
def responder(tmp_path: Path, regions: Any) -> Iterator[Start]:
    """Start `ddb-responder serve` over the regions with the given actions and policy."""
    started: list[Responder] = []

    def start(actions: list[dict[str, Any]], policy: dict[str, Any] | None = None) -> Responder:
        urls = {name: region.url for name, region in regions.items()}
        config = write_config(tmp_path, region_urls=urls, actions=actions, policy=policy)
        server = Responder(config, tmp_path).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def completed(server: Responder) -> dict[str, Any] | None:
    transitions = server.history()["transitions"]
    return transitions[0] if transitions and transitions[0]["result"] != "in_progress" else None


def scrape(server: Responder, series: str) -> float:
    status, text = http("GET", f"{server.url}/metrics")
    assert status == 200
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match, f"{series} missing"
    return float(match.group(1))


COMPLETED = (
    'responder_transitions_total{from_region="us-east-1",kind="failover",'
    'result="completed",to_region="eu-west-1"}'
)
BLOCKED = COMPLETED.replace('result="completed"', 'result="blocked"')


def test_fifty_concurrent_identical_webhooks_make_one_transition(
    responder: Start, tmp_path: Path
) -> None:
    env, reloads, commands = tmp_path / "wp.env", tmp_path / "reloads", tmp_path / "commands"
    server = responder(
        [
            {"name": "wp-env", "type": "env_file", "path": str(env),
             "reload_command": ["sh", "-c", f"echo reload >> {reloads}"]},
            appender("notify", commands),
        ]
    )  # fmt: skip
    body = payload()
    barrier = threading.Barrier(50)
    answers: list[tuple[int, Any]] = []

    def deliver() -> None:
        barrier.wait()
        answers.append(server.webhook(body))

    threads = [threading.Thread(target=deliver) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [status for status, _ in answers] == [202] * 50
    kinds = [a["decisions"][0]["kind"] for _, a in answers]
    # Re-sends seen while the transition runs are duplicates; once it has completed, the
    # alert is about a region that is no longer active: ignored. Either way, nothing new.
    assert kinds.count("failover") == 1
    assert kinds.count("duplicate") + kinds.count("ignored") == 49

    done = wait_until(lambda: completed(server), 30, 0.1, "transition completed")
    assert done["result"] == "completed"
    assert env.read_text() == "DYNAMODB_REGION=eu-west-1\n"
    assert (lines(reloads), lines(commands)) == (1, 1)
    history = server.history()
    assert len(history["transitions"]) == 1
    assert [s["action"] for s in done["steps"]] == ["wp-env", "notify"]
    # Whichever worker answers, the aggregated metrics are the same.
    for _ in range(10):
        assert scrape(server, COMPLETED) == 1.0
        assert scrape(server, 'responder_active_region{region="eu-west-1"}') == 1.0
        assert scrape(server, 'responder_active_region{region="us-east-1"}') == 0.0
        repeats = [f'responder_decisions_total{{kind="{k}"}}' for k in ("duplicate", "ignored")]
        assert sum(scrape(server, r) for r in repeats) == 49.0
        assert scrape(server, 'responder_action_runs_total{action="notify",result="applied"}') == 1
        # The dashboard's transition annotations: its start and end times, from any worker.
        edge = 'responder_transition_timestamp_seconds{event="%s",from_region="us-east-1",'
        edge += 'kind="failover",to_region="eu-west-1"}'
        assert scrape(server, edge % "started") == approx(rfc_unix(done["started_at"]), abs=1e-3)
        assert scrape(server, edge % "completed") == approx(rfc_unix(done["finished_at"]), abs=1e-3)


def test_sigkill_between_steps_resumes_without_repeating_the_first(
    responder: Start, tmp_path: Path
) -> None:
    first, second, gate, pids = (tmp_path / n for n in ("first", "second", "gate", "pids"))
    blocking_step = blocking("second", pids, gate, second)
    server = responder([appender("first", first), blocking_step])
    status, answer = server.webhook(payload())
    assert status == 202
    transition_id = answer["decisions"][0]["transition_id"]
    wait_until(lambda: pids.exists(), 30, 0.05, "second step started")
    server.kill()
    # The command runs in its own session and outlived gunicorn: stop it like a reboot would.
    for line in pids.read_text().splitlines():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(line.split()[0]), signal.SIGKILL)
    assert lines(first) == 1 and lines(second) == 0

    server.start()
    gate.touch()
    done = wait_until(lambda: completed(server), 30, 0.1, "transition resumed and completed")
    assert (done["id"], done["result"]) == (transition_id, "completed")
    assert (lines(first), lines(second)) == (1, 1)
    assert [(s["action"], s["result"]) for s in done["steps"]] == [
        ("first", "applied"),
        ("second", "applied"),
    ]


def test_sigkill_during_the_reload_reloads_again_after_restart(
    responder: Start, tmp_path: Path
) -> None:
    """Killed after the env file was written, mid-reload: the resumed step reloads."""
    env, reloads, gate, pids = (tmp_path / n for n in ("wp.env", "reloads", "gate", "pids"))
    reload = blocking("reload", pids, gate, reloads)["command"]
    server = responder(
        [{"name": "wp-env", "type": "env_file", "path": str(env), "reload_command": reload,
          "timeout_seconds": 150}]
    )  # fmt: skip
    status, answer = server.webhook(payload())
    assert status == 202
    transition_id = answer["decisions"][0]["transition_id"]
    wait_until(lambda: pids.exists(), 30, 0.05, "reload started")
    server.kill()
    for line in pids.read_text().splitlines():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(line.split()[0]), signal.SIGKILL)
    # The file says the new region, but no reload finished: "unchanged" would be a lie.
    assert env.read_text() == "DYNAMODB_REGION=eu-west-1\n" and lines(reloads) == 0

    server.start()
    gate.touch()
    done = wait_until(lambda: completed(server), 30, 0.1, "transition resumed and completed")
    assert (done["id"], done["result"]) == (transition_id, "completed")
    assert lines(reloads) == 1 and lines(pids) == 2  # started twice, finished once
    (step,) = done["steps"]
    assert (step["result"], step["before"], step["after"]) == (
        "applied",
        {"value": "eu-west-1", "reloaded": False},
        {"value": "eu-west-1", "reloaded": True},
    )


def test_both_regions_down_is_blocked_and_changes_nothing(
    responder: Start, regions: Any, tmp_path: Path
) -> None:
    env = tmp_path / "wp.env"
    server = responder([{"name": "wp-env", "type": "env_file", "path": str(env)}])
    for region in regions.values():
        region.pause()
    try:
        status, answer = server.webhook(payload())
    finally:
        for region in regions.values():
            region.resume()
    assert status == 202
    (decision,) = answer["decisions"]
    assert decision["kind"] == "blocked" and "no healthy region" in decision["reason"]
    history = server.history()
    assert history["transitions"] == []
    assert [d["kind"] for d in history["decisions"]] == ["blocked"]
    assert not env.exists()
    assert http("GET", f"{server.url}/api/v1/status", headers=auth(VIEWER))[1]["phase"] == "blocked"
    for _ in range(3):
        assert scrape(server, BLOCKED) == 1.0


def test_freeze_blocks_and_dry_run_changes_nothing(responder: Start, tmp_path: Path) -> None:
    env, commands = tmp_path / "wp.env", tmp_path / "commands"
    server = responder(
        [{"name": "wp-env", "type": "env_file", "path": str(env)}, appender("notify", commands)],
        policy={"dry_run": True},
    )
    token = auth(OPERATOR)
    assert http("POST", f"{server.url}/api/v1/freeze", {"reason": "drill"}, token)[0] == 200
    status, answer = server.webhook(payload())
    assert status == 202 and answer["decisions"][0]["kind"] == "blocked"
    assert scrape(server, "responder_frozen") == 1.0
    assert http("POST", f"{server.url}/api/v1/unfreeze", None, token)[0] == 200

    status, answer = server.webhook(payload())
    assert status == 202 and answer["decisions"][0]["kind"] == "failover"
    done = wait_until(lambda: completed(server), 30, 0.1, "dry-run transition recorded")
    assert done["dry_run"] is True and done["result"] == "completed"
    assert [s["result"] for s in done["steps"]] == ["would_apply", "would_apply"]
    assert done["steps"][0]["after"] == "eu-west-1"
    assert not env.exists() and not commands.exists()
    state = http("GET", f"{server.url}/api/v1/status", headers=auth(VIEWER))[1]
    assert state["active_region"] == "us-east-1" and state["dry_run"] is True
    assert scrape(server, 'responder_active_region{region="us-east-1"}') == 1.0
    # A browser gets the page with the viewer token as its Basic password.
    dom = rendered(server.url.replace("http://", f"http://viewer:{VIEWER}@") + "/", tmp_path)
    assert '<div class="active" id="active-region">us-east-1</div>' in dom
    assert "<strong>dry run</strong>" in dom and "would_apply" in dom


def rendered(url: str, tmp_path: Path) -> str:
    """The page as headless Chromium renders it (no outside assets to fetch)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed")
    profile = tmp_path / "chromium-profile"
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
