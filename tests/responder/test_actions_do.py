"""do_dns_record and do_load_balancer through pydo against the DigitalOcean API sandbox."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from ddb_failover.config import (
    ConfigError,
    DigitalOcean,
    DNSRecordAction,
    LoadBalancerAction,
    Secret,
)
from responder.actions.base import reconcile
from responder.actions.do_client import DOClient, retry_after_seconds, status_error
from responder.actions.do_dns_record import DNSRecord, normalise_data, relative_name
from responder.actions.do_load_balancer import LoadBalancer
from responder.actions.inspection import Limits
from responder.model.errors import PermanentError, TemporaryError
from sandbox.net import free_port
from tests.responder.dosandbox import EAST, SEED, TOKEN, WEST, Sandbox, transition

LB_ID = "4de7ac8b-495b-4884-9a69-1050c6793cd6"
# Blue and green: two droplet sets in the load balancer's own region (nyc3).
EAST_IDS, GREEN_IDS = [3164444, 3164445], [3164448, 3164449]
WEST_IDS = [3164446, 3164447]  # in ams3: another region
TIMEOUT = 2.0


def dns_action(**overrides: Any) -> DNSRecordAction:
    fields = {
        "type": "do_dns_record",
        "name": "www",
        "domain": "example.test",
        "record_name": "www",
        "values": {EAST: "203.0.113.10", WEST: "198.51.100.20"},
    } | overrides
    return DNSRecordAction.model_validate(fields)


def lb_action(east: Any = None, west: Any = None, **fields: Any) -> LoadBalancerAction:
    return LoadBalancerAction.model_validate(
        {
            "type": "do_load_balancer",
            "name": "wordpress-lb",
            "load_balancer_id": LB_ID,
            "values": {
                EAST: east or {"droplet_ids": EAST_IDS},
                WEST: west or {"tag": "wordpress-green"},
            },
            **fields,
        }
    )


# --- pure helpers ---


def test_retry_after_reads_seconds_dates_and_ratelimit_reset() -> None:
    now = 1_700_000_000.0
    assert retry_after_seconds({"Retry-After": "7"}, now) == 7.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 30))
    assert retry_after_seconds({"Retry-After": date}, now) == pytest.approx(30.0)
    assert retry_after_seconds({"ratelimit-reset": str(int(now) + 12)}, now) == 12.0
    assert retry_after_seconds({}, now) is None


@pytest.mark.parametrize("digits", ["²", "\xb2\xb3", "٣", "\uff11\uff12", "7²", "⑦"])
def test_retry_after_in_other_digits_is_absent_not_a_crash(digits: str) -> None:
    # http.client decodes header bytes as Latin-1: byte 0xB2 arrives as "²".
    now = 1_700_000_000.0
    assert retry_after_seconds({"Retry-After": digits}, now) is None
    assert retry_after_seconds({"ratelimit-reset": digits}, now) is None
    for status in (429, 503):
        error = status_error("update lb", status, {"Retry-After": digits}, {})
        assert isinstance(error, TemporaryError) and error.retry_after is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        *((status, PermanentError) for status in (401, 403, 404, 422)),
        *((status, TemporaryError) for status in (408, 429, 500, 503)),
    ],
)
def test_status_error_classes(status: int, kind: type[Exception]) -> None:
    error = status_error("get lb", status, {}, {"id": "x", "message": "why"})
    assert isinstance(error, kind)
    assert str(error) == f"get lb: HTTP {status}: x: why"


def test_names_and_data_are_normalised() -> None:
    assert relative_name("www", "example.test") == "www"
    assert relative_name("WWW.example.test.", "example.test") == "www"
    assert relative_name("example.test", "example.test") == "@"
    assert normalise_data("AAAA", "2001:DB8:0::1") == "2001:db8::1"
    assert normalise_data("CNAME", "East.Example.test.") == "east.example.test"


def test_client_needs_a_token_and_an_http_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DDB_TEST_DO_TOKEN", raising=False)
    config = DigitalOcean(api_url="http://127.0.0.1:1", token=Secret(env="DDB_TEST_DO_TOKEN"))
    with pytest.raises(ConfigError, match="DDB_TEST_DO_TOKEN"):
        DOClient.from_config(config)
    with pytest.raises(ConfigError, match="must start with https://"):
        DOClient("api.digitalocean.com", TOKEN, 1.0)


# --- do_dns_record ---


def test_dns_already_desired_is_unchanged_without_a_write(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    outcome = reconcile(DNSRecord(dns_action(), do_client), transition(EAST))

    assert (outcome.result, outcome.before) == ("unchanged", {"data": "203.0.113.10"})
    assert sandbox.writes() == []


def test_dns_different_value_is_patched_ttl_kept_and_others_untouched(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    outcome = reconcile(DNSRecord(dns_action(), do_client), transition(WEST))

    assert outcome.result == "applied"
    assert (outcome.before, outcome.after) == ({"data": "203.0.113.10"}, {"data": "198.51.100.20"})
    assert sandbox.writes() == ["PATCH /v2/domains/example.test/records/102"]
    assert (sandbox.record(102)["data"], sandbox.record(102)["ttl"]) == ("198.51.100.20", 300)
    assert sandbox.record(103)["data"] == "203.0.113.10"  # www2: a different name
    assert sandbox.record(104)["data"] == "v=spf1 -all"  # www TXT: a different type


def test_dns_configured_ttl_is_set(sandbox: Sandbox, do_client: DOClient) -> None:
    outcome = reconcile(DNSRecord(dns_action(ttl=60), do_client), transition(EAST))

    # The data is already right, the TTL is not: that alone is a change.
    assert outcome.result == "applied"
    assert outcome.before == {"data": "203.0.113.10", "ttl": 300}
    assert outcome.after == {"data": "203.0.113.10", "ttl": 60}
    assert sandbox.record(102)["ttl"] == 60


def test_dns_cname_with_or_without_trailing_dot_is_the_same(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    action = dns_action(
        name="blog",
        record_type="CNAME",
        record_name="blog",
        values={EAST: "east.example.test", WEST: "west.example.test."},
    )
    assert reconcile(DNSRecord(action, do_client), transition(EAST)).result == "unchanged"
    assert reconcile(DNSRecord(action, do_client), transition(WEST)).result == "applied"
    assert sandbox.record(105)["data"] == "west.example.test."


def test_dns_absent_record_is_permanent_and_not_created(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    action = DNSRecord(dns_action(record_name="shop"), do_client)

    with pytest.raises(PermanentError, match=r"DNS record A shop in example.test does not exist"):
        reconcile(action, transition(WEST))
    assert sandbox.writes() == []


def test_dns_round_robin_records_are_ambiguous(sandbox: Sandbox, do_client: DOClient) -> None:
    with pytest.raises(PermanentError, match=r"2 records A rr in example.test \(106, 107\)"):
        reconcile(DNSRecord(dns_action(record_name="rr"), do_client), transition(WEST))
    assert sandbox.writes() == []


def test_dns_unknown_domain_is_permanent(sandbox: Sandbox, do_client: DOClient) -> None:
    # pydo hands back DigitalOcean's 404 body without raising; the client must still see it.
    with pytest.raises(PermanentError, match="HTTP 404: not_found"):
        DNSRecord(dns_action(domain="missing.test"), do_client).current()


def test_dns_bad_token_is_permanent(sandbox: Sandbox) -> None:
    client = DOClient(sandbox.url, "wrong-token", TIMEOUT)
    with pytest.raises(PermanentError, match="HTTP 401: unauthorized"):
        reconcile(DNSRecord(dns_action(), client), transition(WEST))


def test_dns_server_error_is_temporary_after_one_attempt(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    sandbox.control("POST", "/_sandbox/faults", {"status": 500, "count": 1})
    action = DNSRecord(dns_action(), do_client)

    with pytest.raises(TemporaryError, match="HTTP 500") as caught:
        reconcile(action, transition(WEST))

    assert caught.value.retry_after is None
    # pydo's own retry policy is off: the reconciler, not the client, decides on retries.
    assert len(sandbox.requests()) == 1
    assert reconcile(action, transition(WEST)).result == "applied"


def test_dns_rate_limit_is_temporary_with_retry_after(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    sandbox.control(
        "POST",
        "/_sandbox/faults",
        {"status": 429, "count": 1, "retry_after": 7, "path_prefix": "/v2/domains"},
    )
    with pytest.raises(TemporaryError, match="HTTP 429") as caught:
        DNSRecord(dns_action(), do_client).current()
    assert caught.value.retry_after == 7.0


def test_dns_dry_run_changes_nothing(sandbox: Sandbox, do_client: DOClient) -> None:
    outcome = reconcile(DNSRecord(dns_action(), do_client), transition(WEST, dry_run=True))

    assert (outcome.result, outcome.after) == ("would_apply", {"data": "198.51.100.20"})
    assert sandbox.writes() == []
    assert sandbox.record(102)["data"] == "203.0.113.10"


# --- do_load_balancer ---


def test_lb_already_desired_ids_in_any_order_are_unchanged(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    # The seed lists the droplets as [3164445, 3164444].
    outcome = reconcile(LoadBalancer(lb_action(), do_client), transition(EAST))

    assert (outcome.result, outcome.before) == ("unchanged", {"droplet_ids": EAST_IDS})
    assert sandbox.writes() == []


def test_lb_moves_from_ids_to_a_tag_keeping_its_settings(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    outcome = reconcile(LoadBalancer(lb_action(), do_client), transition(WEST))

    assert outcome.result == "applied"
    assert outcome.before == {"droplet_ids": EAST_IDS}
    assert outcome.after == {"tag": "wordpress-green"}
    assert sandbox.writes() == [f"PUT /v2/load_balancers/{LB_ID}"]
    lb = sandbox.load_balancer()
    assert lb["tag"] == "wordpress-green"
    assert sorted(lb["droplet_ids"]) == GREEN_IDS
    # The PUT is a full representation: the settings it carried back must survive it.
    assert lb["forwarding_rules"][0]["target_port"] == 8080
    assert (lb["name"], lb["region"]["slug"]) == ("wordpress-lb", "nyc3")


def test_lb_moves_from_a_tag_back_to_ids(sandbox: Sandbox, do_client: DOClient) -> None:
    action = LoadBalancer(lb_action(), do_client)
    reconcile(action, transition(WEST))

    outcome = reconcile(action, transition(EAST))

    assert (outcome.before, outcome.after) == (
        {"tag": "wordpress-green"},
        {"droplet_ids": EAST_IDS},
    )
    assert sandbox.load_balancer()["tag"] == ""


def test_lb_moves_between_id_lists(sandbox: Sandbox, do_client: DOClient) -> None:
    action = LoadBalancer(lb_action(west={"droplet_ids": GREEN_IDS}, region="nyc3"), do_client)

    outcome = reconcile(action, transition(WEST))

    assert (outcome.result, outcome.after) == ("applied", {"droplet_ids": GREEN_IDS})
    assert sorted(sandbox.load_balancer()["droplet_ids"]) == GREEN_IDS


def test_lb_tag_without_droplets_is_refused(sandbox: Sandbox, do_client: DOClient) -> None:
    action = LoadBalancer(lb_action(west={"tag": "wordpress-nowhere"}), do_client)

    with pytest.raises(PermanentError, match="no droplet has tag 'wordpress-nowhere'"):
        reconcile(action, transition(WEST))
    assert sandbox.writes() == []


def test_lb_tag_of_another_regions_droplets_is_refused(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    # DigitalOcean would accept it and leave the load balancer with no backends.
    action = LoadBalancer(lb_action(west={"tag": "wordpress-eu-west-1"}), do_client)

    with pytest.raises(PermanentError) as refused:
        reconcile(action, transition(WEST))

    assert str(refused.value) == (
        "wordpress-lb: the droplets tagged 'wordpress-eu-west-1' are in ams3, none in the "
        "load balancer's region nyc3; not moving traffic"
    )
    assert sandbox.writes() == []


def test_lb_ids_of_another_region_are_refused_by_the_api(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    action = LoadBalancer(lb_action(west={"droplet_ids": WEST_IDS}), do_client)

    refusal = r"HTTP 422: unprocessable_entity: droplet_ids: .* are in ams3, not in nyc3"
    with pytest.raises(PermanentError, match=refusal):
        reconcile(action, transition(WEST))

    assert sorted(sandbox.load_balancer()["droplet_ids"]) == EAST_IDS


def test_lb_in_another_region_than_configured_is_refused(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    action = LoadBalancer(lb_action(region="ams3"), do_client)

    with pytest.raises(PermanentError, match=f"load balancer {LB_ID} is in nyc3, not in ams3"):
        reconcile(action, transition(WEST))
    assert sandbox.writes() == []


def test_lb_unknown_id_is_permanent(sandbox: Sandbox, do_client: DOClient) -> None:
    config = lb_action().model_copy(
        update={"load_balancer_id": "00000000-0000-4000-8000-000000000000"}
    )

    with pytest.raises(PermanentError, match="HTTP 404"):
        reconcile(LoadBalancer(config, do_client), transition(WEST))


def test_lb_rate_limit_on_the_update_is_temporary(sandbox: Sandbox, do_client: DOClient) -> None:
    action = LoadBalancer(lb_action(), do_client)
    sandbox.control(
        "POST",
        "/_sandbox/faults",
        {"status": 503, "count": 1, "path_prefix": f"/v2/load_balancers/{LB_ID}"},
    )
    with pytest.raises(TemporaryError, match="HTTP 503"):
        reconcile(action, transition(WEST))
    sandbox.control(
        "POST",
        "/_sandbox/faults",
        {"status": 429, "count": 1, "retry_after": 3, "path_prefix": "/v2/load"},
    )
    with pytest.raises(TemporaryError) as caught:
        reconcile(action, transition(WEST))
    assert caught.value.retry_after == 3.0
    assert sandbox.load_balancer()["tag"] == ""


def test_lb_dry_run_changes_nothing(sandbox: Sandbox, do_client: DOClient) -> None:
    outcome = reconcile(LoadBalancer(lb_action(), do_client), transition(WEST, dry_run=True))

    assert (outcome.result, outcome.after) == ("would_apply", {"tag": "wordpress-green"})
    assert sandbox.writes() == []


# --- transport failures ---


def test_silent_server_times_out_as_temporary() -> None:
    # A listener that never accepts: the connection opens, no answer ever comes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        client = DOClient(f"http://127.0.0.1:{port}", TOKEN, 0.5)
        started = time.monotonic()
        with pytest.raises(TemporaryError, match="Timeout"):
            LoadBalancer(lb_action(), client).current()
        assert time.monotonic() - started < 4.5  # one attempt, not pydo's ten


def test_refused_connection_is_temporary() -> None:
    client = DOClient(f"http://127.0.0.1:{free_port()}", TOKEN, 0.5)
    with pytest.raises(TemporaryError, match="ServiceRequestError"):
        DNSRecord(dns_action(), client).current()


# --- inspect: the plan's read-only view ---


def kinds(inspection: Any) -> list[tuple[str, str]]:
    return [(p.kind, p.severity) for p in inspection.problems]


def test_dns_inspect_reads_only_and_says_what_would_change(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    seen = DNSRecord(dns_action(ttl=60), do_client).inspect(WEST, Limits(max_ttl_seconds=300))

    assert (seen.current, seen.desired) == (
        {"data": "203.0.113.10", "ttl": 300},
        {"data": "198.51.100.20", "ttl": 60},
    )
    assert (seen.would_change, seen.ready, seen.problems) == (True, True, ())
    assert sandbox.writes() == []
    assert [r["path"] for r in sandbox.requests()] == ["/v2/domains/example.test/records"]


@pytest.mark.parametrize(
    ("overrides", "expected", "words"),
    [
        ({"record_name": "nope"}, [("missing", "error")], "A nope in example.test does not exist"),
        ({"domain": "nope.test"}, [("missing", "error")], "HTTP 404"),
        ({"record_name": "rr"}, [("invalid_target", "error")], "2 records A rr in example.test"),
        (
            {"values": {EAST: "203.0.113.10", WEST: "www.example.test"}, "ttl": 60},
            [("invalid_target", "error")],
            "the value for eu-west-1, 'www.example.test', is not a valid A record value",
        ),
        # No TTL configured: the record's own (300 s) is what resolvers will cache.
        ({}, [("ttl", "warning")], "has TTL 300 s, over plan.max_ttl_seconds (120 s)"),
        ({"ttl": 600}, [("ttl", "warning")], "has TTL 600 s"),
    ],
)
def test_dns_inspect_problems(
    sandbox: Sandbox, do_client: DOClient, overrides: dict[str, Any], expected: Any, words: str
) -> None:
    action = DNSRecord(dns_action(**overrides), do_client)
    seen = action.inspect(WEST, Limits(max_ttl_seconds=120))

    assert kinds(seen) == expected
    assert words in seen.problems[0].message
    assert seen.ready == (expected[0][1] == "warning")
    assert sandbox.writes() == []


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        # A revoked token, and one without the scope: DigitalOcean answers 401 and 403.
        ({"status": 401}, "credentials"),
        ({"status": 403}, "credentials"),
        ({"status": 429, "count": 1}, "rate_limited"),
        ({"status": 503, "count": 1}, "unreachable"),
    ],
)
def test_dns_inspect_failed_reads_are_problems_of_their_kind(
    sandbox: Sandbox, do_client: DOClient, fault: dict[str, Any], kind: str
) -> None:
    sandbox.fault(**fault)
    seen = DNSRecord(dns_action(), do_client).inspect(WEST)
    assert (kinds(seen), seen.would_change) == ([(kind, "error")], None)
    assert f"HTTP {fault['status']}" in seen.problems[0].message


def test_dns_inspect_with_a_wrong_token_is_a_credentials_problem(sandbox: Sandbox) -> None:
    seen = DNSRecord(dns_action(), DOClient(sandbox.url, "revoked-token", TIMEOUT)).inspect(WEST)
    assert kinds(seen) == [("credentials", "error")]
    assert "HTTP 401" in seen.problems[0].message


@pytest.mark.parametrize(
    ("west", "fields", "words"),
    [
        ({"droplet_ids": GREEN_IDS}, {}, None),
        ({"tag": "wordpress-green"}, {"region": "nyc3"}, None),
        ({"tag": "nobody"}, {}, "no droplet has tag 'nobody'"),
        (
            {"tag": "wordpress-eu-west-1"},
            {},
            "the droplets tagged 'wordpress-eu-west-1' are in ams3, none in the load balancer's "
            "region nyc3",
        ),
        ({"droplet_ids": [3164448, 999]}, {}, "droplet(s) 999 do not exist"),
        (
            {"droplet_ids": [3164448, *WEST_IDS]},
            {},
            "droplet(s) 3164446 (ams3), 3164447 (ams3) are not in the load balancer's region nyc3",
        ),
        (
            {"droplet_ids": GREEN_IDS},
            {"region": "ams3"},
            f"load balancer {LB_ID} is in nyc3, not in ams3 as configured",
        ),
    ],
)
def test_lb_inspect_checks_the_region_and_the_target(
    sandbox: Sandbox,
    do_client: DOClient,
    west: dict[str, Any],
    fields: dict[str, Any],
    words: str | None,
) -> None:
    seen = LoadBalancer(lb_action(west=west, **fields), do_client).inspect(WEST)

    assert (seen.current, seen.would_change) == ({"droplet_ids": EAST_IDS}, True)
    if words is None:
        assert seen.problems == ()
    else:
        assert kinds(seen) == [("invalid_target", "error")]
        assert words in seen.problems[0].message
    assert sandbox.writes() == []


def test_lb_inspect_of_a_deleted_load_balancer_is_missing(
    sandbox: Sandbox, do_client: DOClient
) -> None:
    sandbox.control("POST", "/_sandbox/state", {"seed": {**SEED, "load_balancers": []}})
    seen = LoadBalancer(lb_action(), do_client).inspect(WEST)
    assert kinds(seen) == [("missing", "error")]
    assert f"get load balancer {LB_ID}: HTTP 404" in seen.problems[0].message
