"""The plan under real gunicorn: one evaluator per replica, a takeover, the API, page and CLI."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from responder.cli.main import main
from responder.cli.remote import EXIT_NOT_READY, EXIT_OK, EXIT_USAGE
from sandbox.net import wait_until
from tests.conftest import RegionFactory
from tests.responder.test_gunicorn import rendered
from tests.responder.weblib import (
    OPERATOR,
    VIEWER,
    Responder,
    auth,
    http,
    put_heartbeat,
    write_config,
)

pytestmark = pytest.mark.slow
INTERVAL = 1.0


@pytest.fixture
def served(tmp_path: Path, start_regions: RegionFactory) -> Iterator[tuple[Responder, Path]]:
    """Three workers over two regions, evaluating every second; the server and its env file."""
    regions = start_regions()
    put_heartbeat(regions["eu-west-1"], "us-east-1")
    env = tmp_path / "wordpress" / "dynamodb.env"
    env.parent.mkdir()
    env.write_text("DYNAMODB_REGION=us-east-1\n")
    config = write_config(
        tmp_path,
        region_urls={name: region.url for name, region in regions.items()},
        actions=[{"name": "wp-env", "type": "env_file", "path": str(env)}],
        policy={"rpo_seconds": 3600},
        extra={"plan": {"interval_seconds": INTERVAL}},
    )
    server = Responder(config, tmp_path, workers=3).start()
    yield server, env
    server.stop()


def plan(server: Responder) -> dict[str, Any]:
    status, document = http("GET", f"{server.url}/api/v1/plan", headers=auth(VIEWER))
    assert status == 200
    return dict(document)


def workers(server: Responder) -> set[int]:
    assert server.process is not None
    master = server.process.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def evaluations(server: Responder, count: int) -> list[dict[str, Any]]:
    """The next count distinct evaluations, as whichever worker answers shows them."""
    seen: dict[float, dict[str, Any]] = {}

    def enough() -> bool:
        document = plan(server)
        if document["evaluated_at_unix"] is not None:
            seen[document["evaluated_at_unix"]] = document
        return len(seen) >= count

    wait_until(enough, count * INTERVAL * 3 + 15, 0.1, f"{count} evaluations")
    return list(seen.values())


def test_one_worker_evaluates_and_another_takes_over_when_it_dies(
    served: tuple[Responder, Path],
) -> None:
    server, _ = served
    wait_until(lambda: len(workers(server)) == 3, 30, 0.1, "three workers")
    first = evaluations(server, 4)
    holders = {document["evaluator"] for document in first}
    assert len(holders) == 1, f"more than one worker evaluated: {holders}"
    (holder,) = holders
    pid = int(holder.rpartition(":")[2])
    assert pid in workers(server)
    assert all(d["regions"]["eu-west-1"]["ready"] for d in first), first[-1]

    os.kill(pid, signal.SIGKILL)  # the kernel frees its lock; gunicorn starts a new worker
    taken = wait_until(
        lambda: (d := plan(server))["evaluator"] != holder and d,
        INTERVAL + 5 + 15,
        0.1,
        "another worker evaluating",
    )
    after = evaluations(server, 3)
    assert {d["evaluator"] for d in after[1:]} == {taken["evaluator"]}
    assert int(taken["evaluator"].rpartition(":")[2]) in workers(server)


def test_api_metrics_page_and_cli_agree_on_a_problem(
    served: tuple[Responder, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, env = served
    evaluations(server, 1)
    env.unlink()  # WordPress's env file is gone, with its directory: a failover cannot write it
    env.parent.rmdir()

    def missing() -> dict[str, Any] | None:
        document = plan(server)
        entry = document["regions"]["eu-west-1"]["actions"][1]
        kinds = [p["kind"] for p in entry["problems"]]
        return document if kinds == ["missing", "not_writable"] else None

    document = wait_until(missing, INTERVAL + 15, 0.1, "the missing env file in the plan")
    assert document["ready"] is False and document["stale"] is False
    assert http("GET", f"{server.url}/api/v1/plan")[0] == 401  # a viewer's or operator's
    assert http("GET", f"{server.url}/api/v1/plan", headers=auth(OPERATOR))[0] == 200
    expected = {
        'responder_plan_ready{action="wp-env",region="eu-west-1"}': "0.0",
        'responder_plan_ready{action="readiness",region="eu-west-1"}': "1.0",
        'responder_plan_ready{action="wp-env",region="us-east-1"}': "NaN",
    }
    for _ in range(6):  # whichever worker answers the scrape
        _, text = http("GET", f"{server.url}/metrics")
        found = dict(re.findall(r"^(responder_plan_ready\S+) (\S+)$", text, re.M))
        assert {series: found.get(series) for series in expected} == expected

    url = ["--url", server.url, "--config", str(server.config)]  # its viewer token
    assert main(["plan", *url]) == EXIT_NOT_READY
    out = capsys.readouterr().out
    assert "failover to eu-west-1: NOT READY (2 problem(s))" in out
    assert f"      problem [missing]: wp-env: env file {env} does not exist" in out
    assert main([*url, "plan", "--to", "us-east-1"]) == EXIT_OK
    assert "us-east-1 is the active region" in capsys.readouterr().out
    assert main(["plan", "--to", "mars-north-1", *url]) == EXIT_USAGE
    assert "unknown region 'mars-north-1'" in capsys.readouterr().err
    assert main(["plan", "--json", *url]) == EXIT_NOT_READY
    assert json.loads(capsys.readouterr().out)["regions"]["eu-west-1"]["ready"] is False

    dom = rendered(server.url.replace("http://", f"http://viewer:{VIEWER}@") + "/", tmp_path)
    assert "failover to eu-west-1:" in dom and "NOT READY" in dom
    assert f"missing: wp-env: env file {env} does not exist" in dom

    env.parent.mkdir()  # a directory that takes the file is enough: the failover writes it
    wait_until(lambda: plan(server)["ready"], INTERVAL + 15, 0.1, "the plan ready again")
    assert main(["plan", *url]) == EXIT_OK
