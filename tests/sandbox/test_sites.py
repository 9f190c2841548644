"""The WordPress stand-ins, the Global Load Balancer's front and blackbox_exporter, for real.

One `python -m sandbox up --only glb,blackbox` for the module: moto regions, a site per
region, the DigitalOcean API sandbox, the glb front and the real blackbox_exporter, each
its own process, driven by `python -m sandbox chaos` as a user would. Every test leaves
the stack as it found it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ddb_failover import config
from responder.actions import _load_balancers as lbs
from sandbox.components.blackbox import MODULE, SHIPPED, binary
from sandbox.components.sites import SITE_HOST
from sandbox.net import wait_until
from sandbox.regions import dynamodb_client
from sandbox.site import ENV_FILE, newest_post, read_region
from sandbox.users import post
from tests.conftest import CANARY_KEY, sandbox_chaos

PRIMARY, SECONDARY = "us-east-1", "eu-west-1"
SLUGS = {PRIMARY: "nyc3", SECONDARY: "ams3"}  # the seed's DigitalOcean regions
TABLE = "wordpress_posts"
# The front's checks: every 1 s, unhealthy after 3 failures, healthy after 2 successes.
GLB_MOVES_WITHIN = 8.0

pytestmark = pytest.mark.slow


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def get(url: str, host: str | None = SITE_HOST, timeout: float = 5) -> Answer:
    headers = {"Host": host} if host else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, dict(response.headers), response.read().decode())
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers), error.read().decode())


@dataclass
class Running:
    dir: Path
    state: dict[str, Any]

    def url(self, name: str) -> str:
        return str(self.state["components"][name]["url"])

    def chaos(self, region: str, op: str) -> None:
        sandbox_chaos(self.dir, region, op)
        self.state = json.loads((self.dir / "stack.json").read_text())

    def reload(self, *options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sandbox.site", "reload", "--dir", str(self.dir), *options],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def served_by(self) -> str | None:
        return get(f"{self.url('glb')}/").headers.get("X-Site-Region")

    def do_token(self) -> str:
        return (self.dir / "secrets" / "do-token").read_text().strip()

    def set_glb(self, **settings: Any) -> None:
        """Change the Global Load Balancer's glb_settings through the API, as the responder does."""
        do = self.url("do_api")
        headers = {"Authorization": f"Bearer {self.do_token()}", "Content-Type": "application/json"}
        [glb] = [
            lb
            for lb in json.loads(urllib.request.urlopen(
                urllib.request.Request(f"{do}/v2/load_balancers", headers=headers), timeout=5
            ).read())["load_balancers"]
            if lb.get("type") == "GLOBAL"
        ]  # fmt: skip
        body = lbs.update_body(glb, {"glb_settings": {**glb["glb_settings"], **settings}})
        request = urllib.request.Request(
            f"{do}/v2/load_balancers/{glb['id']}",
            data=json.dumps(body).encode(),
            headers=headers,
            method="PUT",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    directory = tmp_path_factory.mktemp("sites")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "up", "--dir", str(directory), "--only", "glb,blackbox"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def ready() -> dict[str, Any] | None:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        path = directory / "stack.json"
        state = json.loads(path.read_text()) if path.exists() else {}
        return state if {"glb", "blackbox"} <= set(state.get("components", {})) else None

    state = wait_until(ready, 120, interval=0.2, message="sandbox up --only glb,blackbox")
    try:
        yield Running(directory, state)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_stack_json_names_each_site_the_glb_and_the_prober(running: Running) -> None:
    components = running.state["components"]
    for name in (f"site:{PRIMARY}", f"site:{SECONDARY}", "glb", "blackbox"):
        assert components[name]["url"].startswith("http://127.0.0.1:"), name
        assert components[name]["pid"], name
    assert running.state["site_host"] == SITE_HOST
    # The generated configuration tells the responder where each region's site answers.
    loaded = config.load(running.dir / "ddb-failover.yml")
    for region in loaded.regions:
        assert region.site is not None
        assert region.site.health_url == f"{components[f'site:{region.name}']['url']}/healthz"
        assert (region.site.host, region.site.expect_status) == (SITE_HOST, 200)


def test_front_page_renders_the_newest_post_from_the_env_files_region(running: Running) -> None:
    assert read_region(running.dir / ENV_FILE) == PRIMARY
    for region in (PRIMARY, SECONDARY):
        page = get(f"{running.url(f'site:{region}')}/")
        assert page.status == 200, page.body
        assert "<h1>We moved regions and nobody noticed</h1>" in page.body  # the newer post
        assert f"Served from {region}, posts read from DynamoDB {PRIMARY}." in page.body
        assert (page.headers["X-Site-Region"], page.headers["X-DynamoDB-Region"]) == (
            region,
            PRIMARY,
        )
    # A post written now, in the primary, is the newest everywhere once replicated.
    primary = dynamodb_client(PRIMARY, running.url(f"region:{PRIMARY}"))
    post = {"post_title": "Fresh <news>", "post_date": "2030-01-01T00:00:00Z"}
    item = {"health_check_id": {"S": "post-fresh"}, **{k: {"S": v} for k, v in post.items()}}
    primary.put_item(TableName=TABLE, Item=item)
    try:
        wait_until(
            lambda: (
                "<h1>Fresh &lt;news&gt;</h1>" in get(f"{running.url(f'site:{SECONDARY}')}/").body
            ),
            30,
            message="the new post on the secondary's site",
        )
    finally:
        primary.delete_item(TableName=TABLE, Key={"health_check_id": {"S": "post-fresh"}})


def test_newest_post_ignores_items_that_are_not_posts() -> None:
    items = [
        {"health_check_id": {"S": "ping"}, "purpose": {"S": "canary"}},
        {"health_check_id": {"S": "p1"}, "post_title": {"S": "old"}, "post_date": {"S": "2020"}},
        {"health_check_id": {"S": "p2"}, "post_title": {"S": "new"}, "post_date": {"S": "2021"}},
    ]
    assert newest_post(items) == {"health_check_id": "p2", "post_title": "new", "post_date": "2021"}
    assert newest_post(items[:1]) is None


def test_a_request_for_another_host_is_not_the_site(running: Running) -> None:
    for host in (None, "other.example.test"):
        answer = get(f"{running.url(f'site:{PRIMARY}')}/healthz", host=host)
        assert answer.status == 404
        assert "no site for host" in answer.json()["error"]


def test_healthz_is_200_only_while_the_sites_own_table_answers(running: Running) -> None:
    secondary = running.url(f"site:{SECONDARY}")
    assert get(f"{secondary}/healthz").json() == {
        "region": SECONDARY,
        "table": TABLE,
        "status": "ok",
    }
    running.chaos(SECONDARY, "pause")
    try:
        started = time.monotonic()
        answer = get(f"{secondary}/healthz")
        assert answer.status == 503
        assert answer.json()["status"] == "unhealthy"
        # A black hole costs the read timeout, not botocore's 60 s and its retries.
        assert time.monotonic() - started < 15
        assert get(f"{running.url(f'site:{PRIMARY}')}/healthz").status == 200
        # Its pages still come from the region the env file names, which is up.
        assert get(f"{secondary}/").status == 200
    finally:
        running.chaos(SECONDARY, "resume")
    wait_until(lambda: get(f"{secondary}/healthz").status == 200, 30, message="healthy again")


def test_reload_makes_every_site_read_the_region_the_env_file_names(running: Running) -> None:
    env = running.dir / ENV_FILE
    env.write_text(f"DYNAMODB_REGION={SECONDARY}\n")
    try:
        result = running.reload()
        assert result.returncode == 0, result.stderr
        running.chaos(PRIMARY, "pause")  # the pages no longer need the primary
        try:
            for region in (PRIMARY, SECONDARY):
                page = get(f"{running.url(f'site:{region}')}/")
                assert page.status == 200, page.body
                assert f"posts read from DynamoDB {SECONDARY}." in page.body
            # The primary's own replica is down: its site is unhealthy all the same.
            assert get(f"{running.url(f'site:{PRIMARY}')}/healthz").status == 503
        finally:
            running.chaos(PRIMARY, "resume")
    finally:
        env.write_text(f"DYNAMODB_REGION={PRIMARY}\n")
        assert running.reload().returncode == 0
    page = get(f"{running.url(f'site:{PRIMARY}')}/")
    assert f"posts read from DynamoDB {PRIMARY}." in page.body


def test_reload_fails_naming_a_site_that_does_not_follow(running: Running) -> None:
    pid = int(running.state["components"][f"site:{SECONDARY}"]["pid"])
    env = running.dir / ENV_FILE
    env.write_text(f"DYNAMODB_REGION={SECONDARY}\n")
    subprocess.run(["kill", "-STOP", str(pid)], check=True)  # a hung PHP-FPM
    try:
        result = running.reload("--timeout-seconds", "0.5")
    finally:
        subprocess.run(["kill", "-CONT", str(pid)], check=True)
        env.write_text(f"DYNAMODB_REGION={PRIMARY}\n")
    assert result.returncode == 1
    assert f"not reloaded: site:{SECONDARY}" in result.stderr
    assert running.reload().returncode == 0


def test_reload_without_a_stack_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox.site", "reload", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert f"no running stack in {tmp_path}" in result.stderr


def test_site_down_refuses_connections_and_site_up_serves_again(running: Running) -> None:
    url = running.url(f"site:{SECONDARY}")
    running.chaos(SECONDARY, "site-down")
    try:
        assert running.state["components"][f"site:{SECONDARY}"] == {"pid": None, "url": url}
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"{url}/healthz", timeout=2)
        # A stopped site is skipped by the reload; it reads the file when it starts.
        assert running.reload().returncode == 0
    finally:
        running.chaos(SECONDARY, "site-up")
    assert running.state["components"][f"site:{SECONDARY}"]["url"] == url  # the same address
    assert get(f"{url}/healthz").status == 200


