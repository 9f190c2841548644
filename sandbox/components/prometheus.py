"""Component "prometheus": the real Prometheus with a shipped config and rules, on loopback.

The stack option profile picks the files: prometheus/prometheus.yml (shipped,
the default) or prometheus/fast/prometheus.yml (sandbox/profiles.py).
render_config() changes only scrape targets (and the job `wordpress`'s
blackbox_exporter address), Alertmanager targets and the rule files' paths.
The rules themselves are used as shipped, with one opt-in exception for demos:
the failback window (the `for:` of DynamoDBFailbackReady) from the stack option
failback_window. The option extra_rules adds rule files
(benchmarks run a baseline rule beside the shipped ones).
"""

from __future__ import annotations

import copy
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sandbox import profiles
from sandbox.components.alertmanager import service_url
from sandbox.components.sites import health_urls
from sandbox.net import free_port
from sandbox.stack import Stack, component

FAILBACK_ALERT = "DynamoDBFailbackReady"
SHIPPED_FAILBACK_WINDOW = "5m"
# Prometheus waits this long before re-sending a firing alert, including to an
# Alertmanager it has just discovered (default 1m): too slow for tests.
RESEND_DELAY = "2s"
PROBE_JOB = "wordpress"


def render_probe_job(job: dict[str, Any], probes: Mapping[str, str], prober: str | None) -> None:
    """The job `wordpress` probing each region's URL through the prober (none: no targets)."""
    if prober is None:
        job["static_configs"] = []
        return
    job["static_configs"] = [
        {"targets": [url], "labels": {"region": region}} for region, url in probes.items()
    ]
    for relabel in job.get("relabel_configs", []):
        if relabel.get("target_label") == "__address__":
            relabel["replacement"] = prober


def render_config(
    shipped: Mapping[str, Any],
    *,
    rule_files: Sequence[Path],
    targets: Mapping[str, Sequence[str]],
    alertmanagers: Sequence[str],
    probes: Mapping[str, str] | None = None,
    prober: str | None = None,
) -> dict[str, Any]:
    """The shipped config with only targets and the rule files' paths replaced.

    probes (region -> site health URL) and prober (blackbox_exporter's host:port) are the
    job `wordpress`'s targets; without a prober it probes nothing.
    """
    config = copy.deepcopy(dict(shipped))
    config["rule_files"] = [str(path) for path in rule_files]
    for manager in config.get("alerting", {}).get("alertmanagers", []):
        for static in manager.get("static_configs", []):
            static["targets"] = list(alertmanagers)
    jobs = {job["job_name"]: job for job in config.get("scrape_configs", [])}
    unknown = sorted(set(targets) - set(jobs))
    if unknown:
        raise ValueError(f"no scrape job {', '.join(unknown)} in the shipped prometheus.yml")
    for name, addresses in targets.items():
        for static in jobs[name].get("static_configs", []):
            static["targets"] = list(addresses)
    if PROBE_JOB in jobs:
        render_probe_job(jobs[PROBE_JOB], probes or {}, prober)
    return config


def render_rules(rule_files: Sequence[Path], out_dir: Path, failback_window: str) -> list[Path]:
    """Copy the rule files to out_dir with only DynamoDBFailbackReady's window changed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    found = False
    written: list[Path] = []
    for source in rule_files:
        data = yaml.safe_load(source.read_text())
        for group in data.get("groups", []):
            for rule in group.get("rules", []):
                if rule.get("alert") == FAILBACK_ALERT:
                    found = True
                    rule["for"] = failback_window
                    text = rule["annotations"]["description"]
                    rule["annotations"]["description"] = text.replace(
                        f"({SHIPPED_FAILBACK_WINDOW})", f"({failback_window})"
                    )
        written.append(out_dir / source.name)
        written[-1].write_text(yaml.safe_dump(data, sort_keys=False))
    if not found:
        raise ValueError(f"no {FAILBACK_ALERT} rule in {', '.join(map(str, rule_files))}")
    return written


def _address(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def _ready(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
        return bool(response.status == 200)


@component("prometheus", needs=("config", "alertmanager"))
def start_prometheus(stack: Stack) -> None:
    """Run Prometheus scraping the sandbox's exporter and responder, alerting its Alertmanager.

    When the stack runs blackbox_exporter, the job `wordpress` probes each running site.
    """
    home = stack.dir / "prometheus"
    (home / "data").mkdir(parents=True, exist_ok=True)
    profile = profiles.load(stack.options.get("profile") or "shipped")
    rule_files = list(profile.rule_files)
    extra = [Path(p).resolve() for p in stack.options.get("extra_rules") or []]
    window = stack.options.get("failback_window")
    if window and window != SHIPPED_FAILBACK_WINDOW:
        rule_files = render_rules(rule_files, home / "rules", str(window))
    port = stack.extras.get("prometheus_port") or free_port()  # the responder's page reads it
    url = f"http://127.0.0.1:{port}"
    alertmanagers = [_address(u) for u in stack.extras["alertmanager_urls"]]
    config = render_config(
        yaml.safe_load(profile.prometheus_config.read_text()),
        rule_files=[*rule_files, *extra],
        targets={
            "prometheus": [f"127.0.0.1:{port}"],
            "ddb_exporter": [_address(service_url(stack, "exporter"))],
            "ddb_failover_responder": [_address(service_url(stack, "responder"))],
            "alertmanager": alertmanagers,
        },
        alertmanagers=alertmanagers,
        probes=health_urls(stack),
        prober=_address(stack.components["blackbox"].url)
        if "blackbox" in stack.components
        else None,
    )
    config_file = home / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    stack.spawn(
        "prometheus",
        [
            "prometheus",
            f"--config.file={config_file}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--rules.alert.resend-delay={RESEND_DELAY}",
            "--storage.tsdb.retention.time=1d",
        ],
        url,
        ready=lambda: _ready(url),
    )
