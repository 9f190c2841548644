"""registry.build: one class per configured action type, clients from injected factories."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest

from ddb_failover import config as cfg
from responder.actions import registry
from responder.actions.command import Command
from responder.actions.do_app_env import AppEnv
from responder.actions.do_client import DOClient
from responder.actions.do_dns_record import DNSRecord
from responder.actions.do_global_load_balancer import GlobalLoadBalancer
from responder.actions.do_load_balancer import LoadBalancer
from responder.actions.env_file import EnvFile
from responder.actions.route53_record import Route53Record
from responder.actions.ssm_parameter import SSMParameter

VALUES = {"us-east-1": "203.0.113.10", "eu-west-1": "198.51.100.20"}


def config(actions: list[dict[str, Any]], state: dict[str, Any] | None = None) -> cfg.Config:
    responder: dict[str, Any] = {
        "digitalocean": {"api_url": "http://127.0.0.1:9", "token": {"env": "DDB_TEST_DO_TOKEN"}},
        "actions": actions,
    }
    if state is not None:
        responder["state"] = state
    return cfg.parse(
        {
            "tables": ["wordpress_posts"],
            "canary": {"key": "health_check_id", "value": "ping"},
            "regions": [{"name": "us-east-1"}, {"name": "eu-west-1"}],
            "responder": responder,
        }
    )


ALL_ACTIONS: list[dict[str, Any]] = [
    {"type": "do_dns_record", "domain": "example.test", "record_name": "www", "values": VALUES},
    {
        "type": "do_load_balancer",
        "load_balancer_id": "4de7ac8b-495b-4884-9a69-1050c6793cd6",
        "values": {"us-east-1": {"tag": "a"}, "eu-west-1": {"droplet_ids": [1]}},
    },
    {
        "type": "route53_record",
        "hosted_zone_id": "Z1",
        "record_name": "example.test.",
        "endpoint_url": "http://127.0.0.1:4566",
        "values": VALUES,
    },
    {"type": "env_file", "path": "/tmp/x.env"},
    {"type": "ssm_parameter", "parameter": "/app/region", "region": "eu-west-1"},
    {"type": "command", "name": "notify", "command": ["true"]},
    {
        "type": "do_global_load_balancer",
        "load_balancer_id": "b53415a9-f504-5998-a1d5-d0673cf65c94",
        "values": {"us-east-1": "nyc3", "eu-west-1": "ams3"},
    },
    {"type": "do_app_env", "app_id": "ac208c53-859f-5bcf-8813-cc5cc769f1ea", "component": "web"},
]


def test_every_config_action_type_has_exactly_one_builder() -> None:
    union = typing.get_args(typing.get_args(cfg.Action)[0])
    types = {typing.get_args(model.model_fields["type"].annotation)[0] for model in union}
    assert set(registry.BUILDERS) == types


def test_build_maps_each_type_to_its_class_with_injected_clients(tmp_path: Path) -> None:
    do_calls: list[cfg.DigitalOcean] = []
    aws_calls: list[tuple[str, str, str | None]] = []

    def do_factory(settings: cfg.DigitalOcean) -> DOClient:
        do_calls.append(settings)
        return DOClient(settings.api_url, "injected", settings.timeout_seconds)

    def aws_factory(service: str, region: str, endpoint_url: str | None) -> Any:
        aws_calls.append((service, region, endpoint_url))
        return object()

    actions = registry.build(
        config(ALL_ACTIONS),
        state_dir=tmp_path,
        do_client_factory=do_factory,
        aws_client_factory=aws_factory,
    )

    assert [type(a) for a in actions] == [
        DNSRecord,
        LoadBalancer,
        Route53Record,
        EnvFile,
        SSMParameter,
        Command,
        GlobalLoadBalancer,
        AppEnv,
    ]
    assert [a.name for a in actions] == [
        "do_dns_record",
        "do_load_balancer",
        "route53_record",
        "env_file",
        "ssm_parameter",
        "notify",
        "do_global_load_balancer",
        "do_app_env",
    ]
    assert len(do_calls) == 1  # one DigitalOcean client shared by all four DO actions
    dns, lb, command, glb, app = actions[0], actions[1], actions[5], actions[6], actions[7]
    assert isinstance(dns, DNSRecord) and isinstance(lb, LoadBalancer)
    assert isinstance(glb, GlobalLoadBalancer) and isinstance(app, AppEnv)
    assert dns.client is lb.client is glb.client is app.client
    assert aws_calls == [
        ("route53", "us-east-1", "http://127.0.0.1:4566"),
        ("ssm", "eu-west-1", None),
    ]
    assert isinstance(command, Command)
    assert command.state_path == tmp_path / "command-notify.json"


def test_without_do_actions_the_do_token_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DDB_TEST_DO_TOKEN", raising=False)
    actions = registry.build(config([ALL_ACTIONS[3]]))
    assert [type(a) for a in actions] == [EnvFile]


def test_command_records_live_beside_the_sqlite_state() -> None:
    sqlite = config([ALL_ACTIONS[5]], state={"backend": "sqlite", "path": "/srv/ddb/state.db"})
    dynamo = config(
        [ALL_ACTIONS[5]],
        state={"backend": "dynamodb", "table": "ddb-failover", "region": "us-east-1"},
    )
    beside_sqlite, default = registry.build(sqlite)[0], registry.build(dynamo)[0]
    assert isinstance(beside_sqlite, Command) and isinstance(default, Command)
    assert beside_sqlite.state_path == Path("/srv/ddb/command-notify.json")
    assert default.state_path == registry.DEFAULT_STATE_DIR / "command-notify.json"


def test_do_actions_without_a_token_stop_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DDB_TEST_DO_TOKEN", raising=False)
    with pytest.raises(cfg.ConfigError, match="DDB_TEST_DO_TOKEN is unset"):
        registry.build(config([ALL_ACTIONS[0]]))