def test_chaos_rejects_a_site_op_for_an_unknown_region(running: Running) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox",
            "chaos",
            "--dir",
            str(running.dir),
            "mars-1",
            "site-down",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "no site for region 'mars-1'" in result.stderr


def test_glb_sends_users_to_the_first_region_and_follows_its_priorities(running: Running) -> None:
    front = running.url("glb")
    answer = get(f"{front}/")
    assert answer.status == 200
    assert (answer.headers["X-GLB-Region"], answer.headers["X-Site-Region"]) == ("nyc3", PRIMARY)
    running.set_glb(region_priorities={SLUGS[SECONDARY]: 1, SLUGS[PRIMARY]: 2})
    try:
        wait_until(lambda: running.served_by() == SECONDARY, 30, message="the secondary first")
    finally:
        running.set_glb(region_priorities={SLUGS[PRIMARY]: 1, SLUGS[SECONDARY]: 2})
    wait_until(lambda: running.served_by() == PRIMARY, 30, message="the primary first again")
    view = get(f"{front}/_sandbox/glb", host=None).json()
    assert view["region_priorities"] == {"nyc3": 1, "ams3": 2}
    assert view["failover_threshold"] == 50


def test_glb_moves_past_a_dead_site_by_its_own_checks_and_back(running: Running) -> None:
    front = running.url("glb")
    running.chaos(PRIMARY, "site-down")
    try:
        started = time.monotonic()
        wait_until(lambda: running.served_by() == SECONDARY, GLB_MOVES_WITHIN, message="moved")
        assert time.monotonic() - started >= 1.0  # three failed checks, one a second apart
        health = get(f"{front}/_sandbox/glb", host=None).json()["health"]
        assert health["nyc3"]["healthy"] is False and health["ams3"]["healthy"] is True
        assert health["nyc3"]["last_error"] == "ConnectionRefusedError"
    finally:
        running.chaos(PRIMARY, "site-up")
    wait_until(lambda: running.served_by() == PRIMARY, GLB_MOVES_WITHIN, message="moved back")


