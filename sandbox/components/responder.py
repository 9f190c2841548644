"""Component "responder": ddb-responder under gunicorn, acting on the sandbox's objects.

Besides the DigitalOcean objects, it drives a Route 53 record set and an SSM parameter
served by one more moto server (AWS's global and control-plane services, apart from the
DynamoDB regions, so a region's outage does not take them down), and the WordPress env
file. Each starts on the primary region, as a deployed site would. stack.json names the
moto server under "aws_services" ({"pid", "url"}), with the hosted zone and parameter.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.config import Config as BotoConfig

from sandbox.components.chat import URL_SECRET
from sandbox.components.pagerduty import ROUTING_KEY_SECRET
from sandbox.components.regions import region_names
from sandbox.components.sites import ensure_env_file, reload_command
from sandbox.net import free_port
from sandbox.regions import SANDBOX_CREDENTIALS, Region
from sandbox.stack import Stack, component

ZONE = "example.test."
ORIGIN_RECORD = f"origin.{ZONE}"
SSM_PARAMETER = "/wordpress/dynamodb-region"
DEFAULT_PLAN_INTERVAL_SECONDS = 5.0
# moto loads SSM's public parameters on first use, which outlasts the actions' timeouts.
_WARM_TIMEOUT_SECONDS = 60.0


def _origin_values(stack: Stack) -> dict[str, str]:
    """The address of each region's origin: the DigitalOcean record's, else a TEST-NET one."""
    do = stack.config_data.get("_sandbox", {}).get("do_api")
    if do is not None:
        return dict(do["record_values"])
    return {name: f"192.0.2.{10 + 10 * i}" for i, name in enumerate(region_names(stack))}


def _client(service: str, region: str, url: str) -> Any:
    config = BotoConfig(
        connect_timeout=5, read_timeout=_WARM_TIMEOUT_SECONDS, retries={"total_max_attempts": 1}
    )
    return boto3.client(
        service, region_name=region, endpoint_url=url, config=config, **SANDBOX_CREDENTIALS
    )


def _start_aws_services(stack: Stack) -> dict[str, Any]:
    """Start the moto server for Route 53 and SSM; create the zone, record and parameter."""
    server = Region("aws-services", (), "", "", stack.logs_dir, seed=False)
    stack.on_close(server.close)
    server.start()
    primary = region_names(stack)[0]
    value = _origin_values(stack)[primary]
    route53 = _client("route53", "us-east-1", server.url)
    zone = route53.create_hosted_zone(Name=ZONE, CallerReference="ddb-failover-sandbox")
    zone_id = zone["HostedZone"]["Id"].split("/")[-1]
    record = {"Name": ORIGIN_RECORD, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": value}]}
    route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]},
    )
    ssm = _client("ssm", primary, server.url)
    ssm.put_parameter(Name=SSM_PARAMETER, Value=primary, Type="String", Overwrite=True)
    about = {"pid": server.pid, "url": server.url, "hosted_zone_id": zone_id}
    stack.published["aws_services"] = {**about, "ssm_parameter": SSM_PARAMETER}
    return about


def _actions(stack: Stack, aws: dict[str, Any]) -> list[dict[str, Any]]:
    do = stack.config_data.get("_sandbox", {}).get("do_api")
    actions: list[dict[str, Any]] = list(do["actions"]) if do is not None else []
    primary = region_names(stack)[0]
    origin = {
        "name": "origin",
        "type": "route53_record",
        "hosted_zone_id": aws["hosted_zone_id"],
        "record_name": ORIGIN_RECORD,
        "ttl": 60,
        "endpoint_url": aws["url"],
        "values": _origin_values(stack),
    }
    parameter = {
        "name": "wp-region",
        "type": "ssm_parameter",
        "parameter": SSM_PARAMETER,
        "region": primary,
        "endpoint_url": aws["url"],
    }
    env = {
        "name": "wp-env",
        "type": "env_file",
        "path": str(ensure_env_file(stack)),
        "variable": "DYNAMODB_REGION",
        "reload_command": reload_command(stack),  # the sites re-read it (sandbox/site.py)
    }
    generated = [*actions, origin, parameter, env]
    timeout = stack.options.get("action_timeout_seconds")
    if timeout is not None:
        generated = [{**a, "timeout_seconds": float(timeout)} for a in generated]
    return [*generated, *_extra(stack)]


def _read_only(stack: Stack) -> dict[str, Any]:
    """The switchover's fence: WordPress read-only (WP_READ_ONLY in its env file)."""
    return {
        "name": "wp-read-only",
        "type": "env_file",
        "path": str(ensure_env_file(stack)),
        "variable": "WP_READ_ONLY",
        "reload_command": reload_command(stack),
        "fenced": "1",
        "open": "0",
    }


