"""Before and after in words, per action type, and numbers rounded for people.

"www A 203.0.113.10 → 203.0.113.20 (TTL 60 s)", "Global LB: ams3 first (was nyc3)",
"App env DYNAMODB_REGION: us-east-1 → eu-west-1". Pure: the action's type and the few
facts of its config that name what it changes (record name, variable, parameter) in;
one line out. Anything unforeseen still reads as words, never as a JSON object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Json = Any
Facts = Mapping[str, Any]
ARROW = "→"
# Which facts of an action's config name what it changes (the rest is where and how).
FACT_KEYS = ("record_name", "record_type", "variable", "parameter", "load_balancer_id")


def facts(config: Mapping[str, Any]) -> dict[str, Any]:
    """The facts words need from an action's config (its model_dump)."""
    return {k: config[k] for k in FACT_KEYS if config.get(k) is not None}


def seconds(value: float | None) -> str:
    """A duration for people: to 0.1 s under a minute, then minutes, then hours."""
    if value is None:
        return "unknown"
    if abs(value) < 60:
        return f"{value:.1f} s"
    if abs(value) < 3600:
        minutes, rest = divmod(round(value), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(round(value / 60), 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def plain(value: Json) -> str:
    """Any value as words: lists joined, objects as key value pairs, none as "none"."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(plain(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return "; ".join(f"{k} {plain(v)}" for k, v in value.items()) if value else "none"
    return str(value)


def _field(value: Json, key: str) -> Json:
    return value.get(key) if isinstance(value, dict) else value


def _moved(before: str, after: str) -> str:
    return after if before == after else f"{before} {ARROW} {after}"


def _dns(f: Facts, before: Json, after: Json) -> str:
    name = f"{f.get('record_name', 'record')} {f.get('record_type', 'A')}"
    data = _moved(plain(_field(before, "data")), plain(_field(after, "data")))
    ttl = _field(after, "ttl") if isinstance(after, dict) else None
    return f"{name} {data}" + (f" (TTL {ttl} s)" if ttl is not None else "")


def _route53(f: Facts, before: Json, after: Json) -> str:
    name = f"{f.get('record_name', 'record')} {f.get('record_type', 'A')}"
    if isinstance(after, dict) and "alias" in after:
        return f"{name} alias {_moved(plain(_field(before, 'alias')), plain(after['alias']))}"
    data = _moved(plain(_field(before, "values")), plain(_field(after, "values")))
    ttl = _field(after, "ttl") if isinstance(after, dict) else None
    return f"{name} {data}" + (f" (TTL {ttl} s)" if ttl is not None else "")


def _glb(f: Facts, before: Json, after: Json) -> str:
    first, was = plain(_field(after, "first_region")), plain(_field(before, "first_region"))
    return f"Global LB: {first} first" + ("" if first == was else f" (was {was})")


def _lb_target(value: Json) -> str:
    if isinstance(value, dict) and value.get("tag") is not None:
        return f"tag {value['tag']}"
    if isinstance(value, dict) and "droplet_ids" in value:
        return f"droplets {plain(value['droplet_ids'])}"
    return plain(value)


def _lb(f: Facts, before: Json, after: Json) -> str:
    return f"Load balancer: {_moved(_lb_target(before), _lb_target(after))}"


def _app_env(f: Facts, before: Json, after: Json) -> str:
    variable = f.get("variable", "DYNAMODB_REGION")
    value = _field(after, "value")
    moved = _moved(plain(_field(before, "value")), plain(value))
    # The active deployment runs the spec's value once it is deployed: say so only if not.
    differs = isinstance(after, dict) and "deployed" in after and after["deployed"] != value
    note = f" (deployed: {plain(after['deployed'])})" if differs else ""
    return f"App env {variable}: {moved}{note}"


def _env_file(f: Facts, before: Json, after: Json) -> str:
    variable = f.get("variable", "DYNAMODB_REGION")
    moved = _moved(plain(_field(before, "value")), plain(_field(after, "value")))
    reloaded = _field(after, "reloaded") if isinstance(after, dict) else None
    note = "" if reloaded is None else (", reloaded" if reloaded else ", not reloaded")
    return f"Env file {variable}: {moved}{note}"


def _ssm(f: Facts, before: Json, after: Json) -> str:
    return f"SSM {f.get('parameter', 'parameter')}: {_moved(plain(before), plain(after))}"


def _command(f: Facts, before: Json, after: Json) -> str:
    return f"Command last run for {_moved(plain(before), plain(after))}"


def _readiness(f: Facts, before: Json, after: Json) -> str:
    """The plan's own check of a region: before is what it read, after what it needs."""
    canary = "canary readable" if _field(before, "canary_ok") else "canary NOT readable"
    limit = _field(after, "data_at_risk_seconds_at_most")
    rpo = f" (RPO {seconds(limit)})" if isinstance(limit, int | float) else ""
    return f"{canary}, data at risk {seconds(_field(before, 'data_at_risk_seconds'))}{rpo}"


def _site(f: Facts, before: Json, after: Json) -> str:
    status, error = _field(before, "status"), _field(before, "error")
    said = f"site answers HTTP {status}" if status is not None else "site does not answer"
    expected = _field(after, "status")
    wanted = f" (expects {expected})" if expected is not None and expected != status else ""
    return said + (f": {error}" if error else "") + wanted


WORDS: dict[str, Callable[[Facts, Json, Json], str]] = {
    "readiness": _readiness,
    "site": _site,
    "do_dns_record": _dns,
    "route53_record": _route53,
    "do_global_load_balancer": _glb,
    "do_load_balancer": _lb,
    "do_app_env": _app_env,
    "env_file": _env_file,
    "ssm_parameter": _ssm,
    "command": _command,
}


def change(kind: str | None, f: Facts, before: Json, after: Json) -> str:
    """Before and after of one action in one line of words."""
    words = WORDS.get(kind or "")
    if words is not None:
        try:
            return words(f, before, after)
        except (AttributeError, TypeError, KeyError):
            pass  # a shape this version does not know: the generic words below
    return _moved(plain(before), plain(after))


def state(kind: str | None, f: Facts, value: Json) -> str:
    """One state of an action (no change) in words."""
    return change(kind, f, value, value)
