"""Live readiness against real moto server processes: canary, lag, dead and hung regions."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from ddb_failover import heartbeat
from ddb_failover.config import Canary, Region, Site
from responder.decide.decision import Check, SiteAnswer
from responder.decide.readiness import CachedReadiness, ReadinessChecker
from sandbox.net import free_port
from sandbox.regions import Region as SandboxRegion
from tests.alerting.loopback import LoopbackServer
from tests.conftest import CANARY_KEY, CANARY_VALUE

EAST, WEST = "us-east-1", "eu-west-1"
TABLES = ("wordpress_posts", "wordpress_users")
TIMEOUT = 1.0
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two regions shared by this module (starting one costs seconds); tests undo their harm."""
    workdir = tmp_path_factory.mktemp("regions")
    started: dict[str, SandboxRegion] = {}
    try:
        for name in (EAST, WEST):
            started[name] = SandboxRegion(name, TABLES, CANARY_KEY, CANARY_VALUE, workdir)
            started[name].start()
        yield started
    finally:
        for region in started.values():
            region.close()  # resumes a paused process first, then kills its group


@pytest.fixture
def paused(regions: dict[str, Any]) -> Iterator[Callable[[str], None]]:
    """Pause a region (SIGSTOP) for one test; resumed (SIGCONT) afterwards."""
    done: list[str] = []

    def pause(name: str) -> None:
        regions[name].pause()
        done.append(name)

    yield pause
    for name in done:
        regions[name].resume()


def checker(regions: dict[str, Any], tables: tuple[str, ...] = TABLES) -> ReadinessChecker:
    return ReadinessChecker(
        [Region(name=n, endpoint_url=r.url) for n, r in regions.items()],
        tables,
        Canary(key=CANARY_KEY, value=CANARY_VALUE),
        TIMEOUT,
    )


def put_heartbeat(region: Any, source: str, written_at: float, table: str = TABLES[0]) -> None:
    item = heartbeat.item(CANARY_KEY, source, written_at, "test")
    region.client().put_item(TableName=table, Item=item)


def test_ready_with_data_at_risk_from_the_oldest_table(regions: dict[str, Any]) -> None:
    put_heartbeat(regions[WEST], EAST, T0, TABLES[0])
    put_heartbeat(regions[WEST], EAST, T0 - 3, TABLES[1])  # this table lags more
    readiness = checker(regions).check(Check(WEST, EAST, T0 + 7))
    assert readiness.canary_ok and readiness.problem(60) is None
    assert readiness.data_at_risk_seconds == pytest.approx(10.0)
    # A heartbeat newer than the source's last healthy moment: nothing at risk.
    assert checker(regions).check(Check(WEST, EAST, T0 - 10)).data_at_risk_seconds == 0.0


def test_mixed_tables_measure_lag_in_the_eventual_ones_and_write_the_strong_ones(
    regions: dict[str, Any],
) -> None:
    strong, eventual = TABLES
    put_heartbeat(regions[WEST], EAST, T0 - 100, strong)  # lag a STRONG table cannot have
    put_heartbeat(regions[WEST], EAST, T0, eventual)
    mixed = ReadinessChecker(
        [Region(name=n, endpoint_url=r.url) for n, r in regions.items()],
        TABLES,
        Canary(key=CANARY_KEY, value=CANARY_VALUE),
        TIMEOUT,
        strong_tables=(strong,),
        clock=lambda: T0 + 1,
    )
    readiness = mixed.check(Check(WEST, EAST, T0 + 7))
    assert not readiness.strong  # not every table: no RPO 0
    assert readiness.data_at_risk_seconds == pytest.approx(7.0)  # the eventual table's alone
    assert (readiness.write_ok, readiness.problem(60)) == (True, None)
    written = (
        regions[WEST]
        .client()
        .get_item(TableName=strong, Key={CANARY_KEY: {"S": heartbeat.key_value(WEST)}})
    )
    assert heartbeat.written_at(written["Item"]) == T0 + 1
    assert "Item" not in regions[WEST].client().get_item(
        TableName=eventual, Key={CANARY_KEY: {"S": heartbeat.key_value(WEST)}}
    )