def _extra(stack: Stack) -> list[dict[str, Any]]:
    """The actions of --extra-actions FILE (a YAML list), to try more against the sandbox."""
    path = stack.options.get("extra_actions")
    if path is None:
        return []
    extra = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(extra, list) or not all(isinstance(a, dict) for a in extra):
        raise ValueError(f"--extra-actions {path}: must be a YAML list of actions")
    return extra


def _configure(stack: Stack) -> None:
    port = free_port()
    stack.extras["responder_port"] = port
    (stack.dir / "state").mkdir(exist_ok=True)
    aws = _start_aws_services(stack)
    section: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "webhook_token": {"file": str(stack.secret("webhook-token"))},
        "auth": {
            "tokens": [
                {
                    "name": "operator",
                    "role": "operator",
                    "secret": {"file": str(stack.secret("operator-token"))},
                },
                {
                    "name": "viewer",
                    "role": "viewer",
                    "secret": {"file": str(stack.secret("viewer-token"))},
                },
            ]
        },
        "state": {"backend": "sqlite", "path": str(stack.dir / "state" / "responder.db")},
        "audit": {"key_file": str(stack.secret("audit-key"))},  # 0600, outside the store
        "policy": {
            "failback": "auto",
            "min_dwell_seconds": float(stack.options.get("min_dwell_seconds", 20)),
            "max_transitions_per_hour": int(stack.options.get("max_transitions_per_hour", 10)),
            "rpo_seconds": 60,
            "readiness_timeout_seconds": 1.0,
            "transition_deadline_seconds": float(
                stack.options.get("transition_deadline_seconds", 900)
            ),
            "approval": stack.options.get("approval", "none"),
        },
        "retry": {"initial_backoff_seconds": 0.2, "max_backoff_seconds": 2},
        "plan": {
            "interval_seconds": float(
                stack.options.get("plan_interval_seconds", DEFAULT_PLAN_INTERVAL_SECONDS)
            )
        },
        "actions": _actions(stack, aws),
        "switchover": {
            "drain_timeout_seconds": float(stack.options.get("drain_timeout_seconds", 30)),
            "fence": [_read_only(stack)],
        },
    }
    do = stack.config_data.get("_sandbox", {}).get("do_api")
    if do is not None:
        timeout = float(stack.options.get("do_timeout_seconds", 5))
        section["digitalocean"] = {**do["digitalocean"], "timeout_seconds": timeout}
    section["notify"] = _notify(stack, f"http://127.0.0.1:{port}")
    only = stack.options.get("only")
    if only is None or "prometheus" in only:
        # The page's region cards read Prometheus, which starts after the config is written.
        stack.extras["prometheus_port"] = free_port()
        section["prometheus_url"] = f"http://127.0.0.1:{stack.extras['prometheus_port']}"
    stack.config_data.setdefault("responder", {}).update(section)  # beside the tables' consistency


def _notify(stack: Stack, responder_url: str) -> dict[str, Any]:
    """Both receivers, at the sandbox's PagerDuty and chat sinks, when they run."""
    receivers: list[dict[str, Any]] = []
    if "pagerduty" in stack.components:
        receivers.append(
            {
                "name": "pagerduty",
                "type": "pagerduty_change",
                "routing_key": {"file": str(stack.secret(ROUTING_KEY_SECRET))},
                "url": stack.components["pagerduty"].url,
            }
        )
    if "chat" in stack.components:
        receivers.append(
            {
                "name": "chat",
                "type": "slack",
                "webhook_url": {"file": str(stack.secret(URL_SECRET))},
            }
        )
    return {"receivers": receivers, "responder_url": responder_url, "timeout_seconds": 5}


def _ready(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:
        return bool(response.status == 200)


@component(
    "responder",
    needs=("regions", "do_api", "pagerduty", "chat", "config"),
    configure=_configure,
)
def start_responder(stack: Stack) -> None:
    """Serve the responder with gunicorn and the SQLite store."""
    url = f"http://127.0.0.1:{stack.extras['responder_port']}"
    metrics_dir = stack.dir / "state" / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    running = stack.spawn(
        "responder",
        [sys.executable, "-m", "responder", "serve", "--config", str(stack.config_path)],
        url,
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "RESPONDER_WORKERS": "2"},
        ready=lambda: _ready(url),
    )
    stack.extras["responder_process"] = running.process


def restart(stack: Stack, request: dict[str, Any]) -> dict[str, Any]:
    """Kill the responder outright (SIGKILL, as a crash would) and start it again."""
    if request.get("op") != "restart":
        raise ValueError(f"unknown operation {request.get('op')!r} for the responder; use restart")
    process = stack.extras.get("responder_process")
    if process is None:
        raise ValueError("no responder runs in this stack")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
    start_responder(stack)
    return {"region": "responder", "op": "restart", "pid": stack.components["responder"].pid}
