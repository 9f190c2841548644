"""The one YAML configuration both services read, validated strictly at start."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ddb_failover import consistency
from ddb_failover.practice_config import Practice

CONFIG_ENV = "DDB_FAILOVER_CONFIG"
# A guessable bearer token is no token: anything shorter is a configuration error.
MIN_TOKEN_CHARS = 16


def _matching(pattern: str, what: str) -> AfterValidator:
    """A check that a string matches pattern; the error says it is not `what`."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


RegionName = Annotated[
    str, _matching(r"^[a-z]{2}(-[a-z]+)+-\d+$", "an AWS region name like us-east-1")
]
Seconds = Annotated[float, Field(gt=0)]
HttpUrl = Annotated[str, _matching(r"^https?://[^\s]+$", "an http:// or https:// URL")]
RUNBOOK_URL = "https://github.com/ddb-failover/ddb-failover/blob/main/docs/runbook.md"


class ConfigError(Exception):
    """The configuration is unusable; the message names every offending key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Canary(Strict):
    key: str = Field(min_length=1)
    value: str = Field(min_length=1)


HostName = Annotated[
    str, _matching(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$", "a host name")
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


class Secret(Strict):
    """Where a secret comes from: an environment variable or a file, never inline."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Secret:
        if (self.env is None) == (self.file is None):
            raise ValueError("set exactly one of env or file")
        return self

    @property
    def source(self) -> str:
        """Where the secret comes from, for messages: never its value."""
        return f"environment variable {self.env}" if self.env else f"secret file {self.file}"

    def read(self) -> str:
        """Return the secret's value; raise ConfigError naming the source if absent or blank."""
        if self.env is not None:
            value = os.environ.get(self.env, "").strip()
        else:
            assert self.file is not None
            try:
                value = self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read {self.source}: {exc.strerror}") from None
        if not value:
            raise ConfigError(f"{self.source} is unset, empty or only whitespace")
        return value

    def read_token(self) -> str:
        """Read a bearer token: as read(), and at least MIN_TOKEN_CHARS long."""
        value = self.read()
        if len(value) < MIN_TOKEN_CHARS:
            raise ConfigError(
                f"{self.source} holds a token of {len(value)} characters; "
                f"tokens need at least {MIN_TOKEN_CHARS}"
            )
        return value


def _listen(value: str) -> str:
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT with a port from 0 to 65535")
    return value


Listen = Annotated[str, AfterValidator(_listen)]
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


PerRegion = dict[str, Any]


class _Action(Strict):
    name: str = Field(default="", pattern=r"^[a-z0-9_.-]*$")
    # One attempt of the step, all its calls included: a hung call cannot hold the transition.
    timeout_seconds: Seconds = 60.0


class DNSRecordAction(_Action):
    type: Literal["do_dns_record"]
    domain: str = Field(min_length=1)
    record_type: Literal["A", "AAAA", "CNAME"] = "A"
    record_name: str = Field(min_length=1)
    ttl: Annotated[int, Field(ge=30)] | None = None
    values: dict[str, str]


# A DigitalOcean datacenter region slug, such as nyc3 or ams3.
DORegion = Annotated[str, _matching(r"^[a-z]{3}[0-9]$", "a DigitalOcean region slug like nyc3")]


class LoadBalancerTarget(Strict):
    droplet_ids: tuple[int, ...] | None = None
    tag: str | None = None
    # Where these droplets are, when the config says: lets check-config refuse a move a
    # regional load balancer cannot make (DigitalOcean's own region only).
    region: DORegion | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> LoadBalancerTarget:
        if (self.droplet_ids is None) == (self.tag is None):
            raise ValueError("set exactly one of droplet_ids or tag")
        return self


class LoadBalancerAction(_Action):
    """Moves a regional load balancer between droplet sets of its own region (blue/green)."""

    type: Literal["do_load_balancer"]
    load_balancer_id: str = Field(min_length=1)
    region: DORegion | None = None  # the load balancer's region, checked against it live
    values: dict[str, LoadBalancerTarget]

    @model_validator(mode="after")
    def _one_region(self) -> LoadBalancerAction:
        named = {r: t.region for r, t in self.values.items() if t.region is not None}
        if self.region is not None:
            elsewhere = [r for r, slug in named.items() if slug != self.region]
            if elsewhere:
                raise ValueError(
                    f"values.{elsewhere[0]}.region: {named[elsewhere[0]]} is not the load "
                    f"balancer's region {self.region}; {_REGIONAL_ONLY}"
                )
        elif len(set(named.values())) > 1:
            listed = ", ".join(f"{r}: {slug}" for r, slug in named.items())
            raise ValueError(f"values: targets in different regions ({listed}); {_REGIONAL_ONLY}")
        return self


