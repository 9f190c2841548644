"""Every PromQL query a provisioned dashboard runs, with Grafana's variables substituted.

Used by tests/deploy/ to parse the queries against a real Prometheus, and by the end-to-end
tests to check each one returns data from the running stack:

    from tests.deploy.grafana_queries import dashboard_queries
    for expr in dashboard_queries(OVERVIEW): ...
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "grafana" / "dashboards"
OVERVIEW = DASHBOARDS / "ddb-failover-overview.json"

# What Grafana puts in place of its built-in variables, for a 1-hour view at 5 s scrapes.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "__range_s": "3600",
}
ALL = ".+"  # the variables' allValue: what "All" selects
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+),)?\s*(?P<label>\w+)\s*\)\s*$")


@dataclass(frozen=True)
class Query:
    """One query: where it comes from (panel, annotation or variable) and its PromQL."""

    kind: str  # "panel" | "annotation" | "variable"
    title: str
    expr: str
    instant: bool = False


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """expr with $name, ${name} and [[name]] replaced, longest names first."""
    for name in sorted(variables, key=len, reverse=True):
        value = variables[name]
        expr = expr.replace(f"${{{name}}}", value).replace(f"[[{name}]]", value)
        # A function replacement: the value is inserted literally (no backslash escapes).
        expr = re.sub(rf"\${re.escape(name)}\b", lambda _match: value, expr)  # noqa: B023
    return expr


def variable_selector(query: str) -> str:
    """The PromQL a label_values(selector, label) variable query evaluates (its selector)."""
    match = _LABEL_VALUES.match(query)
    if match is None:
        return query  # a plain PromQL variable query
    selector = match.group("selector")
    return selector.strip() if selector else f'{{{match.group("label")}!=""}}'


def _variable_query(variable: Mapping[str, Any]) -> str:
    query = variable.get("query")
    if isinstance(query, Mapping):
        query = query.get("query", "")
    return str(query or variable.get("definition", ""))


def dashboard_query_items(path: Path, variables: Mapping[str, str] | None = None) -> list[Query]:
    """Every query of the dashboard at path, variables substituted (each template variable
    defaults to its All value, Grafana's built-ins to BUILTINS)."""
    dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
    templating = dashboard.get("templating", {}).get("list", [])
    values = {**BUILTINS, **{v["name"]: v.get("allValue") or ALL for v in templating}}
    values.update(variables or {})
    items: list[Query] = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                expr = substitute(target["expr"], values)
                items.append(
                    Query("panel", panel.get("title", ""), expr, bool(target.get("instant")))
                )
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            expr = substitute(annotation["expr"], values)
            items.append(Query("annotation", annotation.get("name", ""), expr))
    for variable in templating:
        if variable.get("type") == "query":
            expr = substitute(variable_selector(_variable_query(variable)), values)
            items.append(Query("variable", variable["name"], expr, instant=True))
    return items


def dashboard_queries(path: Path, variables: Mapping[str, str] | None = None) -> list[str]:
    """The PromQL of every panel, annotation and variable query, variables substituted."""
    return [item.expr for item in dashboard_query_items(path, variables)]


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Panels, including those inside collapsed rows."""
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(_panels(panel.get("panels", [])))
    return found