def test_heartbeat_of_the_source_not_another_region(regions: dict[str, Any]) -> None:
    for table in TABLES:
        put_heartbeat(regions[EAST], EAST, T0, table)  # the target's own heartbeat
    readiness = checker(regions).check(Check(EAST, WEST, T0))
    assert readiness.canary_ok and readiness.data_at_risk_seconds is None
    assert readiness.problem(60) == (
        "us-east-1: replication lag unknown (no heartbeat from the source)"
    )


def test_missing_canary_is_not_ready(regions: dict[str, Any]) -> None:
    client = regions[WEST].client()
    key = {CANARY_KEY: {"S": CANARY_VALUE}}
    client.delete_item(TableName=TABLES[1], Key=key)
    try:
        readiness = checker(regions).check(Check(WEST, EAST, T0))
    finally:
        client.put_item(TableName=TABLES[1], Item={**key, "purpose": {"S": "canary"}})
    assert not readiness.canary_ok
    assert readiness.detail == "canary item missing in wordpress_users"


def test_missing_table_is_not_ready(regions: dict[str, Any]) -> None:
    readiness = checker(regions, ("no_such_table",)).check(Check(WEST, EAST, T0))
    assert (readiness.canary_ok, readiness.detail) == (False, "error ResourceNotFoundException")


def test_stopped_region_is_not_ready_at_once(regions: dict[str, Any]) -> None:
    # A stopped region: nothing listens on its port, so connections are refused.
    stopped = ReadinessChecker(
        [Region(name=WEST, endpoint_url=f"http://127.0.0.1:{free_port()}")],
        TABLES,
        Canary(key=CANARY_KEY, value=CANARY_VALUE),
        TIMEOUT,
    )
    started = time.monotonic()
    readiness = stopped.check(Check(WEST, EAST, T0))
    assert (readiness.canary_ok, readiness.detail) == (False, "connection refused or unreachable")
    assert time.monotonic() - started < TIMEOUT * 5  # not retried with backoff


def test_hung_region_is_not_ready_within_the_timeout(
    regions: dict[str, Any], paused: Callable[[str], None]
) -> None:
    for table in TABLES:
        put_heartbeat(regions[WEST], EAST, T0, table)
    ready = checker(regions)
    assert ready.check(Check(WEST, EAST, T0)).canary_ok  # warm: client built, region fine
    paused(WEST)  # SIGSTOP: connections are accepted and never answered
    started = time.monotonic()
    readiness = ready.check(Check(WEST, EAST, T0))
    elapsed = time.monotonic() - started
    assert (readiness.canary_ok, readiness.detail) == (False, "timeout")
    # One attempt, no retries: about one read timeout, far from botocore's 60 s x retries.
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT * 5
    # The other region is unaffected.
    assert ready.check(Check(EAST, WEST, T0)).canary_ok


def test_cached_readiness_shares_one_reading(
    regions: dict[str, Any], paused: Callable[[str], None]
) -> None:
    for table in TABLES:
        put_heartbeat(regions[WEST], EAST, T0, table)
    now = [0.0]
    cached = CachedReadiness(checker(regions), ttl_seconds=1.0, clock=lambda: now[0])
    assert cached.check(Check(WEST, EAST, T0 + 2)).data_at_risk_seconds == pytest.approx(2.0)
    paused(WEST)
    # Within the TTL the hung region is not read again; data at risk follows the new check.
    started = time.monotonic()
    again = cached.check(Check(WEST, EAST, T0 + 5))
    assert again.canary_ok and again.data_at_risk_seconds == pytest.approx(5.0)
    assert time.monotonic() - started < TIMEOUT / 2  # a read of the hung region costs TIMEOUT
    now[0] = 1.5  # past the TTL: a fresh, failing read
    assert cached.check(Check(WEST, EAST, T0)).detail == "timeout"


