"""Build the configured actions: one entry per action type, clients injected."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddb_failover import config as cfg
from responder.actions import aws_client
from responder.actions.base import Action
from responder.actions.command import Command
from responder.actions.do_app_env import AppEnv
from responder.actions.do_client import DOClient
from responder.actions.do_dns_record import DNSRecord
from responder.actions.do_global_load_balancer import GlobalLoadBalancer
from responder.actions.do_load_balancer import LoadBalancer
from responder.actions.env_file import EnvFile
from responder.actions.fence import FenceValues
from responder.actions.route53_record import Route53Record
from responder.actions.ssm_parameter import SSMParameter

DOClientFactory = Callable[[cfg.DigitalOcean], DOClient]
# Route 53 is global; its API lives in us-east-1.
ROUTE53_REGION = "us-east-1"
# Where command records go when the state store is not a local file.
DEFAULT_STATE_DIR = Path("/var/lib/ddb-failover")
# Overrides DEFAULT_STATE_DIR (a shared control table has no local directory of its own).
STATE_DIR_ENV = "DDB_FAILOVER_STATE_DIR"


@dataclass
class _Clients:
    """Clients made when first needed: one DO client shared, none without DO actions."""

    settings: cfg.ResponderConfig
    do_factory: DOClientFactory
    aws_factory: aws_client.AWSClientFactory
    state_dir: Path
    _do: DOClient | None = None

    def do(self) -> DOClient:
        if self._do is None:
            self._do = self.do_factory(self.settings.digitalocean)
        return self._do

    def aws(self, service: str, region: str, endpoint_url: str | None) -> Any:
        return self.aws_factory(service, region, endpoint_url)


def _dns_record(action: cfg.DNSRecordAction, clients: _Clients) -> Action:
    return DNSRecord(action, clients.do())


def _load_balancer(action: cfg.LoadBalancerAction, clients: _Clients) -> Action:
    return LoadBalancer(action, clients.do())


def _global_load_balancer(action: cfg.GlobalLoadBalancerAction, clients: _Clients) -> Action:
    return GlobalLoadBalancer(action, clients.do())


def _app_env(action: cfg.AppEnvAction, clients: _Clients) -> Action:
    return AppEnv(action, clients.do())


def _route53(action: cfg.Route53Action, clients: _Clients) -> Action:
    return Route53Record(action, clients.aws("route53", ROUTE53_REGION, action.endpoint_url))


def _env_file(action: cfg.EnvFileAction, clients: _Clients) -> Action:
    return EnvFile(action, clients.state_dir / f"env_file-{action.name}.json")


def _ssm(action: cfg.SSMParameterAction, clients: _Clients) -> Action:
    return SSMParameter(action, clients.aws("ssm", action.region, action.endpoint_url))


def _command(action: cfg.CommandAction, clients: _Clients) -> Action:
    return Command(action, clients.state_dir / f"command-{action.name}.json")


BUILDERS: dict[str, Callable[[Any, _Clients], Action]] = {
    "do_dns_record": _dns_record,
    "do_load_balancer": _load_balancer,
    "do_global_load_balancer": _global_load_balancer,
    "do_app_env": _app_env,
    "route53_record": _route53,
    "env_file": _env_file,
    "ssm_parameter": _ssm,
    "command": _command,
}


def state_dir_for(settings: cfg.ResponderConfig) -> Path:
    """Where action records go: beside the SQLite file, else $DDB_FAILOVER_STATE_DIR or default."""
    if isinstance(settings.state, cfg.SqliteState):
        return settings.state.path.parent
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def build(
    config: cfg.Config,
    *,
    state_dir: Path | None = None,
    do_client_factory: DOClientFactory = DOClient.from_config,
    aws_client_factory: aws_client.AWSClientFactory | None = None,
) -> list[Action]:
    """The configured actions in order; makes no network calls."""
    clients = _clients(config, state_dir, do_client_factory, aws_client_factory)
    return [_made(action, clients) for action in config.responder.actions]


def build_fences(
    config: cfg.Config,
    *,
    state_dir: Path | None = None,
    do_client_factory: DOClientFactory = DOClient.from_config,
    aws_client_factory: aws_client.AWSClientFactory | None = None,
) -> list[tuple[Action, FenceValues]]:
    """The switchover's fence actions (responder.switchover.fence) with their two values."""
    clients = _clients(config, state_dir, do_client_factory, aws_client_factory)
    return [
        (_made(fence, clients), FenceValues(fence.fenced, fence.open))
        for fence in config.responder.switchover.fence
    ]


def _clients(
    config: cfg.Config,
    state_dir: Path | None,
    do_client_factory: DOClientFactory,
    aws_client_factory: aws_client.AWSClientFactory | None,
) -> _Clients:
    settings = config.responder
    return _Clients(
        settings=settings,
        do_factory=do_client_factory,
        aws_factory=aws_client_factory or aws_client.client_factory(),
        state_dir=state_dir if state_dir is not None else state_dir_for(settings),
    )


def _made(action: Any, clients: _Clients) -> Action:
    made = BUILDERS[action.type](action, clients)
    made.timeout_seconds = action.timeout_seconds
    return made
