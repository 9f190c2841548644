"""The DigitalOcean API sandbox as a real process, driven through pydo (the responder's client)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from ddb_failover.config import DNSRecordAction, GlobalLoadBalancerAction, ResponderConfig
from sandbox.do_api.seed import default_seed, load_seed
from sandbox.net import free_port
from sandbox.stack import stop_process
from tests.sandbox.doapi import (
    HTTP,
    OBJECTS,
    PRIMARY,
    REPO,
    SECONDARY,
    SERVE,
    Server,
    response_of,
    start_server,
    writes,
)

TESTDATA = Path(__file__).parent / "testdata"
DOMAIN = OBJECTS["domain"]
RECORD_ID = OBJECTS["record_id"]
LB_ID = OBJECTS["load_balancer_ids"][PRIMARY]
RECORD_PATH = f"/v2/domains/{DOMAIN}/records/{RECORD_ID}"
LB_DROPLETS_PATH = f"/v2/load_balancers/{LB_ID}/droplets"


def test_lists_and_reads_the_seeded_record(server: Server) -> None:
    client = server.client()
    listed = client.domains.list_records(DOMAIN, name=f"www.{DOMAIN}", type="A", **HTTP)
    assert [r["id"] for r in listed["domain_records"]] == [RECORD_ID]
    assert listed["meta"] == {"total": 1}
    everything = client.domains.list_records(DOMAIN, **HTTP)
    assert {r["type"] for r in everything["domain_records"]} == {"NS", "SOA", "A"}
    record = client.domains.get_record(DOMAIN, RECORD_ID, **HTTP)["domain_record"]
    assert (record["name"], record["data"]) == ("www", OBJECTS["record_values"][PRIMARY])
    assert client.domains.get(DOMAIN, **HTTP)["domain"]["name"] == DOMAIN


def test_updates_a_record_and_reads_it_back(server: Server) -> None:
    client = server.client()
    target = OBJECTS["record_values"][SECONDARY]
    put = client.domains.update_record(DOMAIN, RECORD_ID, {"type": "A", "data": target}, **HTTP)
    assert put["domain_record"]["data"] == target
    assert put["domain_record"]["ttl"] == 60  # fields left out are kept
    patched = client.domains.patch_record(DOMAIN, RECORD_ID, {"type": "A", "ttl": 300}, **HTTP)
    assert (patched["domain_record"]["data"], patched["domain_record"]["ttl"]) == (target, 300)
    record = client.domains.get_record(DOMAIN, RECORD_ID, **HTTP)["domain_record"]
    assert (record["data"], record["ttl"]) == (target, 300)
    listed = client.domains.list_records(DOMAIN, name=f"www.{DOMAIN}", **HTTP)["domain_records"]
    assert [r["data"] for r in listed] == [target]


def test_creates_and_deletes_a_record(server: Server) -> None:
    client = server.client()
    body = {"type": "A", "name": "probe", "data": "192.0.2.7", "ttl": 120}
    created = client.domains.create_record(DOMAIN, body, **HTTP)["domain_record"]
    assert isinstance(created["id"], int) and created["id"] != RECORD_ID
    assert client.domains.delete_record(DOMAIN, created["id"], **HTTP) is None
    gone = client.domains.get_record(DOMAIN, created["id"], **HTTP)
    assert gone["id"] == "not_found"


def test_load_balancer_droplets_by_ids(server: Server) -> None:
    client = server.client()
    lb = client.load_balancers.get(LB_ID, **HTTP)["load_balancer"]
    # Seeded by the tag every WordPress droplet has: only this region's are its backends.
    assert lb["tag"] == "wordpress"
    assert lb["droplet_ids"] == OBJECTS["droplet_ids"][PRIMARY]
    assert lb["region"]["slug"] == OBJECTS["droplet_regions"][PRIMARY]
    blue, green = OBJECTS["droplet_ids"][PRIMARY]
    body = {
        "name": lb["name"],
        "region": lb["region"]["slug"],
        "forwarding_rules": lb["forwarding_rules"],
        "health_check": {**lb["health_check"], "path": "/healthz"},
        "droplet_ids": [blue],
    }
    updated = client.load_balancers.update(LB_ID, body, **HTTP)["load_balancer"]
    assert (updated["droplet_ids"], updated["tag"]) == ([blue], "")
    assert updated["health_check"]["path"] == "/healthz"
    assert updated["redirect_http_to_https"] is False  # reset to its default, as DO does
    # The droplets endpoints: 204, nothing returned, and the set changes.
    assert client.load_balancers.add_droplets(LB_ID, {"droplet_ids": [green]}, **HTTP) is None
    assert client.load_balancers.remove_droplets(LB_ID, {"droplet_ids": [blue]}, **HTTP) is None
    final = client.load_balancers.get(LB_ID, **HTTP)["load_balancer"]
    assert final["droplet_ids"] == [green]
    statuses = [(r["method"], r["status"]) for r in server.requests() if "/droplets" in r["path"]]
    assert statuses == [("POST", 204), ("DELETE", 204)]


def test_load_balancer_droplets_by_tag(server: Server) -> None:
    client = server.client()
    lb = client.load_balancers.get(LB_ID, **HTTP)["load_balancer"]
    body = {
        "name": lb["name"],
        "region": lb["region"]["slug"],
        "forwarding_rules": lb["forwarding_rules"],
        "tag": OBJECTS["droplet_tags"][PRIMARY],
    }
    updated = client.load_balancers.update(LB_ID, body, **HTTP)["load_balancer"]
    assert updated["tag"] == OBJECTS["droplet_tags"][PRIMARY]
    assert sorted(updated["droplet_ids"]) == OBJECTS["droplet_ids"][PRIMARY]
    # A tagged load balancer takes no droplets by id, as on DigitalOcean.
    with pytest.raises(HttpResponseError) as refused:
        client.load_balancers.add_droplets(LB_ID, {"droplet_ids": [1]}, **HTTP)
    assert refused.value.status_code == 422
    tagged = client.droplets.list(tag_name=OBJECTS["droplet_tags"][SECONDARY], **HTTP)
    assert sorted(d["id"] for d in tagged["droplets"]) == OBJECTS["droplet_ids"][SECONDARY]
    assert {d["region"]["slug"] for d in tagged["droplets"]} == {
        OBJECTS["droplet_regions"][SECONDARY]
    }
    one = client.droplets.get(OBJECTS["droplet_ids"][SECONDARY][0], **HTTP)["droplet"]
    assert OBJECTS["droplet_tags"][SECONDARY] in one["tags"]


def test_pages_follow_digitalocean_links(server: Server) -> None:
    page = server.client().droplets.list(per_page=3, page=1, **HTTP)
    assert len(page["droplets"]) == 3 and page["meta"]["total"] == 4
    next_url = page["links"]["pages"]["next"]
    assert next_url.startswith(server.url + "/v2/droplets?") and "page=2" in next_url
    status, _, rest = server.call("GET", next_url.removeprefix(server.url))
    assert status == 200 and len(rest["droplets"]) == 1


def test_requires_the_bearer_token(server: Server) -> None:
    for token in (None, "wrong-token"):
        status, _, body = server.call("GET", f"/v2/domains/{DOMAIN}/records", token=token)
        assert status == 401
        assert body["id"] == "unauthorized" and body["message"]
    with pytest.raises(ClientAuthenticationError):
        server.client(token="wrong-token").droplets.list(**HTTP)
    assert [r["status"] for r in server.requests()] == [401, 401, 401]


def test_unknown_objects_are_404(server: Server) -> None:
    client = server.client()
    # pydo hands a 404 body back instead of raising.
    missing = client.domains.get_record(DOMAIN, 1, **HTTP)
    assert missing["id"] == "not_found" and missing["message"]
    assert client.load_balancers.get("no-such-lb", **HTTP)["id"] == "not_found"
    assert client.domains.get_record("nope.test", RECORD_ID, **HTTP)["id"] == "not_found"
    assert server.call("GET", "/v2/nothing-here")[0] == 404
    status, _, body = server.call("PATCH", "/v2/droplets")
    assert (status, body["id"]) == (405, "method_not_allowed")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "names"),
    [
        ("PUT", RECORD_PATH, {"data": "1.2.3.4"}, 422, "'type'"),
        ("PUT", RECORD_PATH, {"type": "A", "ttl": "x"}, 422, "ttl"),
        ("PUT", RECORD_PATH, {"type": "A", "ttl": 5}, 422, "ttl"),
        ("PUT", RECORD_PATH, {"type": "A", "id": 7}, 422, "id"),
        ("PUT", RECORD_PATH, {"type": "A", "data": "x"}, 422, "data"),
        ("PUT", RECORD_PATH, {"type": "CNAME"}, 422, "type"),
        ("POST", f"/v2/domains/{DOMAIN}/records", {"type": "A", "name": "x"}, 422, "'data'"),
        ("POST", LB_DROPLETS_PATH, {"droplet_ids": ["a"]}, 422, "droplet_ids"),
        ("POST", LB_DROPLETS_PATH, {"droplet_ids": [42]}, 422, "by tag"),
        ("POST", LB_DROPLETS_PATH, None, 400, "body"),
        ("PUT", f"/v2/load_balancers/{LB_ID}", {"region": "nyc3"}, 422, "forwarding_rules"),
        ("GET", "/v2/droplets?per_page=0", None, 400, "per_page"),
        ("GET", "/v2/droplets/abc", None, 404, "droplet_id"),
    ],
)
def test_rejects_requests_the_spec_refuses(
    server: Server, method: str, path: str, body: Any, status: int, names: str
) -> None:
    before = server.control("GET", "state")
    got, _, error = server.call(method, path, body)
    assert got == status
    assert error["id"] in ("bad_request", "not_found", "unprocessable_entity")
    assert names in error["message"]
    assert server.control("GET", "state") == before


@pytest.mark.parametrize(
    ("data", "content_type", "status", "error_id"),
    [
        (b"", "application/json", 400, "bad_request"),
        (b'{"type": "A", "data": ', "application/json", 400, "bad_request"),
        (b'{"type": "A"}', "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_rejects_bodies_that_are_not_json(
    server: Server, data: bytes, content_type: str, status: int, error_id: str
) -> None:
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": content_type}
    request = urllib.request.Request(server.url + RECORD_PATH, data, headers, method="PUT")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == status
    assert json.loads(refused.value.read())["id"] == error_id


def test_droplet_ids_and_tag_are_mutually_exclusive(server: Server) -> None:
    rules = [
        {"entry_protocol": "http", "entry_port": 80, "target_protocol": "http", "target_port": 80}
    ]
    body = {"region": "nyc3", "forwarding_rules": rules, "droplet_ids": [1], "tag": "web"}
    with pytest.raises(HttpResponseError) as refused:
        server.client().load_balancers.update(LB_ID, body, **HTTP)
    assert refused.value.status_code == 422
    assert "mutually exclusive" in response_of(refused.value).json()["message"]


def test_429_carries_retry_after_then_the_call_succeeds(server: Server) -> None:
    server.control("POST", "faults", {"status": 429, "count": 1, "retry_after": 1})
    client = server.client()
    with pytest.raises(HttpResponseError) as limited:
        client.domains.get_record(DOMAIN, RECORD_ID, **HTTP)
    response = response_of(limited.value)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.headers["ratelimit-remaining"] == "0"
    assert response.json()["id"] == "too_many_requests"
    assert client.domains.get_record(DOMAIN, RECORD_ID, **HTTP)["domain_record"]["id"] == RECORD_ID
    # pydo's own retry policy honours Retry-After.
    server.control("POST", "faults", {"status": 429, "count": 1, "retry_after": 1})
    started = time.monotonic()
    assert server.client(retries=2).droplets.list(**HTTP)["meta"]["total"] == 4
    assert time.monotonic() - started >= 1.0
    assert [r["status"] for r in server.requests()] == [429, 200, 429, 200]


def test_500_for_n_calls_then_success(server: Server) -> None:
    server.control(
        "POST", "faults", {"status": 500, "count": 2, "path_prefix": f"/v2/domains/{DOMAIN}"}
    )
    assert len(server.control("GET", "faults")["faults"]) == 1
    client = server.client(retries=3)
    assert client.droplets.list(**HTTP)["meta"]["total"] == 4  # outside the prefix: untouched
    body = {"type": "A", "data": OBJECTS["record_values"][SECONDARY]}
    assert client.domains.update_record(DOMAIN, RECORD_ID, body, **HTTP)["domain_record"]
    log = [(r["method"], r["status"], r["fault"]) for r in server.requests()]
    assert log == [
        ("GET", 200, False),
        ("PUT", 500, True),
        ("PUT", 500, True),
        ("PUT", 200, False),
    ]
    assert server.control("GET", "faults")["faults"] == []


@pytest.mark.parametrize(
    ("fault", "names"),
    [
        ({"status": 404}, "status"),
        ({"status": 500, "count": 0}, "count"),
        ({"status": 500, "retry_after": 3}, "retry_after"),
        ({"status": 503, "path_prefix": "v2"}, "path_prefix"),
    ],
)
def test_fault_requests_are_checked(server: Server, fault: dict[str, Any], names: str) -> None:
    status, _, body = server.call("POST", "/_sandbox/faults", fault, token=None)
    assert status == 400
    assert names in body["message"]
    assert server.control("GET", "faults")["faults"] == []


def test_request_log_counts_changes_per_object(server: Server) -> None:
    client = server.client()
    for region in (SECONDARY, PRIMARY):
        body = {"type": "A", "data": OBJECTS["record_values"][region]}
        client.domains.update_record(DOMAIN, RECORD_ID, body, **HTTP)
    lb = client.load_balancers.get(LB_ID, **HTTP)["load_balancer"]
    body = {"region": lb["region"]["slug"], "forwarding_rules": lb["forwarding_rules"]}
    client.load_balancers.update(LB_ID, {**body, "tag": "wordpress"}, **HTTP)
    client.domains.get_record(DOMAIN, RECORD_ID, **HTTP)
    changes = writes(server, RECORD_PATH)
    assert [c["body"]["data"] for c in changes] == [
        OBJECTS["record_values"][SECONDARY],
        OBJECTS["record_values"][PRIMARY],
    ]
    assert len(writes(server, f"/v2/load_balancers/{LB_ID}")) == 1
    seq = server.requests()[-1]["seq"]
    assert server.control("GET", f"requests?since={seq}")["requests"] == []


def test_concurrent_changes_are_all_answered(server: Server) -> None:
    client = server.client()
    results: list[int] = []

    def put(n: int) -> None:
        body = {"type": "A", "data": f"203.0.113.{100 + n}"}
        record = client.domains.update_record(DOMAIN, RECORD_ID, body, **HTTP)["domain_record"]
        results.append(record["id"])

    threads = [threading.Thread(target=put, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [RECORD_ID] * 12
    assert len(writes(server, RECORD_PATH)) == 12


def test_state_reset_restores_the_seed(server: Server) -> None:
    body = {"type": "A", "data": "203.0.113.99"}
    server.client().domains.update_record(DOMAIN, RECORD_ID, body, **HTTP)
    reset = server.control("POST", "state", {})
    record = next(r for r in reset["domains"][0]["records"] if r["id"] == RECORD_ID)
    assert record["data"] == OBJECTS["record_values"][PRIMARY]
    assert server.requests() == []


def test_a_response_outside_the_spec_is_a_violation(tmp_path: Path) -> None:
    # The seed sneaks in a forwarding rule the spec forbids; serving it must fail loudly.
    bad = start_server(tmp_path, TESTDATA / "do_seed_bad_response.json")
    try:
        lb_id = "0d4a4f1e-5a7b-4f8e-9a43-2f6c0b0d9e11"
        status, _, body = bad.call("GET", f"/v2/load_balancers/{lb_id}")
        assert status == 500
        assert body["id"] == "sandbox_error"
        assert "sandbox itself is wrong" in body["message"] and "entry_protocol" in body["message"]
        [violation] = bad.violations()
        assert violation["operation"] == "loadBalancers_get" and violation["status"] == 200
        assert bad.call("GET", "/v2/droplets/101")[0] == 200  # the rest still serves
    finally:
        stop_process(bad.process)
    log = bad.log.read_text()
    assert 'msg="sandbox violation"' in log and "OpenAPI description" in log


def test_cli_refuses_an_invalid_seed(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t\n")
    seed = TESTDATA / "do_seed_invalid.json"
    done = subprocess.run(
        [
            *SERVE,
            "--port",
            str(free_port()),
            "--token-file",
            str(tmp_path / "token"),
            "--seed",
            str(seed),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 2
    assert "droplets.0.region" in done.stderr and "atlantis1" in done.stderr
    assert "exactly one of droplet_ids or tag" in done.stderr


def test_component_publishes_what_it_seeded(tmp_path: Path) -> None:
    import pydo

    from sandbox.components.do_api import start_do_api
    from sandbox.stack import Stack

    stack = Stack(tmp_path, options={"regions": ["us-west-2", "eu-central-1"]})
    try:
        start_do_api(stack)
        info = stack.config_data["_sandbox"]["do_api"]
        assert info["url"] == stack.components["do_api"].url
        assert info["token_file"] == str(stack.secret("do-token"))
        token = Path(info["token_file"]).read_text().strip()
        client = pydo.Client(token=token, endpoint=info["url"], retry_total=0)
        record = client.domains.get_record(info["domain"], info["record_id"], **HTTP)
        assert record["domain_record"]["data"] == info["record_values"]["us-west-2"]
        assert info["droplet_regions"] == {"us-west-2": "sfo3", "eu-central-1": "fra1"}
        for region, lb_id in info["load_balancer_ids"].items():
            lb = client.load_balancers.get(lb_id, **HTTP)["load_balancer"]
            assert lb["ip"] == info["record_values"][region]
            assert lb["droplet_ids"] == info["droplet_ids"][region]
            assert lb["region"]["slug"] == info["droplet_regions"][region]
        glb_id = info["global_load_balancer_id"]
        glb = client.load_balancers.get(glb_id, **HTTP)["load_balancer"]
        assert glb["glb_settings"]["region_priorities"] == {"sfo3": 1, "fra1": 2}
        app = client.apps.get(info["app_id"], **HTTP)["app"]
        assert app["spec"]["envs"][0] == {
            "key": "DYNAMODB_REGION",
            "value": "us-west-2",
            "scope": "RUN_TIME",
        }
        # The fragments it offers for the responder's config are valid config.
        responder = ResponderConfig.model_validate(
            {"digitalocean": info["digitalocean"], "actions": info["actions"]}
        )
        assert responder.digitalocean.token.read() == token
        dns, glb_action = responder.actions
        assert isinstance(dns, DNSRecordAction) and isinstance(glb_action, GlobalLoadBalancerAction)
        assert dns.values == info["record_values"]
        assert glb_action.load_balancer_id == glb_id
        assert glb_action.values == info["droplet_regions"]
        with urllib.request.urlopen(info["url"] + "/_sandbox/violations", timeout=10) as answer:
            assert json.loads(answer.read()) == {"violations": []}
    finally:
        stack.close()


def test_default_seed_per_region_values() -> None:
    seed, objects = default_seed(["us-east-1", "eu-west-1", "ap-southeast-1"])
    assert list(objects["record_values"]) == ["us-east-1", "eu-west-1", "ap-southeast-1"]
    assert len(set(objects["record_values"].values())) == 3
    assert len(set(objects["droplet_regions"].values())) == 3
    assert all(len(ids) == 2 for ids in objects["droplet_ids"].values())
    *regional, glb = seed["load_balancers"]
    # One load balancer per region, in that region, at the IP DNS points at for it.
    assert [lb["id"] for lb in regional] == list(objects["load_balancer_ids"].values())
    assert [lb["region"] for lb in regional] == list(objects["droplet_regions"].values())
    assert [lb["ip"] for lb in regional] == list(objects["record_values"].values())
    assert glb["type"] == "GLOBAL"
    assert glb["target_load_balancer_ids"] == list(objects["load_balancer_ids"].values())
    assert glb["glb_settings"]["region_priorities"] == {"nyc3": 1, "ams3": 2, "sgp1": 3}
    www = next(r for r in seed["domains"][0]["records"] if r["name"] == "www")
    assert (www["id"], www["data"]) == (objects["record_id"], objects["record_values"]["us-east-1"])
    [app] = seed["apps"]
    assert app["id"] == objects["app_id"]
    assert app["spec"]["envs"][0]["value"] == "us-east-1"
    with pytest.raises(ValueError, match="distinct"):
        default_seed(["us-east-1", "us-east-1"])


def test_load_seed_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"droplets\.0\.region.*atlantis1"):
        load_seed(TESTDATA / "do_seed_invalid.json")
    with pytest.raises(ValueError, match="cannot read seed"):
        load_seed(tmp_path / "missing.json")


def test_vendored_spec_is_valid_openapi() -> None:
    from openapi_spec_validator import validate

    from sandbox.do_api import spec

    validate(spec.document())  # raises on any error in the OpenAPI 3.0 document
    license_text = spec.SPEC_PATH.with_name("digitalocean-openapi.LICENSE").read_text()
    assert "Apache License" in license_text
