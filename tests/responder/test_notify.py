"""Notifications, exactly once per event, through the outbox to real local sinks.

The sinks are the sandbox's PagerDuty (change events) and Slack-compatible chat
servers, validating what they receive as the real services do.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from responder.app import create_app, notifier_of, runner_of
from responder.decide.decision import Check, Readiness
from responder.model.errors import PermanentError, TemporaryError
from sandbox import chat, pagerduty
from sandbox.watch import http_json
from tests.responder.fakes import EAST, WEST, MemoryAction
from tests.responder.weblib import OPERATOR, alert, auth, config_at, payload, viewing, write_config

ROUTING_KEY = "R" * 32
CHAT_TOKEN = "chat-token-abc"
STARTS = 1_799_999_900.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def serve(server: ThreadingHTTPServer) -> str:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def sinks() -> Iterator[dict[str, str]]:
    servers = [
        pagerduty.make_server(ROUTING_KEY, pagerduty.EventLog(None)),
        chat.make_server(CHAT_TOKEN),
    ]
    urls = [serve(s) for s in servers]
    yield {"pagerduty": urls[0], "chat": urls[1]}
    for server in servers:
        server.shutdown()
        server.server_close()


class Site:
    """A responder with both receivers, a scripted world and readiness, and a settable clock."""

    def __init__(self, tmp_path: Path, sinks: dict[str, str], lb: MemoryAction | None = None):
        self.clock = Clock()
        self.sinks = sinks
        self.world: dict[str, Any] = {}
        self.lb = lb or MemoryAction("lb", self.world)
        self.lb.world = self.world
        (tmp_path / "pd-key").write_text(ROUTING_KEY)
        (tmp_path / "chat-url").write_text(f"{sinks['chat']}/hooks/{CHAT_TOKEN}")
        notify = {
            "receivers": [
                {"name": "pd", "type": "pagerduty_change", "url": sinks["pagerduty"],
                 "routing_key": {"file": str(tmp_path / "pd-key")}},
                {"name": "chat", "type": "slack",
                 "webhook_url": {"file": str(tmp_path / "chat-url")}},
            ],
            "responder_url": "https://responder.example",
            "grafana_url": "https://grafana.example",
        }  # fmt: skip
        config = config_at(
            write_config(
                tmp_path,
                policy={"min_dwell_seconds": 0, "transition_deadline_seconds": 60},
                extra={"notify": notify},
            )
        )
        actions = [MemoryAction("www", self.world), self.lb]
        self.app = create_app(config, actions=actions, readiness=self.ready, clock=self.clock)
        self.client = viewing(self.app)
        self.notifier = notifier_of(self.app)

    is_ready = True

    def ready(self, check: Check) -> Readiness:
        if not self.is_ready:
            return Readiness(check.target, False, None, "connection refused")
        return Readiness(check.target, True, 1.0)

    def webhook(self, body: Any) -> Any:
        return self.client.post("/webhook", json=body, headers=auth()).get_json()["decisions"]

    def deliver(self) -> int:
        return self.notifier.run_once()

    def changes(self) -> list[dict[str, Any]]:
        events = http_json(f"{self.sinks['pagerduty']}/events")["events"]
        return [e for e in events if e["kind"] == "change"]

    def messages(self) -> list[dict[str, Any]]:
        return list(http_json(f"{self.sinks['chat']}/messages")["messages"])

    def counted(self) -> dict[str, int]:
        keys = [e["idempotency_key"] for e in self.changes()]
        keys += [m["idempotency_key"] for m in self.messages()]
        out: dict[str, int] = {}
        for key in keys:
            out[key] = out.get(key, 0) + 1
        return out


@pytest.fixture
def site(tmp_path: Path, sinks: dict[str, str]) -> Iterator[Callable[..., Site]]:
    made: list[Site] = []

    def make(lb: MemoryAction | None = None) -> Site:
        made.append(Site(tmp_path, sinks, lb))
        return made[-1]

    yield make
    for one in made:
        runner_of(one.app).stop()


def test_a_failover_is_told_once_per_event_to_each_receiver(site: Callable[..., Site]) -> None:
    s = site()
    (decision,) = s.webhook(payload(alert(starts_at=STARTS)))
    transition_id = decision["transition_id"]
    s.webhook(payload(alert(starts_at=STARTS)))  # Alertmanager's repeat: a duplicate
    assert s.deliver() == 2
    assert runner_of(s.app).run_now() is not None
    assert s.deliver() == 2
    assert s.deliver() == 0  # nothing left to tell
    assert s.counted() == {f"{transition_id}:started": 2, f"{transition_id}:completed": 2}
    (started, completed) = s.changes()
    assert started["event"]["payload"]["summary"] == (
        f"ddb-failover: failover {EAST} -> {WEST} started"
    )
    links = {link["text"]: link["href"] for link in completed["event"]["links"]}
    assert links["Report"] == f"https://responder.example/transitions/{transition_id}"
    assert links["Grafana"].startswith("https://grafana.example/d/ddb-failover-overview?from=")
    assert links["Runbook"].endswith("docs/runbook.md#dynamodbregiondown")
    message = s.messages()[1]
    assert message["text"].endswith("completed")
    assert f"event `{transition_id}:completed`" in json.dumps(message["blocks"])
    metrics = s.client.get("/metrics").get_data(as_text=True)
    assert (
        'responder_notifications_total{event="completed",receiver="chat",result="delivered"} 1.0'
        in metrics
    )


def test_throttled_receivers_are_retried_without_repeats(site: Callable[..., Site]) -> None:
    s = site()
    fault = {"status": 429, "count": 2, "retry_after": 1}
    request = f"{s.sinks['chat']}/_sandbox/faults"
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(request, json.dumps(fault).encode(), method="POST"), timeout=5
    ).close()
    (decision,) = s.webhook(payload(alert(starts_at=STARTS)))
    s.deliver()  # chat: 429; pagerduty: delivered
    assert len(s.messages()) == 0 and len(s.changes()) == 1
    s.deliver()
    assert len(s.messages()) == 0  # not due yet: its Retry-After has not passed
    s.clock.now += 2
    s.deliver()  # 429 again
    s.clock.now += 5
    s.deliver()
    assert s.counted() == {f"{decision['transition_id']}:started": 2}
    metrics = s.client.get("/metrics").get_data(as_text=True)
    assert 'event="started",receiver="chat",result="retried"} 2.0' in metrics


def test_a_stall_is_told_once_until_an_operator_retries(site: Callable[..., Site]) -> None:
    lb = MemoryAction("lb", {}, failures=[TemporaryError("HTTP 503")] * 100)
    s = site(lb)
    (decision,) = s.webhook(payload(alert(starts_at=STARTS)))
    transition_id = decision["transition_id"]
    runner = runner_of(s.app)
    for _ in range(40):  # past the 60 s deadline, retrying all along
        runner.run_now()
        s.clock.now += 3
    s.deliver()
    assert s.client.get("/api/v1/status").get_json()["phase"] == "stalled"
    assert s.counted().get(f"{transition_id}:stalled:lb:0:0") == 2
    lb.failures = [PermanentError("HTTP 401")]
    for _ in range(3):
        runner.run_now()
        s.clock.now += 31
    s.client.post("/api/v1/retry", json={"reason": "token"}, headers=auth(OPERATOR))
    lb.failures = [PermanentError("HTTP 401")]
    runner.run_now()
    s.deliver()
    stalls = sorted(k for k in s.counted() if ":stalled:" in k)
    assert stalls == [f"{transition_id}:stalled:lb:0:0", f"{transition_id}:stalled:lb:0:1"]
    assert all(v == 2 for v in s.counted().values())


def test_a_blocked_decision_repeated_by_alertmanager_is_told_once(
    site: Callable[..., Site],
) -> None:
    s = site()
    s.is_ready = False
    for _ in range(3):  # the first notification and two repeats of the same alerts
        (decision,) = s.webhook(payload(alert(starts_at=STARTS)))
        assert decision["kind"] == "blocked"
    (other,) = s.webhook(payload(alert(starts_at=STARTS + 60, fingerprint="ffff0000ffff0000")))
    assert other["kind"] == "blocked"
    s.deliver()
    blocked = [k for k in s.counted() if k.startswith("blocked:")]
    assert len(blocked) == 2 and all(s.counted()[k] == 2 for k in blocked)
    assert "was blocked: no healthy region" in s.messages()[0]["text"]


def test_receiver_secrets_never_leave(site: Callable[..., Site], caplog: Any) -> None:
    s = site()
    s.webhook(payload(alert(starts_at=STARTS)))
    s.deliver()
    outgoing = [
        s.client.get("/api/v1/status").get_data(as_text=True),
        s.client.get("/metrics").get_data(as_text=True),
        s.client.get("/").get_data(as_text=True),
        caplog.text,
        json.dumps(s.changes()),
    ]
    for text in outgoing:
        assert ROUTING_KEY not in text and CHAT_TOKEN not in text


def test_a_receiver_that_refuses_for_good_is_counted_failed(site: Callable[..., Site]) -> None:
    s = site()
    s.notifier._secrets["chat"] = f"{s.sinks['chat']}/hooks/wrong"  # a webhook since deleted
    s.webhook(payload(alert(starts_at=STARTS)))
    s.deliver()
    assert s.deliver() == 0  # a 404 is permanent: not tried again
    metrics = s.client.get("/metrics").get_data(as_text=True)
    assert 'event="started",receiver="chat",result="failed"} 1.0' in metrics
    assert len(s.changes()) == 1  # the other receiver is unaffected


def test_a_receiver_hears_a_transitions_events_in_order(site: Callable[..., Site]) -> None:
    import urllib.request

    s = site()
    fault = json.dumps({"status": 429, "count": 1, "retry_after": 5}).encode()
    request = urllib.request.Request(f"{s.sinks['chat']}/_sandbox/faults", fault, method="POST")
    urllib.request.urlopen(request, timeout=5).close()
    (decision,) = s.webhook(payload(alert(starts_at=STARTS)))
    s.deliver()  # chat throttles "started"
    assert runner_of(s.app).run_now() is not None
    s.deliver()  # "completed" is queued behind the throttled "started" for chat only
    assert s.messages() == [] and len(s.changes()) == 2
    s.clock.now += 6
    s.deliver()
    tid = decision["transition_id"]
    assert [m["idempotency_key"] for m in s.messages()] == [f"{tid}:started", f"{tid}:completed"]


class Listed:
    """A store whose outbox list is the one a slower sender read before another's round."""

    def __init__(self, store: Any, listed: list[Any]) -> None:
        self._store, self._listed = store, listed

    def notices(self, now: float) -> list[Any]:
        return self._listed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_sender_working_from_an_old_list_sends_only_what_is_still_due(
    site: Callable[..., Site],
) -> None:
    import urllib.request

    s = site()
    fault = json.dumps({"status": 503, "count": 1}).encode()
    request = urllib.request.Request(f"{s.sinks['chat']}/_sandbox/faults", fault, method="POST")
    urllib.request.urlopen(request, timeout=5).close()
    (decision,) = s.webhook(payload(alert(starts_at=STARTS)))
    slow = copy.copy(s.notifier)  # another worker's sender
    slow.holder = "worker-2"
    slow.store = Listed(s.notifier.store, list(s.notifier.store.notices(s.clock.now)))
    s.deliver()  # pagerduty delivered, chat answered 503: retried a little later
    s.clock.now += 70
    assert slow.run_once() == 1  # its list says both are due; only chat still is
    tid = decision["transition_id"]
    assert s.counted() == {f"{tid}:started": 2}


