"""The status page on a real stack, as headless Chromium renders it, in the states people meet.

A small stack of its own: the regions and their exporter, the real Prometheus (the page's
region cards read it), the DigitalOcean sandbox and the responder under gunicorn, with
approval required for a failover. The test plays Alertmanager. In each state (steady,
awaiting approval, failing over, stalled, and drift when the plan reports it) Chromium
takes screenshots at 390, 1280 and 1920 px, kept in build/page-screenshots (or
$DDB_PAGE_SCREENSHOTS) for people to look at, and dumps the DOM for the assertions.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.net import wait_until
from sandbox.watch import http_json
from tests.e2e.conftest import PRIMARY, SECONDARY, E2EStack, small_stack
from tests.responder.weblib import alert, http, payload

pytestmark = [pytest.mark.e2e, pytest.mark.stack_copy(2)]  # see tests/conftest.py
NEEDED = ("responder", "exporter", "prometheus", "do_api")
WIDTHS = {390: 2600, 1280: 2000, 1920: 1800}  # width: height of the shot
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("DDB_PAGE_SCREENSHOTS") or ROOT / "build" / "page-screenshots")
GLB = "/v2/load_balancers"
CHROMIUM_SECONDS = 240


class PageStack(E2EStack):
    """The stack with the tokens a browser sends and the states the test puts it in."""

    def secret(self, name: str) -> str:
        return (self.dir / "secrets" / name).read_text().strip()

    def page_url(self, role: str) -> str:
        base = self.urls["responder"]
        # Held still: a reload under a loaded machine's slow screenshot can hang Chromium.
        credentials = f"http://{role}:{self.secret(f'{role}-token')}@"
        return base.replace("http://", credentials) + "/?refresh=off"

    def html(self, role: str = "viewer") -> str:
        token = self.secret(f"{role}-token")
        status, body = http("GET", self.urls["responder"] + "/", headers=bearer(token))
        assert status == 200, body
        return str(body)

    def operate(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.urls['responder']}/api/v1/{path}"
        status, answer = http("POST", url, body, bearer(self.secret("operator-token")))
        assert status in (200, 202), answer
        return dict(answer)

    def region_down(self) -> str:
        """Play Alertmanager: the primary is down; the failover waits for approval."""
        webhook = bearer(self.secret("webhook-token"))

        def decided() -> str | None:
            body = payload(alert(region=PRIMARY, starts_at=time.time() - 30))
            status, answer = http("POST", f"{self.urls['responder']}/webhook", body, webhook)
            assert status == 202, answer
            decision = answer["decisions"][0]
            return decision["transition_id"] if decision["kind"] == "failover" else None

        return str(wait_until(decided, 60, 1.0, "a ready target (heartbeats replicated)"))

    def phase(self) -> str:
        return str(self.status()["phase"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def chromium(*args: str, profile: Path) -> str:
    """Headless Chromium's stdout; its whole process group is killed if it hangs.

    Under a loaded machine one run takes 10 to 30 s; CHROMIUM_SECONDS is the honest bound.
    """
    browser = shutil.which("chromium")
    assert browser, "Debian's chromium is installed by the bootstrap"
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-quic", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}", *args,
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=CHROMIUM_SECONDS)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    return out


def shoot(stack: PageStack, state: str, role: str = "operator") -> str:
    """Screenshots at each width, then the DOM as Chromium built it."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    profile = stack.dir / "chromium"
    for width, height in WIDTHS.items():
        path = SHOTS / f"{state}-{width}.png"
        chromium(f"--window-size={width},{height}", f"--screenshot={path}",
                 stack.page_url(role), profile=profile)  # fmt: skip
        assert path.stat().st_size > 10_000, path
    return chromium("--dump-dom", stack.page_url(role), profile=profile)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageStack]:
    options = ("--approval", "failover", "--min-dwell-seconds", "0")
    with small_stack(tmp_path_factory, NEEDED, *options) as view:
        yield PageStack(view.dir, view.urls, view.token)


def cards(dom: str) -> dict[str, str]:
    """Each region card's HTML, by region."""
    found = re.findall(
        r'(<article class="card[^"]*" data-region="([^"]+)".*?</article>)', dom, re.S
    )
    return {region: html for html, region in found}


def live(html: str) -> bool:
    """The card shows the exporter's read and write, OK, from a vantage point."""
    return bool(re.search(r'data-vantage="[^"]+"><td>[^<]+</td>\s*<td class="ready">OK</td>', html))


