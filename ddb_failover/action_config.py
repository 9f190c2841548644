"""The responder's actions and switchover fences, as configured (responder.actions)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from ddb_failover.config_base import RegionName, Seconds, Strict, matching, named

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
DORegion = Annotated[str, matching(r"^[a-z]{3}[0-9]$", "a DigitalOcean region slug like nyc3")]


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
            matching(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$", "an App Platform component name like web"),
        ]
        | None
    ) = None
    variable: Annotated[
        str,
        matching(r"^[_A-Za-z][_A-Za-z0-9]*$", "an environment variable name like DYNAMODB_REGION"),
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
        return named(fence)
