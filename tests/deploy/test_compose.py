"""docker-compose.yml: valid, every mounted file present, every host, port and secret agreeing
with the shipped Prometheus, Alertmanager and Grafana configs and the demo config."""

from __future__ import annotations

import importlib.util
import urllib.parse
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from ddb_failover.config import Config, DNSRecordAction, GlobalLoadBalancerAction, load
from sandbox.components.regions import CANARY
from sandbox.do_api.seed import default_seed
from tests.deploy.conftest import COMPOSE_FILE, REPO, compose

DEMO = REPO / "docker" / "demo"
SECRETS_DIR = "/run/secrets/"
CONFIG_IN_CONTAINER = "/etc/ddb-failover/ddb-failover.yml"
SERVICES = {
    *("exporter", "responder", "prometheus", "alertmanager", "grafana", "sandbox"),
    "blackbox-exporter",
}
PROMETHEUS = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
ALERTMANAGER = yaml.safe_load((REPO / "alertmanager" / "alertmanager.yml").read_text())


def load_sandbox_service() -> ModuleType:
    path = REPO / "docker" / "sandbox_service.py"
    spec = importlib.util.spec_from_file_location("sandbox_service", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def demo_config() -> Config:
    return load(DEMO / "ddb-failover.yml")


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (named volumes left out)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("/"):
            mounts[target] = Path(source)
    return mounts


def named_volumes(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> volume name."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if not source.startswith("/"):
            found[target] = source
    return found


def secret_paths(model: dict[str, Any], name: str) -> set[str]:
    service = model["services"][name]
    return {secret_target(s) for s in service.get("secrets", [])}


def secret_target(secret: str | dict[str, str]) -> str:
    """Where a service's secret appears: /run/secrets/NAME, or its target there or elsewhere."""
    if isinstance(secret, str):
        return SECRETS_DIR + secret
    target = secret.get("target") or secret["source"]
    return target if target.startswith("/") else SECRETS_DIR + target


def host_port(url_or_address: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(
        url_or_address if "//" in url_or_address else f"//{url_or_address}"
    )
    assert parsed.hostname and parsed.port, url_or_address
    return parsed.hostname, parsed.port


def listen_port(listen: str) -> int:
    return int(listen.rpartition(":")[2])


def published(service: dict[str, Any]) -> set[int]:
    """Container ports a service publishes."""
    return {int(str(p).split(":")[-1].split("/")[0]) for p in service.get("ports", [])}


def test_compose_file_validates_with_and_without_the_demo_profile() -> None:
    for args in (("config", "-q"), ("--profile", "demo", "config", "-q")):
        result = compose(*args)
        assert result.returncode == 0, f"docker-compose {' '.join(args)}: {result.stderr}"


def test_validation_rejects_a_broken_compose_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text().replace("    restart: unless-stopped", "    restrt: no", 1)
    broken.write_text(text)
    result = compose("config", "-q", file=broken)
    assert result.returncode != 0
    assert "restrt" in result.stderr


def test_services_and_the_demo_profile(compose_model: dict[str, Any]) -> None:
    # Only the sandbox has a profile: every other service starts with a plain `up`.
    assert set(compose_model["services"]) == SERVICES
    for name, service in compose_model["services"].items():
        assert service.get("profiles") == (["demo"] if name == "sandbox" else None), name
    assert compose_model["services"]["sandbox"]["build"]["target"] == "sandbox"
    for name in ("exporter", "responder"):
        assert compose_model["services"][name]["build"]["target"] == "runtime"


def test_every_mounted_file_and_secret_exists_in_the_repository(
    compose_model: dict[str, Any],
) -> None:
    for name, service in compose_model["services"].items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"
            assert REPO in source.parents, f"{name}: {source} is outside the repository"
    for name, secret in compose_model["secrets"].items():
        path = Path(secret["file"])
        assert path.is_file() and path.read_text().strip(), f"secret {name}: {path}"
        assert path.parent == DEMO / "secrets"


def test_no_secret_is_inline(compose_model: dict[str, Any]) -> None:
    for name, service in compose_model["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("TOKEN", "PASSWORD", "SECRET", "KEY")):
                assert key.endswith("_FILE") or str(value).startswith(SECRETS_DIR), (
                    f"{name}: {key} holds a secret inline"
                )
    text = COMPOSE_FILE.read_text()
    for secret in DEMO.glob("secrets/*"):
        for line in secret.read_text().splitlines():
            value = line.split("=")[-1].strip()
            if len(value) > 8 and not line.startswith(("#", "[")):
                assert value not in text, f"{secret.name}'s value is inline"


def test_prometheus_scrapes_and_alerts_the_compose_services(compose_model: dict[str, Any]) -> None:
    services = compose_model["services"]
    config = demo_config()
    expected = {
        "ddb_exporter": ("exporter", listen_port(config.exporter.listen)),
        "ddb_failover_responder": ("responder", listen_port(config.responder.listen)),
        "alertmanager": ("alertmanager", 9093),
        "prometheus": ("localhost", 9090),
    }
    for job in PROMETHEUS["scrape_configs"]:
        if job["job_name"] == "wordpress":  # the sites are probed through blackbox-exporter
            (prober,) = [r["replacement"] for r in job["relabel_configs"] if "replacement" in r]
            assert host_port(prober) == ("blackbox-exporter", 9115)
            assert "--web.listen-address=0.0.0.0:9115" in services["blackbox-exporter"]["command"]
            continue
        (static,) = job["static_configs"]
        assert [host_port(t) for t in static["targets"]] == [expected[job["job_name"]]]
    (manager,) = PROMETHEUS["alerting"]["alertmanagers"]
    assert [host_port(t) for t in manager["static_configs"][0]["targets"]] == [
        ("alertmanager", 9093)
    ]
    assert "--web.listen-address=0.0.0.0:9090" in services["prometheus"]["command"]
    assert "--web.listen-address=0.0.0.0:9093" in services["alertmanager"]["command"]
    for name, (_, port) in expected.items():
        service = services.get(expected[name][0])
        if service is not None:
            assert port in published(service), f"{name}: port {port} not published"


def test_prometheus_config_and_rules_are_mounted_where_it_reads_them(
    compose_model: dict[str, Any],
) -> None:
    service = compose_model["services"]["prometheus"]
    mounts = bind_mounts(service)
    config_flag = next(c for c in service["command"] if c.startswith("--config.file="))
    config_path = config_flag.split("=", 1)[1]
    assert mounts[config_path] == REPO / "prometheus" / "prometheus.yml"
    for pattern in PROMETHEUS["rule_files"]:
        directory = str(Path(config_path).parent / Path(pattern).parent)
        assert mounts[directory] == REPO / "prometheus" / "rules"
        assert list(mounts[directory].glob(Path(pattern).name)), f"no file matches {pattern}"
    data = next(c for c in service["command"] if c.startswith("--storage.tsdb.path="))
    assert data.split("=", 1)[1] in named_volumes(service), "Prometheus data needs a volume"


def test_alertmanager_reaches_the_responder_with_the_mounted_secrets(
    compose_model: dict[str, Any],
) -> None:
    service = compose_model["services"]["alertmanager"]
    mounts = bind_mounts(service)
    config_flag = next(c for c in service["command"] if c.startswith("--config.file="))
    config_path = config_flag.split("=", 1)[1]
    assert mounts[config_path] == REPO / "alertmanager" / "alertmanager.yml"
    for pattern in ALERTMANAGER["templates"]:
        directory = str(Path(config_path).parent / Path(pattern).parent)
        assert mounts[directory] == REPO / "alertmanager" / "templates"
        assert list(mounts[directory].glob(Path(pattern).name)), f"no file matches {pattern}"
    storage = next(c for c in service["command"] if c.startswith("--storage.path="))
    assert storage.split("=", 1)[1] in named_volumes(service)

    config = demo_config()
    secrets = secret_paths(compose_model, "alertmanager")
    hooks = [h for r in ALERTMANAGER["receivers"] for h in r.get("webhook_configs", [])]
    assert hooks, "no webhook receiver for the responder"
    for hook in hooks:
        assert hook["url"] == f"http://responder:{listen_port(config.responder.listen)}/webhook"
        assert hook["http_config"]["authorization"]["credentials_file"] in secrets
    pages = [p for r in ALERTMANAGER["receivers"] for p in r.get("pagerduty_configs", [])]
    assert pages and all(page["routing_key_file"] in secrets for page in pages)
    # Both ends of the webhook read the same token, each from a file its own user owns.
    assert config.responder.webhook_token.file is not None
    token_path = str(config.responder.webhook_token.file)
    assert token_path in secret_paths(compose_model, "responder")
    sources = {
        secret_target(s): s if isinstance(s, str) else s["source"] for s in service["secrets"]
    }
    webhook_source = sources[hooks[0]["http_config"]["authorization"]["credentials_file"]]
    assert webhook_source != "webhook-token", "Alertmanager and the responder run as two users"
    declared = compose_model["secrets"]
    assert (
        Path(declared[webhook_source]["file"]).read_text()
        == Path(declared["webhook-token"]["file"]).read_text()
    )


def test_exporter_and_responder_read_the_config_and_secrets_compose_provides(
    compose_model: dict[str, Any],
) -> None:
    config = demo_config()
    for name in ("exporter", "responder"):
        service = compose_model["services"][name]
        assert bind_mounts(service)[CONFIG_IN_CONTAINER] == DEMO / "ddb-failover.yml"
        environment = service["environment"]
        assert environment["DDB_FAILOVER_CONFIG"] == CONFIG_IN_CONTAINER
        assert environment["AWS_SHARED_CREDENTIALS_FILE"] in secret_paths(compose_model, name)
    credentials = {
        compose_model["services"][name]["environment"]["AWS_SHARED_CREDENTIALS_FILE"]
        for name in ("exporter", "responder")
    }
    assert len(credentials) == 2, "exporter and responder need separate IAM identities"
    health = {
        name: host_port(compose_model["services"][name]["environment"]["DDB_HEALTHCHECK_URL"])
        for name in ("exporter", "responder")
    }
    assert health["exporter"] == ("127.0.0.1", listen_port(config.exporter.listen))
    assert health["responder"] == ("127.0.0.1", listen_port(config.responder.listen))
    assert config.responder.digitalocean.token.file is not None
    assert str(config.responder.digitalocean.token.file) in secret_paths(compose_model, "responder")


def test_responder_state_lives_on_a_volume(compose_model: dict[str, Any]) -> None:
    state = demo_config().responder.state
    assert state.backend == "sqlite"
    volumes = named_volumes(compose_model["services"]["responder"])
    assert any(Path(target) in state.path.parents for target in volumes), volumes
    assert set(volumes.values()) <= set(compose_model["volumes"])


def test_demo_config_matches_the_sandbox(compose_model: dict[str, Any]) -> None:
    config = demo_config()
    assert config.canary.key == CANARY["key"] and config.canary.value == CANARY["value"]
    forwards = load_sandbox_service().forwards(config)
    assert set(forwards) == {f"region:{n}" for n in config.region_names} | {"do_api"}
    for region in config.regions:
        assert region.endpoint_url is not None
        assert host_port(region.endpoint_url) == ("sandbox", forwards[f"region:{region.name}"])
    api = config.responder.digitalocean.api_url
    assert host_port(api) == ("sandbox", forwards["do_api"])
    sandbox = compose_model["services"]["sandbox"]
    assert bind_mounts(sandbox)[sandbox["environment"]["DDB_FAILOVER_CONFIG"]] == (
        DEMO / "ddb-failover.yml"
    )
    assert str(config.responder.digitalocean.token.file) in secret_paths(compose_model, "sandbox")

    _, objects = default_seed(config.region_names)
    (dns,) = [a for a in config.responder.actions if isinstance(a, DNSRecordAction)]
    assert (dns.domain, dns.record_name) == (objects["domain"], objects["record_name"])
    assert dns.values == objects["record_values"]
    (glb,) = [a for a in config.responder.actions if isinstance(a, GlobalLoadBalancerAction)]
    assert glb.load_balancer_id == objects["global_load_balancer_id"]
    assert glb.values == objects["droplet_regions"]


def test_grafana_reads_its_admin_password_from_a_secret(compose_model: dict[str, Any]) -> None:
    environment = compose_model["services"]["grafana"]["environment"]
    assert environment["GF_SECURITY_ADMIN_PASSWORD__FILE"] in secret_paths(compose_model, "grafana")
    assert "GF_SECURITY_ADMIN_PASSWORD" not in environment
    assert "/var/lib/grafana" in named_volumes(compose_model["services"]["grafana"])


def test_published_ports_bind_loopback_by_default(compose_model: dict[str, Any]) -> None:
    for name, service in compose_model["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} publicly"


@pytest.mark.parametrize("image_service", ["prometheus", "alertmanager", "grafana"])
def test_third_party_images_are_pinned(compose_model: dict[str, Any], image_service: str) -> None:
    image = compose_model["services"][image_service]["image"]
    name, _, tag = image.rpartition(":")
    assert name and tag and tag != "latest" and any(c.isdigit() for c in tag), image