_REGIONAL_ONLY = (
    "a regional load balancer only balances droplets of its own region "
    "(use do_dns_record between per-region load balancers, or do_global_load_balancer)"
)


class GlobalLoadBalancerAction(_Action):
    """Puts the region's DigitalOcean region first in a Global Load Balancer's priorities."""

    type: Literal["do_global_load_balancer"]
    load_balancer_id: str = Field(min_length=1)
    values: dict[str, DORegion]  # per region: the DigitalOcean region to prefer

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: dict[str, str]) -> dict[str, str]:
        for slug in set(values.values()):
            regions = [r for r, s in values.items() if s == slug]
            if len(regions) > 1:
                raise ValueError(
                    f"{' and '.join(regions)} both prefer {slug}; "
                    "each region needs a DigitalOcean region of its own"
                )
        return values


class AppEnvAction(_Action):
    """Sets an env var in an App Platform app's spec and waits for its deployment."""

    type: Literal["do_app_env"]
    app_id: str = Field(min_length=1)
    # A service, worker, job, static site or function by name; absent: the app-level envs.
    component: (
        Annotated[
            str,
            _matching(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$", "an App Platform component name like web"),
        ]
        | None
    ) = None
    variable: Annotated[
        str,
        _matching(r"^[_A-Za-z][_A-Za-z0-9]*$", "an environment variable name like DYNAMODB_REGION"),
    ] = "DYNAMODB_REGION"
    values: dict[str, str] | None = None  # per region; default: the region's name
    # An attempt waits for App Platform's deployment, which takes minutes; one that ran out
    # of time is retried, and every failed attempt counts toward FailoverActionFailing.
    timeout_seconds: Seconds = 600.0
    poll_interval_seconds: Seconds = 5.0

    @model_validator(mode="after")
    def _poll_within_timeout(self) -> AppEnvAction:
        if self.poll_interval_seconds > self.timeout_seconds:
            raise ValueError(
                f"poll_interval_seconds ({self.poll_interval_seconds:g}) must not exceed "
                f"timeout_seconds ({self.timeout_seconds:g})"
            )
        return self


class Route53Action(_Action):
    type: Literal["route53_record"]
    hosted_zone_id: str = Field(min_length=1)
    record_name: str = Field(min_length=1)
    record_type: Literal["A", "AAAA", "CNAME", "TXT"] = "A"
    ttl: Annotated[int, Field(ge=0)] = 60
    endpoint_url: str | None = None
    values: dict[str, str]


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class EnvFileAction(_Action):
    type: Literal["env_file"]
    path: Path
    variable: EnvName = "DYNAMODB_REGION"
    reload_command: tuple[str, ...] | None = None
    # Environment variables the reload command may see besides PATH, LANG and HOME.
    pass_env: tuple[EnvName, ...] = ()


class SSMParameterAction(_Action):
    type: Literal["ssm_parameter"]
    parameter: str = Field(min_length=1)
    region: RegionName
    endpoint_url: str | None = None


class CommandAction(_Action):
    type: Literal["command"]
    command: tuple[str, ...] = Field(min_length=1)
    # Environment variables the command may see besides PATH, LANG and HOME.
    pass_env: tuple[EnvName, ...] = ()


Action = Annotated[
    DNSRecordAction
    | LoadBalancerAction
    | GlobalLoadBalancerAction
    | AppEnvAction
    | Route53Action
    | EnvFileAction
    | SSMParameterAction
    | CommandAction,
    Field(discriminator="type"),
]


class _FenceValues(Strict):
    """What a fence action sets before the drain (fenced) and after the move (open)."""

    fenced: str = Field(min_length=1)
    open: str = Field(min_length=1)

    @model_validator(mode="after")
    def _two_values(self) -> _FenceValues:
        if self.fenced == self.open:
            raise ValueError(f"fenced and open are both {self.fenced!r}; a fence needs two values")
        return self


class EnvFileFence(EnvFileAction, _FenceValues):
    """WordPress's read-only flag in an env file, for example."""


class AppEnvFence(AppEnvAction, _FenceValues):
    @model_validator(mode="after")
    def _no_values(self) -> AppEnvFence:
        if self.values is not None:
            raise ValueError("values: a fence sets fenced and open, not a value per region")
        return self


class SSMParameterFence(SSMParameterAction, _FenceValues):
    pass


class CommandFence(CommandAction, _FenceValues):
    """A maintenance-mode command; it reads DDB_FAILOVER_FENCE (fenced or open)."""


FenceAction = Annotated[
    EnvFileFence | AppEnvFence | SSMParameterFence | CommandFence, Field(discriminator="type")
]


class Switchover(Strict):
    """A planned move: fence, drain replication into the target, move, unfence."""

    drain_timeout_seconds: Seconds = 30.0
    fence: tuple[FenceAction, ...] = ()

    @field_validator("fence")
    @classmethod
    def _name_fences(cls, fence: tuple[Any, ...]) -> tuple[Any, ...]:
        return _named(fence)


Role = Literal["alertmanager", "operator", "viewer"]
PublicEndpoint = Literal["metrics", "healthz", "readyz", "status", "history", "plan", "page"]


# Names the history already gives to others: a token called so would pass for them.
RESERVED_TOKEN_NAMES = {
    "alertmanager": "webhook_token's holder is known by it",
    "responder": "the history records the responder's own acts by it "
    "(an automatic freeze, an approval's timeout)",
}


class NamedToken(Strict):
    """A bearer token and what it may do; its name is what the history records as `by`."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: Role
    secret: Secret

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_TOKEN_NAMES:
            raise ValueError(f"{name!r} is reserved: {RESERVED_TOKEN_NAMES[name]}")
        return name


class Auth(Strict):
    tokens: tuple[NamedToken, ...] = ()
    # Reachable without a token; everything else needs one with the right role.
    public: tuple[PublicEndpoint, ...] = ("metrics", "healthz", "readyz")

    @field_validator("tokens")
    @classmethod
    def _unique_names(cls, tokens: tuple[NamedToken, ...]) -> tuple[NamedToken, ...]:
        names = [t.name for t in tokens]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"token name {', '.join(twice)} is used twice")
        return tokens


class TLS(Strict):
    """Serve HTTPS; with client_ca_file, require client certificates it signed (mTLS)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


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


NotifyEvent = Literal["started", "awaiting_approval", "completed", "stalled", "aborted", "blocked"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = (
    "started",
    "awaiting_approval",
    "completed",
    "stalled",
    "aborted",
    "blocked",
)


class _Receiver(Strict):
    name: str = Field(pattern=r"^[a-z0-9_.-]{1,64}$")
    events: tuple[NotifyEvent, ...] = NOTIFY_EVENTS


class PagerDutyChangeReceiver(_Receiver):
    """PagerDuty Change Events (Events API v2 change/enqueue): the incident timeline."""

    type: Literal["pagerduty_change"]
    routing_key: Secret
    url: str = "https://events.pagerduty.com"


class SlackReceiver(_Receiver):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat)."""

    type: Literal["slack"]
    webhook_url: Secret  # the URL is the credential: it lives with the secrets


Receiver = Annotated[PagerDutyChangeReceiver | SlackReceiver, Field(discriminator="type")]


class Notify(Strict):
    receivers: tuple[Receiver, ...] = ()
    # Where people follow the links in a message: the status page and reports, Grafana.
    responder_url: str | None = None
    grafana_url: str | None = None
    timeout_seconds: Seconds = 10.0
    # A receiver still failing after this long is given up on (counted as failed).
    give_up_after_seconds: Seconds = 3600.0

    @field_validator("receivers")
    @classmethod
    def _unique(cls, receivers: tuple[Any, ...]) -> tuple[Any, ...]:
        names = [r.name for r in receivers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"receiver name {', '.join(twice)} is used twice")
        return receivers


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
        return _named(actions)

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


def _named(actions: tuple[Any, ...]) -> tuple[Any, ...]:
    """Each action with its name: the one given, else its type (numbered when taken)."""
    named = []
    seen: set[str] = set()
    for index, action in enumerate(actions):
        name = action.name or action.type
        if name in seen:
            name = f"{name}.{index}" if not action.name else name
        if name in seen:
            raise ValueError(f"action name {name!r} is used twice")
        seen.add(name)
        named.append(action.model_copy(update={"name": name}))
    return tuple(named)


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