class FakeSite:
    """A WordPress health endpoint on loopback that records the Host it was asked for."""

    def __init__(self) -> None:
        self.status = 200
        self.hang = 0.0
        self.hosts: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hosts.append(self.headers.get("Host", ""))
                time.sleep(owner.hang)
                self.send_response(owner.status)
                if owner.status == 301:
                    self.send_header("Location", "/wp-login.php")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = LoopbackServer(Handler)


@pytest.fixture
def fake_site() -> Iterator[FakeSite]:
    site = FakeSite()
    with site.server:
        yield site


def site_checker(regions: dict[str, Any], url: str, **site: Any) -> ReadinessChecker:
    return ReadinessChecker(
        [
            Region(name=EAST, endpoint_url=regions[EAST].url),
            Region(
                name=WEST,
                endpoint_url=regions[WEST].url,
                site=Site(health_url=url, timeout_seconds=TIMEOUT, **site),
            ),
        ],
        TABLES,
        Canary(key=CANARY_KEY, value=CANARY_VALUE),
        TIMEOUT,
    )


def test_a_site_that_answers_makes_the_region_ready(
    regions: dict[str, Any], fake_site: FakeSite
) -> None:
    for table in TABLES:
        put_heartbeat(regions[WEST], EAST, T0, table)
    ready = site_checker(regions, f"{fake_site.server.url}/healthz", host="www.example.test")
    readiness = ready.check(Check(WEST, EAST, T0))
    assert readiness.problem(60) is None
    assert readiness.site == SiteAnswer(f"{fake_site.server.url}/healthz", 200, 200)
    assert fake_site.hosts == ["www.example.test"]
    # A region without a site is read as before: DynamoDB alone.
    assert ready.check(Check(EAST, WEST, T0)).site is None


@pytest.mark.parametrize(
    ("status", "answered"),
    [(503, "answered 503 (expected 200)"), (301, "answered 301 (expected 200)")],
    ids=["unhealthy", "a redirect is not followed"],
)
def test_a_site_that_answers_otherwise_is_not_ready(
    regions: dict[str, Any], fake_site: FakeSite, status: int, answered: str
) -> None:
    fake_site.status = status
    url = f"{fake_site.server.url}/healthz"
    readiness = site_checker(regions, url).check(Check(WEST, EAST, T0))
    assert readiness.canary_ok  # DynamoDB is fine: the site alone makes it not ready
    assert readiness.site_problem() == f"{WEST}: site {url} {answered}"
    assert fake_site.hosts == [fake_site.server.url.removeprefix("http://")]  # no host: the URL's


def test_an_expected_status_other_than_200(regions: dict[str, Any], fake_site: FakeSite) -> None:
    fake_site.status = 204
    url = f"{fake_site.server.url}/healthz"
    readiness = site_checker(regions, url, expect_status=204).check(Check(WEST, EAST, T0))
    assert readiness.site is not None and readiness.site.ok


def test_a_dead_or_hung_site_is_not_ready_within_its_timeout(
    regions: dict[str, Any], fake_site: FakeSite
) -> None:
    refused = f"http://127.0.0.1:{free_port()}/healthz"
    readiness = site_checker(regions, refused).check(Check(WEST, EAST, T0))
    assert readiness.site_problem() == f"{WEST}: site {refused} did not answer (connection refused)"
    fake_site.hang = TIMEOUT * 8
    started = time.monotonic()
    readiness = site_checker(regions, f"{fake_site.server.url}/").check(Check(WEST, EAST, T0))
    assert readiness.site is not None and readiness.site.error == "timeout"
    assert time.monotonic() - started < TIMEOUT * 5  # cut at the timeout, not the 8 s answer


def test_a_sites_credentials_never_show(regions: dict[str, Any], fake_site: FakeSite) -> None:
    url = fake_site.server.url.replace("http://", "http://monitor:s3cret@") + "/healthz"
    readiness = site_checker(regions, url).check(Check(WEST, EAST, T0))
    assert readiness.site is not None and readiness.site.ok
    assert "s3cret" not in str(readiness.to_json()) and "monitor" not in readiness.site.url
