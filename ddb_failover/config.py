"""The one YAML configuration both services read, validated strictly at start."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from ddb_failover import consistency
from ddb_failover.action_config import (
    Action,
    AppEnvAction,
    CommandAction,
    DNSRecordAction,
    EnvFileAction,
    GlobalLoadBalancerAction,
    LoadBalancerAction,
    LoadBalancerTarget,
    Route53Action,
    SSMParameterAction,
    Switchover,
)
from ddb_failover.auth_config import TLS, Auth
from ddb_failover.config_base import (
    RUNBOOK_URL,
    ConfigError,
    HttpUrl,
    Listen,
    RegionName,
    Seconds,
    Secret,
    Strict,
    matching,
    named,
)
from ddb_failover.notify_config import (
    NOTIFY_EVENTS,
    Notify,
    PagerDutyChangeReceiver,
    SlackReceiver,
)
from ddb_failover.practice_config import Practice

# The models people import from here, wherever they are defined.
__all__ = [
    "CONFIG_ENV",
    "NOTIFY_EVENTS",
    "TLS",
    "AppEnvAction",
    "AuditConfig",
    "Auth",
    "Canary",
    "CommandAction",
    "Config",
    "ConfigError",
    "DNSRecordAction",
    "DigitalOcean",
    "DynamoDBState",
    "EnvFileAction",
    "ExporterConfig",
    "GlobalLoadBalancerAction",
    "LoadBalancerAction",
    "LoadBalancerTarget",
    "Notify",
    "PagerDutyChangeReceiver",
    "Policy",
    "Region",
    "Report",
    "ResponderConfig",
    "Retry",
    "Route53Action",
    "SSMParameterAction",
    "Secret",
    "Site",
    "SlackReceiver",
    "SqliteState",
    "Switchover",
    "TableConsistency",
    "format_errors",
    "load",
    "parse",
]

CONFIG_ENV = "DDB_FAILOVER_CONFIG"


class Canary(Strict):
    key: str = Field(min_length=1)
    value: str = Field(min_length=1)


HostName = Annotated[
    str, matching(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$", "a host name")
]


class Site(Strict):
    """Where a region's WordPress answers its health check (readiness and plan check it)."""

    health_url: HttpUrl
    host: HostName | None = None  # the Host header, when health_url names an address
    expect_status: int = Field(default=200, ge=100, le=599)
    timeout_seconds: float = Field(default=2.0, gt=0, le=30)


class Region(Strict):
    name: RegionName
    endpoint_url: str | None = None
    site: Site | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


Probe = Literal["read", "write", "replication"]


class ExporterConfig(Strict):
    listen: Listen = "0.0.0.0:9745"
    vantage: str = Field(default_factory=socket.gethostname, min_length=1)
    interval_seconds: Seconds = 5.0
    timeout_seconds: Seconds = 2.0
    probes: tuple[Probe, ...] = ("read", "write", "replication")
    # How often each table's DescribeTable is read (consistency mode, replica statuses).
    describe_interval_seconds: Seconds = 300.0

    @model_validator(mode="after")
    def _timeout_fits_interval(self) -> ExporterConfig:
        if self.timeout_seconds > self.interval_seconds:
            raise ValueError(
                f"timeout_seconds ({self.timeout_seconds:g}) must not exceed "
                f"interval_seconds ({self.interval_seconds:g})"
            )
        if not self.probes:
            raise ValueError("probes must name at least one of read, write, replication")
        return self


class SqliteState(Strict):
    backend: Literal["sqlite"] = "sqlite"
    path: Path = Path("/var/lib/ddb-failover/state.db")


class DynamoDBState(Strict):
    backend: Literal["dynamodb"]
    table: str = Field(min_length=3)
    region: RegionName
    endpoint_url: str | None = None
    lease_seconds: Seconds = 15.0
    renew_seconds: Seconds = 5.0

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> DynamoDBState:
        if self.renew_seconds * 2 > self.lease_seconds:
            raise ValueError("renew_seconds must be at most half of lease_seconds")
        return self


class Policy(Strict):
    failback: Literal["auto", "manual"] = "auto"
    min_dwell_seconds: Annotated[float, Field(ge=0)] = 300.0
    max_transitions_per_hour: Annotated[int, Field(ge=1)] = 4
    rpo_seconds: Seconds = 60.0
    readiness_timeout_seconds: Seconds = 2.0
    dry_run: bool = False
    # Past it a transition still in progress is stalled: it pages, and keeps retrying.
    transition_deadline_seconds: Seconds = 900.0
    # none: act alone; failover: automatic failovers wait for a person (automatic failbacks,
    # under failback: auto, do not); all: every transition, an operator's included.
    approval: Literal["none", "failover", "all"] = "none"
    approval_timeout_seconds: Seconds = 600.0
    on_timeout: Literal["proceed", "abort"] = "abort"