def test_glb_stays_with_a_dead_region_at_failover_threshold_100(running: Running) -> None:
    front = running.url("glb")
    running.set_glb(failover_threshold=100)
    running.chaos(PRIMARY, "site-down")
    try:
        wait_until(
            lambda: (
                get(f"{front}/_sandbox/glb", host=None).json()["health"]["nyc3"]["healthy"] is False
            ),
            GLB_MOVES_WITHIN,
            message="the primary unhealthy",
        )
        answer = get(f"{front}/")
        assert (answer.status, answer.headers["X-GLB-Region"]) == (502, "nyc3")
        assert answer.json() == {"error": "nyc3: ConnectionRefusedError"}
    finally:
        running.chaos(PRIMARY, "site-up")
        running.set_glb(failover_threshold=50)
    wait_until(lambda: running.served_by() == PRIMARY, GLB_MOVES_WITHIN, message="serving")


def test_blackbox_probes_the_site_with_the_shipped_module(running: Running) -> None:
    result = subprocess.run(
        [binary(), "--config.check", f"--config.file={SHIPPED}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    prober = running.url("blackbox")

    def probe(region: str) -> dict[str, float]:
        query = urllib.parse.urlencode(
            {"module": MODULE, "target": f"{running.url(f'site:{region}')}/healthz"}
        )
        text = get(f"{prober}/probe?{query}", host=None).body
        return {
            name: float(value)
            for name, _, value in (line.partition(" ") for line in text.splitlines())
            if name in ("probe_success", "probe_http_status_code")
        }

    # 200 only with the Host header the module sets: without it the site answers 404.
    assert probe(SECONDARY) == {"probe_success": 1, "probe_http_status_code": 200}
    running.chaos(SECONDARY, "pause")
    try:
        assert probe(SECONDARY) == {"probe_success": 0, "probe_http_status_code": 503}
    finally:
        running.chaos(SECONDARY, "resume")
    running.chaos(SECONDARY, "site-down")
    try:
        assert probe(SECONDARY)["probe_success"] == 0
    finally:
        running.chaos(SECONDARY, "site-up")
    assert probe(SECONDARY)["probe_success"] == 1


def test_writes_go_to_the_env_files_region_and_stop_while_read_only(running: Running) -> None:
    site = running.url(f"site:{SECONDARY}")
    key = f"post-{time.time_ns()}"
    assert post(site, {"id": key, "title": "written"}) == (201, {"id": key, "region": PRIMARY})
    item = dynamodb_client(PRIMARY, running.url(f"region:{PRIMARY}")).get_item(
        TableName=TABLE, Key={CANARY_KEY: {"S": key}}, ConsistentRead=True
    )
    assert item["Item"]["post_title"] == {"S": "written"}
    assert post(site, {"title": "no id"})[0] == 400
    env = running.dir / ENV_FILE
    env.write_text(f"DYNAMODB_REGION={PRIMARY}\nWP_READ_ONLY=1\n")
    try:
        assert running.reload().returncode == 0  # it waits for the flag too
        status, refused = post(site, {"id": f"{key}-2", "title": "fenced"})
        assert (status, refused["error"]) == (503, "read-only: writes are fenced")
    finally:
        env.write_text(f"DYNAMODB_REGION={PRIMARY}\nWP_READ_ONLY=0\n")
        assert running.reload().returncode == 0
    assert post(site, {"id": f"{key}-3", "title": "open again"})[0] == 201
