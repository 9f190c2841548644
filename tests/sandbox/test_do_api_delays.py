"""Late answers: a delay fault's change lands before, after or never; others are answered meanwhile.

And the request log's start and end times with the lease holder's headers, from which a checker
can tell two holders' writes to one object that overlapped.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ServiceResponseError

from sandbox.net import wait_until
from sandbox.stack import stop_process
from tests.sandbox.doapi import HTTP, OBJECTS, PRIMARY, SECONDARY, SEED, Server, start_server

DOMAIN = OBJECTS["domain"]
RECORD_ID = OBJECTS["record_id"]
RECORD_PATH = f"/v2/domains/{DOMAIN}/records/{RECORD_ID}"
BEFORE, AFTER = OBJECTS["record_values"][PRIMARY], OBJECTS["record_values"][SECONDARY]
HOLDER, FENCE = "X-DDB-Failover-Holder", "X-DDB-Failover-Fence"


class Pending:
    """A call made on a thread of its own, whose answer the test collects later."""

    def __init__(self, server: Server, method: str, path: str, body: Any = None, **kw: Any):
        self.answer: tuple[int, dict[str, str], Any] | None = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.answer = server.call(method, path, body, **kw)
            except BaseException as error:  # the test reads it after join
                self.error = error

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def waiting(self) -> bool:
        return self.thread.is_alive()

    def result(self, timeout: float = 15) -> tuple[int, dict[str, str], Any]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the delayed call never came back"
        assert self.answer is not None, self.error
        return self.answer


def record_data(server: Server) -> str:
    return str(server.call("GET", RECORD_PATH)[2]["domain_record"]["data"])


def delay(server: Server, seconds: float, apply: str, method: str = "PUT") -> None:
    fault = {"delay_seconds": seconds, "apply": apply, "count": 1}
    server.control("POST", "faults", {**fault, "method": method, "path_prefix": RECORD_PATH})


def taken(server: Server) -> None:
    """Wait until the (count 1) fault was taken: its call is now in its delay."""
    wait_until(lambda: server.control("GET", "faults")["faults"] == [], 30, message="fault taken")


def put(server: Server, **kw: Any) -> Pending:
    return Pending(server, "PUT", RECORD_PATH, {"type": "A", "data": AFTER}, **kw)


def seconds(entry: dict[str, Any]) -> float:
    return (_at(entry["ended"]) - _at(entry["started"])).total_seconds()


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_before_the_change_is_seen_while_its_answer_still_waits(server: Server) -> None:
    delay(server, 3, "before")
    pending = put(server)

    wait_until(lambda: record_data(server) == AFTER, 30, message="the change made")

    # Another call was answered, and saw the change, while the PUT's answer was held back.
    assert pending.waiting()
    status, _, body = pending.result()
    assert (status, body["domain_record"]["data"]) == (200, AFTER)
    [entry] = [r for r in server.requests() if r["method"] == "PUT"]
    assert entry["fault"] and seconds(entry) >= 3


def test_after_the_change_waits_for_the_delay(server: Server) -> None:
    delay(server, 3, "after")
    pending = put(server)
    taken(server)

    seen_meanwhile = record_data(server)

    assert pending.waiting()  # so the read above was answered during the delay
    assert seen_meanwhile == BEFORE
    assert pending.result()[0] == 200
    assert record_data(server) == AFTER


def test_never_answers_504_after_the_delay_and_changes_nothing(server: Server) -> None:
    delay(server, 1, "never")

    status, _, body = put(server).result()

    assert (status, body["id"]) == (504, "gateway_timeout")
    assert body["message"] and body["request_id"]
    assert record_data(server) == BEFORE
    [entry] = [r for r in server.requests() if r["method"] == "PUT"]
    assert (entry["status"], entry["fault"]) == (504, True) and seconds(entry) >= 1


def test_a_delayed_read_just_answers_late(server: Server) -> None:
    delay(server, 1, "before", method="GET")

    status, headers, body = server.call("GET", RECORD_PATH)

    assert (status, body["domain_record"]["data"]) == (200, BEFORE)
    assert "ratelimit-remaining" in headers
    [entry] = server.requests()
    assert entry["fault"] and seconds(entry) >= 1


def test_the_write_lands_though_the_clients_answer_timed_out(server: Server) -> None:
    """The case the delay exists for: the client gives up, the change is made anyway."""
    delay(server, 3, "after")
    client = server.client()

    with pytest.raises(ServiceResponseError):
        client.domains.update_record(
            DOMAIN, RECORD_ID, {"type": "A", "data": AFTER}, read_timeout=1, **HTTP
        )

    assert record_data(server) == BEFORE  # not yet
    wait_until(lambda: record_data(server) == AFTER, 30, message="the late change")


def test_the_log_shows_two_holders_writing_at_once(server: Server) -> None:
    delay(server, 2, "before")
    first = put(server, headers={HOLDER: "replica-a", FENCE: "7"})
    taken(server)
    second = Pending(
        server,
        "PUT",
        RECORD_PATH,
        {"type": "A", "data": BEFORE},
        headers={HOLDER: "replica-b", FENCE: "8"},
    )
    assert second.result()[0] == 200
    assert first.result()[0] == 200
    server.call("GET", RECORD_PATH)

    quick, slow, read = server.requests()  # in the order answered

    # The delayed write began first and ended last: the two holders' writes overlapped.
    assert (slow["holder"], slow["fence"]) == ("replica-a", "7")
    assert (quick["holder"], quick["fence"]) == ("replica-b", "8")
    assert _at(slow["started"]) < _at(quick["started"]) <= _at(quick["ended"]) < _at(slow["ended"])
    assert (read["holder"], read["fence"]) == (None, None)
    assert _at(read["started"]) <= _at(read["ended"]) == _at(read["time"])


def test_a_long_header_is_kept_cut_short(server: Server) -> None:
    server.call("GET", RECORD_PATH, headers={HOLDER: "h" * 5000})
    assert server.requests()[0]["holder"] == "h" * 200


def test_stopping_does_not_wait_for_a_delayed_call(tmp_path: Path) -> None:
    (tmp_path / "seed.json").write_text(json.dumps(SEED))
    own = start_server(tmp_path, tmp_path / "seed.json")
    try:
        delay(own, 600, "after")
        pending = put(own)
        taken(own)
        assert pending.waiting()
    finally:
        stop_process(own.process, grace=5)

    # SIGTERM was enough: stop_process would have had to SIGKILL (-9) a hung sandbox.
    assert own.process.returncode == 0, own.log.read_text()[-2000:]
    pending.thread.join(10)
    assert not pending.waiting()
    assert pending.answer is None or pending.answer[0] == 503  # never the delayed change