def test_an_unforeseen_failure_is_retried_with_backoff_not_resent(
    site: Callable[..., Site],
) -> None:
    import http.client

    s = site()
    real = dict(s.notifier._senders)

    def garbled(*args: Any) -> None:
        raise http.client.BadStatusLine("garbage")

    s.notifier._senders = {**real, "slack": garbled}
    (decision,) = s.webhook(payload(alert(starts_at=STARTS)))
    assert s.deliver() == 2
    assert s.deliver() == 0  # chat waits its backoff; pagerduty is done
    (notice,) = [n for n in s.notifier.store.notices(s.clock.now + 3600) if ":started" in n.id]
    chat = notice.deliveries["chat"]
    assert (chat.state, chat.attempts, chat.error) == ("pending", 1, "chat: BadStatusLine")
    s.notifier._senders = real
    s.clock.now += 120
    assert s.deliver() == 1
    assert s.counted() == {f"{decision['transition_id']}:started": 2}


class Killed(BaseException):
    """A sender's process killed mid-delivery: nothing after it runs, its claim stays."""


def test_a_notice_claimed_by_a_killed_sender_goes_out_once_its_claim_could_be_done(
    site: Callable[..., Site],
) -> None:
    s = site()
    dying = copy.copy(s.notifier)  # another worker's sender, killed while it delivers
    dying.holder = "worker-2"

    def killed(*args: Any) -> None:
        raise Killed

    dying._senders = {name: killed for name in s.notifier._senders}
    (decision,) = s.webhook(payload(alert(starts_at=STARTS)))
    with pytest.raises(Killed):
        dying.run_once()
    assert s.deliver() == 0  # claimed: the live sender leaves it to its holder for now
    # Two receivers, each up to a connect and a read timeout, and a margin for the store:
    # past that the claim is stale (it was over a minute more, seed 131 of bench chaos).
    s.clock.now += 2 * 2 * s.notifier.notify.timeout_seconds + 15
    assert s.deliver() == 2
    assert s.counted() == {f"{decision['transition_id']}:started": 2}