class Retry(Strict):
    """Backoff between attempts of a step; temporary errors are retried until it converges."""

    initial_backoff_seconds: Seconds = 0.5
    max_backoff_seconds: Seconds = 30.0

    @model_validator(mode="before")
    @classmethod
    def _no_attempt_limit(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_attempts" in data:
            raise ValueError(
                "max_attempts is no longer supported: temporary errors are retried until the "
                "transition converges (see responder.policy.transition_deadline_seconds)"
            )
        return data

    @model_validator(mode="after")
    def _cap_above_start(self) -> Retry:
        if self.initial_backoff_seconds > self.max_backoff_seconds:
            raise ValueError(
                f"initial_backoff_seconds ({self.initial_backoff_seconds:g}) must not exceed "
                f"max_backoff_seconds ({self.max_backoff_seconds:g})"
            )
        return self


class Plan(Strict):
    """How often each replica evaluates the failover plan, and what it holds actions to."""

    # Jittered by up to 10% each way; below 1 s an evaluation could not even finish, and
    # past 5 minutes FailoverPlanNotReady would take a slow evaluator for a stuck one.
    interval_seconds: Annotated[float, Field(ge=1, le=300)] = 60.0
    # A DNS TTL above this is a warning: cached answers outlive the failover that long.
    max_ttl_seconds: Annotated[int, Field(ge=30)] = 300


class DigitalOcean(Strict):
    api_url: str = "https://api.digitalocean.com"
    token: Secret = Secret(env="DIGITALOCEAN_TOKEN")
    timeout_seconds: Seconds = 10.0
    # How long after it was sent a change may still land when DigitalOcean did not say
    # (the client's timeout, a 504): the call holds its attempt, and so the lease, till then.
    late_write_seconds: Seconds = 60.0


class History(Strict):
    retain_days: Annotated[float, Field(gt=0)] = 90.0


class AuditConfig(Strict):
    """The audit chain's HMAC key, kept outside the state store (responder.state.keys)."""

    key_file: Path | None = None  # required to open the store; unset is an error there
    previous_key_files: tuple[Path, ...] = ()  # keys rotated out: they verify older events


class Report(Strict):
    """Links in transition reports (`ddb-responder report`, /transitions/<id>)."""

    grafana_url: HttpUrl | None = None  # Grafana's base URL; no dashboard link without it
    dashboard_uid: str = Field(default="ddb-failover-overview", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    runbook_url: HttpUrl = RUNBOOK_URL  # for transitions no alert links a runbook to
    alertmanager_url: HttpUrl | None = None  # the status page links to its silences


class Limits(Strict):
    """Bounds on one webhook notification, beyond max_body_bytes."""

    max_alerts: Annotated[int, Field(ge=1)] = 500
    max_labels: Annotated[int, Field(ge=1)] = 64
    max_label_chars: Annotated[int, Field(ge=16)] = 1024
    max_annotation_chars: Annotated[int, Field(ge=16)] = 16384


Consistency = Literal["eventual", "strong"]


class TableConsistency(Strict):
    """A table's MultiRegionConsistency, and its witness (a strong table's third member)."""

    consistency: Consistency = "eventual"
    witness: RegionName | None = None


class ResponderConfig(Strict):
    listen: Listen = "0.0.0.0:9746"
    # Every table's multi-Region consistency, unless tables.NAME says otherwise; strong
    # tables have RPO 0 and exactly three members (ddb_failover.consistency).
    consistency: Consistency = "eventual"
    witness: RegionName | None = None
    tables: dict[str, TableConsistency] = {}
    # Where the status page reads the exporter's series and the firing alerts (region cards).
    prometheus_url: HttpUrl | None = None
    # The alertmanager role's token (POST /webhook only).
    webhook_token: Secret = Secret(env="DDB_FAILOVER_WEBHOOK_TOKEN")
    auth: Auth = Auth()
    tls: TLS | None = None
    history: History = History()
    audit: AuditConfig = AuditConfig()
    report: Report = Report()
    limits: Limits = Limits()
    notify: Notify = Notify()
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    state: Annotated[SqliteState | DynamoDBState, Field(discriminator="backend")] = SqliteState()
    policy: Policy = Policy()
    retry: Retry = Retry()
    plan: Plan = Plan()
    digitalocean: DigitalOcean = DigitalOcean()
    actions: tuple[Action, ...] = ()
    switchover: Switchover = Switchover()
    practice: Practice = Practice()

    @field_validator("actions")
    @classmethod
    def _name_actions(cls, actions: tuple[Any, ...]) -> tuple[Any, ...]:
        return named(actions)

    @model_validator(mode="after")
    def _fence_names(self) -> ResponderConfig:
        taken = {a.name for a in self.actions}
        for index, fence in enumerate(self.switchover.fence):
            if fence.name in taken:
                raise ValueError(
                    f"switchover.fence.{index}.name: {fence.name!r} is also an action's name"
                )
        return self


class Config(Strict):
    tables: tuple[Annotated[str, Field(min_length=3, max_length=255)], ...] = Field(min_length=1)
    canary: Canary
    regions: tuple[Region, ...] = Field(min_length=2)
    exporter: ExporterConfig = Field(default_factory=ExporterConfig)
    responder: ResponderConfig = ResponderConfig()

    @property
    def region_names(self) -> tuple[str, ...]:
        """Region names in priority order; the first is the primary."""
        return tuple(region.name for region in self.regions)

    @property
    def primary(self) -> str:
        """The primary region: first in priority order."""
        return self.regions[0].name

    def consistency_of(self, table: str) -> TableConsistency:
        """table's consistency and witness: its own entry, else the responder-level ones."""
        responder = self.responder
        default = TableConsistency(consistency=responder.consistency, witness=responder.witness)
        return responder.tables.get(table, default)

    def region(self, name: str) -> Region:
        """The configured region called name; KeyError when unknown."""
        for region in self.regions:
            if region.name == name:
                return region
        raise KeyError(name)

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        _one_secret_per_token(self.responder)
        names = self.region_names
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"regions: {', '.join(duplicates)} listed more than once")
        if len(set(self.tables)) != len(self.tables):
            raise ValueError("tables: a table is listed more than once")
        for index, action in enumerate(self.responder.actions):
            values = getattr(action, "values", None)
            if values is None:
                continue
            missing = [n for n in names if n not in values]
            unknown = sorted(set(values) - set(names))
            where = f"responder.actions.{index}.values"
            if missing:
                raise ValueError(f"{where}: no value for region {', '.join(missing)}")
            if unknown:
                raise ValueError(f"{where}: unknown region {', '.join(unknown)}")
        target = self.responder.practice.target
        if target is not None and target not in names:
            raise ValueError(f"responder.practice.target: unknown region {target!r}")
        responder = self.responder
        default = TableConsistency(consistency=responder.consistency, witness=responder.witness)
        consistency.check(names, self.tables, default, responder.tables)
        return self


def _one_secret_per_token(responder: ResponderConfig) -> None:
    """Two tokens from one source would be one token with two names and two roles."""
    seen: dict[tuple[str | None, str | None], str] = {}
    keys = ["responder.webhook_token"] + [
        f"responder.auth.tokens.{i}.secret" for i in range(len(responder.auth.tokens))
    ]
    secrets = [responder.webhook_token] + [t.secret for t in responder.auth.tokens]
    for key, secret in zip(keys, secrets, strict=True):
        source = (secret.env, os.path.abspath(secret.file) if secret.file else None)
        if source in seen:
            raise ValueError(f"{key}: the same secret as {seen[source]}; each token needs its own")
        seen[source] = key


def _location(loc: tuple[int | str, ...], data: Any) -> str:
    """The YAML key path of an error, without pydantic's tagged-union tags."""
    parts: list[str] = []
    tagged: Any = None  # the mapping whose tag was passed (a command action has a key command)
    for item in loc:
        if isinstance(data, dict) and item in _tags(data) and tagged is not data:
            tagged = data
            continue  # a discriminator tag pydantic inserts, not a key the user wrote
        parts.append(str(item))
        try:
            data = data[item]
        except (KeyError, IndexError, TypeError):
            data = None
    return ".".join(parts) if parts else "(top level)"


def _tags(data: dict[str, Any]) -> set[Any]:
    return {data.get("type"), data.get("backend")} - {None}


def _describe(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        expected = ctx.get("expected_tags", "")
        return f"{ctx.get('tag')!r} is unknown; expected one of {expected}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    return str(error["msg"]).removeprefix("Value error, ")


def format_errors(exc: ValidationError, data: Any = None) -> list[str]:
    """One 'key.path: problem' line per validation error, most specific first."""
    errors = exc.errors(include_url=False)
    paths = [tuple(e["loc"]) for e in errors]
    lines = []
    for error, loc in zip(errors, paths, strict=True):
        # A list whose item failed also fails its length check: report only the item.
        if error["type"] == "too_short" and any(p[: len(loc)] == loc and p != loc for p in paths):
            continue
        path = _location(loc, data)
        if error["type"] == "union_tag_invalid":
            path += "." + str(error["ctx"]["discriminator"]).strip("'")
        message = _describe(error)
        lines.append(message if path == "(top level)" and ": " in message else f"{path}: {message}")
    return lines


def parse(data: Any, source: str = "<config>") -> Config:
    """Validate already-parsed YAML data; raise ConfigError listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"{source}: invalid configuration:\n  " + "\n  ".join(format_errors(exc, data))
        ) from None


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the configuration from path or $DDB_FAILOVER_CONFIG."""
    chosen = path if path is not None else os.environ.get(CONFIG_ENV)
    if not chosen:
        raise ConfigError(f"no configuration: pass --config or set {CONFIG_ENV}")
    try:
        text = Path(chosen).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{chosen}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise ConfigError(f"{chosen}: not valid YAML{where}: {problem}") from None
    return parse(data, str(chosen))