def test_the_page_in_each_state_people_meet(stack: PageStack) -> None:
    # Steady: one card per region, with the exporter's live series from Prometheus.
    wait_until(
        lambda: (
            all(live(c) for c in cards(stack.html()).values()) and len(cards(stack.html())) == 2
        ),
        90,
        1.0,
        "both region cards with live data from Prometheus",
    )
    wait_until(lambda: stack.phase() == "steady", 30, 0.5, "steady")
    dom = shoot(stack, "steady")
    regions = cards(dom)
    assert list(regions) == [PRIMARY, SECONDARY]
    assert 'data-role="active"' in regions[PRIMARY] and "primary" in regions[PRIMARY]
    assert 'data-role="standby"' in regions[SECONDARY]
    for html in regions.values():
        assert live(html), html
        assert re.search(r'class="last-success"><time datetime="[^"]+Z" title="[^"]+ UTC">', html)
        assert re.search(r'class="lag">\d+\.\d s<|class="lag">not measured<', html), html
    assert "Plan: ready" in regions[SECONDARY] or "Plan: NOT READY" in regions[SECONDARY]

    # Awaiting approval: the banner names the commands; the operator has the buttons.
    transition_id = stack.region_down()
    wait_until(lambda: stack.phase() == "awaiting_approval", 30, 0.5, "awaiting approval")
    dom = shoot(stack, "awaiting_approval")
    assert 'data-banner="awaiting_approval"' in dom
    assert f"ddb-responder approve {transition_id}" in dom
    assert 'action="/operate/approve"' in dom and 'name="csrf"' in dom
    viewer = chromium("--dump-dom", stack.page_url("viewer"), profile=stack.dir / "chromium")
    assert 'data-banner="awaiting_approval"' in viewer and "<form" not in viewer

    # Failing over: the load balancer's writes answer 503, so its step retries.
    stack.fault(503, GLB, method="PUT")
    stack.operate("approve", {"transition_id": transition_id, "reason": "on-call agrees"})

    def retrying() -> bool:
        last = stack.status()["last_transition"]
        return stack.phase() == "failing_over" and bool((last.get("attempts") or {}).get("count"))

    wait_until(retrying, 60, 0.3, "the failover retrying the load balancer")
    dom = shoot(stack, "failing_over")
    assert 'class="phase-failing_over"' in dom and "Retrying <strong>" in dom and "HTTP 503" in dom

    # Stalled: a permanent error (the token refused) stops it; the banner says what to type.
    stack.clear_faults()
    stack.fault(401, GLB, method="PUT")
    wait_until(lambda: stack.phase() == "stalled", 60, 0.3, "stalled on a permanent error")
    dom = shoot(stack, "stalled")
    assert 'data-banner="stalled"' in dom and "ddb-responder retry" in dom
    assert 'action="/operate/retry"' in dom and 'action="/operate/skip"' in dom

    # Fixed: retry, and the timeline tells the whole story, in order, adding up.
    stack.clear_faults()
    stack.operate("retry", {"reason": "token fixed", "transition_id": transition_id})
    wait_until(lambda: stack.status()["active_region"] == SECONDARY, 60, 0.5, "failed over")
    report = http_json(
        f"{stack.urls['responder']}/api/v1/transitions/{transition_id}/report", stack.token
    )
    dom = chromium("--dump-dom", stack.page_url("viewer"), profile=stack.dir / "chromium")
    timeline(dom, report)


def timeline(dom: str, report: dict[str, Any]) -> None:
    """Entries in the report's order, durations adding up, words not JSON, rounded numbers."""
    events = re.findall(r'<li data-event="([a-z_]+)" data-tenths="(-?\d+)"', dom)
    assert [e for e, _ in events] == [e["event"] for e in report["timeline"]]
    order = [e for e, _ in events]
    pairs = [
        ("alert_firing", "webhook_received"),
        ("decision", "operator_approve"),
        ("operator_approve", "attempt_failed"),
        ("operator_retry", "completed"),
    ]
    for earlier, later in pairs:
        assert order.index(earlier) < order.index(later), order
    total = re.search(r'data-total-tenths="(\d+)"', dom)
    assert total is not None and sum(int(t) for _, t in events) == int(total.group(1))
    assert abs(int(total.group(1)) - report["total_seconds"] * 10) <= 0.5
    cells = re.findall(r'<td class="words">([^<]*)</td>', dom)
    assert cells and all("{" not in c for c in cells), cells
    assert any("Global LB:" in c and "first" in c for c in cells), cells
    risk = re.search(r'<span id="data-at-risk">([^<]*)</span>', dom)
    assert risk is not None and re.fullmatch(
        r"\d+\.\d s|RPO 0 \(strong consistency\)", risk.group(1)
    )
    durations = re.findall(r'<span class="duration">([^<]*)</span>', dom)
    assert durations and all(re.fullmatch(r"\d+\.\d s|\d+ min( \d+ s)?", d) for d in durations)


def test_drift_shows_a_banner_with_repair(stack: PageStack) -> None:
    """The www record changed by hand: the drift banner, once the plan reports drift."""
    plan = http_json(f"{stack.urls['responder']}/api/v1/plan", stack.token)
    if "drift" not in plan:
        pytest.skip("this responder's plan has no drift list yet (issue 21)")
    www = stack.actions()["www"]
    name = f"{www['record_name']}.{www['domain']}"
    records = stack.do_get(f"/v2/domains/{www['domain']}/records?name={name}")["domain_records"]
    (record,) = [r for r in records if r["type"] == www.get("record_type", "A")]
    url = f"{stack.urls['do_api']}/v2/domains/{www['domain']}/records/{record['id']}"
    changed = {"type": record["type"], "data": "192.0.2.99"}
    status, answer = http("PATCH", url, changed, bearer(stack.secret("do-token")))
    assert status == 200, answer
    wait_until(lambda: 'data-banner="drift"' in stack.html(), 60, 0.5, "the drift banner")
    dom = shoot(stack, "drift")
    assert "ddb-responder repair --reason ..." in dom and 'action="/operate/repair"' in dom
