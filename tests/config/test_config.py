"""Table tests over good and bad configuration files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddb_failover import config

TESTDATA = Path(__file__).parent / "testdata"
REGIONAL_ONLY = (
    "a regional load balancer only balances droplets of its own region "
    "(use do_dns_record between per-region load balancers, or do_global_load_balancer)"
)

BAD = {
    "bad-unknown-top-key.yml": ["exporters: unknown key"],
    "bad-one-region.yml": ["regions: needs at least 2 item(s)"],
    "bad-region-name.yml": ["regions.1.name: 'Europe' is not an AWS region name like us-east-1"],
    "bad-duplicate-region.yml": ["regions: us-east-1 listed more than once"],
    "bad-missing-canary.yml": ["canary: required key is missing"],
    "bad-endpoint-url.yml": ["regions.0.endpoint_url: must start with http:// or https://"],
    "bad-site.yml": [
        "regions.0.site.health_url: 'lb-us-east-1/healthz' is not an http:// or https:// URL",
        "regions.0.site.host: 'www example.com' is not a host name",
        "regions.0.site.expect_status: Input should be less than or equal to 599",
        "regions.1.site.health_url: required key is missing",
        "regions.1.site.timeout_seconds: Input should be greater than 0",
        "regions.2.site.expect: unknown key",
    ],
    "bad-timeout-over-interval.yml": [
        "exporter: timeout_seconds (3) must not exceed interval_seconds (1)"
    ],
    "bad-unknown-probe.yml": [
        "exporter.probes.1: Input should be 'read', 'write' or 'replication'"
    ],
    "bad-listen.yml": ["exporter.listen: must be HOST:PORT with a port from 0 to 65535"],
    "bad-describe-interval.yml": [
        "exporter.describe_interval_seconds: Input should be greater than 0"
    ],
    "bad-witness-eventual.yml": [
        "responder.witness: only a strong table has a witness (set responder.consistency: strong)"
    ],
    "bad-witness-is-region.yml": [
        "responder.witness: us-east-2 is a configured region; a witness holds no replica, "
        "so it must be a region outside regions"
    ],
    "bad-strong-members.yml": [
        "responder.consistency: strong needs exactly three members, two regions and a witness "
        "or three regions; got 3 regions and the witness us-west-2"
    ],
    "bad-strong-two-regions.yml": [
        "responder.tables.wordpress_users.consistency: strong needs exactly three members, two "
        "regions and a witness or three regions; got 2 regions and no witness"
    ],
    "bad-consistency-table.yml": [
        "responder.tables.wordpress_post: not a table of tables (wordpress_posts)"
    ],
    "bad-consistency-value.yml": [
        "responder.consistency: Input should be 'eventual' or 'strong'",
        "responder.tables.wordpress_posts.witnes: unknown key",
    ],
    "bad-report-url.yml": [
        "responder.report.grafana_url: 'grafana:3000' is not an http:// or https:// URL"
    ],
    "bad-action-missing-region.yml": ["responder.actions.0.values: no value for region eu-west-1"],
    "bad-action-unknown-type.yml": [
        "responder.actions.0.type: 'ftp_upload' is unknown; expected one of 'do_dns_record', "
        "'do_load_balancer', 'do_global_load_balancer', 'do_app_env', 'route53_record', "
        "'env_file', 'ssm_parameter', 'command'"
    ],
    "bad-action-unknown-key.yml": ["responder.actions.0.variabel: unknown key"],
    "bad-secret-inline.yml": ["responder.webhook_token: set exactly one of env or file"],
    "bad-lb-target.yml": [
        "responder.actions.0.values.us-east-1: set exactly one of droplet_ids or tag"
    ],
    "bad-lb-other-region.yml": [
        "responder.actions.0: values.eu-west-1.region: ams3 is not the load balancer's region "
        f"nyc3; {REGIONAL_ONLY}"
    ],
    "bad-lb-targets-in-two-regions.yml": [
        "responder.actions.0: values: targets in different regions "
        f"(us-east-1: nyc3, eu-west-1: ams3); {REGIONAL_ONLY}"
    ],
    "bad-glb-region-slug.yml": [
        "responder.actions.0.values.us-east-1: 'NYC3' is not a DigitalOcean region slug like nyc3"
    ],
    "bad-glb-same-region.yml": [
        "responder.actions.0.values: us-east-1 and eu-west-1 both prefer nyc3; "
        "each region needs a DigitalOcean region of its own"
    ],
    "bad-glb-missing-region.yml": ["responder.actions.0.values: no value for region eu-west-1"],
    "bad-app-env-component.yml": [
        "responder.actions.0.component: 'Web_1' is not an App Platform component name like web",
        "responder.actions.0.variable: '1BAD' is not an environment variable name "
        "like DYNAMODB_REGION",
    ],
    "bad-app-env-poll.yml": [
        "responder.actions.0: poll_interval_seconds (120) must not exceed timeout_seconds (60)"
    ],
    "bad-app-env-values.yml": ["responder.actions.0.values: unknown region ap-south-1"],
    "bad-switchover-fence.yml": [
        "responder.switchover.drain_timeout_seconds: Input should be greater than 0",
        "responder.switchover.fence.0: fenced and open are both '1'; a fence needs two values",
        "responder.switchover.fence.1: values: a fence sets fenced and open, not a value per "
        "region",
        "responder.switchover.fence.2.type: 'do_dns_record' is unknown; expected one of "
        "'env_file', 'do_app_env', 'ssm_parameter', 'command'",
        "responder.switchover.fence.3.open: required key is missing",
    ],
    # A command action has a key called as its tag: the path names the key once.
    "bad-command-empty.yml": ["responder.actions.0.command: needs at least 1 item(s)"],
    "bad-switchover-fence-name.yml": [
        "responder: switchover.fence.0.name: 'wp-env' is also an action's name"
    ],
    "bad-app-env-missing-app.yml": ["responder.actions.0.app_id: required key is missing"],
    "bad-state-backend.yml": [
        "responder.state.backend: 'redis' is unknown; expected one of 'sqlite', 'dynamodb'"
    ],
    "bad-lease.yml": ["responder.state: renew_seconds must be at most half of lease_seconds"],
    "bad-policy-type.yml": [
        "responder.policy.failback: Input should be 'auto' or 'manual'",
        "responder.policy.max_transitions_per_hour: Input should be greater than or equal to 1",
    ],
    "bad-plan-interval.yml": [
        "responder.plan.interval_seconds: Input should be greater than or equal to 1"
    ],
    "bad-plan-interval-long.yml": [
        "responder.plan.interval_seconds: Input should be less than or equal to 300"
    ],
    "bad-plan-max-ttl.yml": [
        "responder.plan.max_ttl_seconds: Input should be greater than or equal to 30"
    ],
    "bad-plan-unknown-key.yml": ["responder.plan.max_ttl: unknown key"],
    "bad-token-name-reserved.yml": [
        "responder.auth.tokens.1.name: 'responder' is reserved: the history records the "
        "responder's own acts by it (an automatic freeze, an approval's timeout)",
        "responder.auth.tokens.2.name: 'alertmanager' is reserved: webhook_token's holder "
        "is known by it",
    ],
    "bad-token-same-secret.yml": [
        "responder.auth.tokens.1.secret: the same secret as responder.auth.tokens.0.secret; "
        "each token needs its own"
    ],
    "bad-token-webhook-secret.yml": [
        "responder.auth.tokens.0.secret: the same secret as responder.webhook_token; "
        "each token needs its own"
    ],
    "bad-plan-type.yml": [
        "responder.plan.interval_seconds: Input should be a valid number, unable to parse string "
        "as a number",
        "responder.plan.max_ttl_seconds: Input should be a valid integer, got a number with a "
        "fractional part",
    ],
}


@pytest.mark.parametrize("name", sorted(p.name for p in TESTDATA.glob("good-*.yml")))
def test_good_files_load(name: str) -> None:
    loaded = config.load(TESTDATA / name)
    assert loaded.primary == loaded.regions[0].name
    assert len(loaded.region_names) >= 2


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_name_key_and_problem(name: str) -> None:
    path = TESTDATA / name
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"{path}: invalid configuration:"
    assert [line.strip() for line in lines[1:]] == BAD[name]


def test_every_bad_file_has_an_expectation() -> None:
    on_disk = {p.name for p in TESTDATA.glob("bad-*.yml")}
    assert on_disk - {"bad-yaml-syntax.yml", "bad-not-mapping.yml"} == set(BAD)


def test_yaml_syntax_error_names_line_and_column() -> None:
    path = TESTDATA / "bad-yaml-syntax.yml"
    with pytest.raises(config.ConfigError, match=r"not valid YAML at line 2, column 7"):
        config.load(path)


def test_top_level_must_be_mapping() -> None:
    with pytest.raises(config.ConfigError, match="top level must be a mapping"):
        config.load(TESTDATA / "bad-not-mapping.yml")


def test_missing_file_and_no_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="cannot read: No such file"):
        config.load(tmp_path / "absent.yml")
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    with pytest.raises(config.ConfigError, match="pass --config or set DDB_FAILOVER_CONFIG"):
        config.load()


def test_env_variable_names_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.CONFIG_ENV, str(TESTDATA / "good-minimal.yml"))
    assert config.load().tables == ("wordpress_posts",)


def test_defaults_applied() -> None:
    loaded = config.load(TESTDATA / "good-minimal.yml")
    assert loaded.exporter.listen == "0.0.0.0:9745"
    assert loaded.responder.listen == "0.0.0.0:9746"
    assert loaded.exporter.probes == ("read", "write", "replication")
    assert loaded.exporter.describe_interval_seconds == 300
    assert loaded.responder.state.backend == "sqlite"
    assert loaded.responder.policy.failback == "auto"
    assert loaded.responder.plan.interval_seconds == 60
    assert loaded.responder.plan.max_ttl_seconds == 300
    assert loaded.exporter.vantage  # the host name


def test_consistency_per_table_replaces_the_responder_level_one() -> None:
    loaded = config.load(TESTDATA / "good-strong.yml")
    posts, sessions = (loaded.consistency_of(t) for t in loaded.tables)
    assert (posts.consistency, posts.witness) == ("strong", "us-west-2")
    assert (sessions.consistency, sessions.witness) == ("eventual", None)
    minimal = config.load(TESTDATA / "good-minimal.yml")
    assert minimal.consistency_of("wordpress_posts") == config.TableConsistency()


def test_site_defaults_and_regions_without_one() -> None:
    loaded = config.load(TESTDATA / "good-site.yml")
    first, second, third = (region.site for region in loaded.regions)
    assert first == config.Site(
        health_url="http://203.0.113.10/healthz",
        host="www.example.com",
        expect_status=204,
        timeout_seconds=1.5,
    )
    assert second is not None
    assert (second.host, second.expect_status, second.timeout_seconds) == (None, 200, 2.0)
    assert third is None
    assert config.load(TESTDATA / "good-minimal.yml").regions[0].site is None


def test_action_names_default_to_type_and_stay_unique() -> None:
    data = config.load(TESTDATA / "good-minimal.yml").model_dump(mode="json")
    data["responder"] = {
        "actions": [
            {"type": "command", "command": ["true"]},
            {"type": "command", "command": ["false"]},
        ]
    }
    names = [a.name for a in config.parse(data).responder.actions]
    assert names == ["command", "command.1"]


def test_secret_from_env_and_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOME_TOKEN", " abc \n")
    assert config.Secret(env="SOME_TOKEN").read() == "abc"
    token = tmp_path / "token"
    token.write_text("xyz\n")
    assert config.Secret(file=token).read() == "xyz"
    token.write_text("")
    with pytest.raises(config.ConfigError, match=f"secret file {token} is unset, empty"):
        config.Secret(file=token).read()
    monkeypatch.delenv("SOME_TOKEN")
    with pytest.raises(config.ConfigError, match="SOME_TOKEN is unset"):
        config.Secret(env="SOME_TOKEN").read()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("  \t\n", "is unset, empty or only whitespace"),
        ("short-token", "holds a token of 11 characters; tokens need at least 16"),
    ],
)
def test_blank_and_short_tokens_are_config_errors(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("SOME_TOKEN", value)
    with pytest.raises(config.ConfigError, match=problem):
        config.Secret(env="SOME_TOKEN").read_token()
    monkeypatch.setenv("SOME_TOKEN", "a-token-of-enough-length")
    assert config.Secret(env="SOME_TOKEN").read_token() == "a-token-of-enough-length"
