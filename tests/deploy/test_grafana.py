"""The Grafana provisioning and dashboards: current, well-formed, and agreeing with the rules."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import PromQuery
from tests.deploy.grafana_queries import (
    DASHBOARDS,
    OVERVIEW,
    dashboard_queries,
    dashboard_query_items,
    substitute,
    variable_selector,
)

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
RULES = REPO / "prometheus" / "rules"
DASHBOARD_FILES = sorted(DASHBOARDS.glob("*.json"))
GRID_WIDTH = 24
FILTERED_PANELS = (
    "Probe success",
    "Probe latency p50 / p99",
    "Probe failures by reason",
    "Time since last successful probe",
    "Replication lag",
    "Replication lag now",
)


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def provisioned_datasource() -> dict[str, Any]:
    data = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = data["datasources"]
    return dict(source)


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def by_title(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {panel["title"]: panel for panel in all_panels(dashboard)}


def rule_exprs() -> dict[str, str]:
    """Alert or record name -> expression, from the shipped rules."""
    exprs = {}
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                exprs[rule.get("alert") or rule["record"]] = " ".join(rule["expr"].split())
    return exprs


def red_threshold(panel: dict[str, Any]) -> float:
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    reds = [step["value"] for step in steps if step["color"] == "red"]
    assert len(reds) == 1, f"{panel['title']}: expected one red step, got {steps}"
    return float(reds[0])


def test_committed_dashboards_are_what_the_generator_makes(tmp_path: Path) -> None:
    generator = load_generator()
    assert generator.main(["--out", str(tmp_path)]) == 0
    generated = sorted(p.name for p in tmp_path.glob("*.json"))
    assert generated == [p.name for p in DASHBOARD_FILES], "a dashboard file is not generated"
    for name in generated:
        committed = (DASHBOARDS / name).read_text(encoding="utf-8")
        assert (tmp_path / name).read_text(encoding="utf-8") == committed, (
            f"grafana/dashboards/{name} is stale: run python grafana/generate.py"
        )


def test_generator_check_mode_catches_a_stale_file(tmp_path: Path) -> None:
    generator = load_generator()
    assert generator.main(["--out", str(tmp_path)]) == 0
    assert generator.main(["--check", "--out", str(tmp_path)]) == 0
    path = tmp_path / OVERVIEW.name
    path.write_text(path.read_text().replace("Replication lag", "Replication lagg"))
    assert generator.main(["--check", "--out", str(tmp_path)]) == 1


def test_datasource_provisioning_matches_compose_prometheus(compose_model: dict[str, Any]) -> None:
    source = provisioned_datasource()
    assert source["type"] == "prometheus"
    assert source["uid"]
    assert source["url"] == "http://prometheus:9090"
    command = compose_model["services"]["prometheus"]["command"]
    assert "--web.listen-address=0.0.0.0:9090" in command
    # $__rate_interval needs the scrape interval of the jobs the dashboards read.
    prometheus = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    intervals = {
        job["job_name"]: job.get("scrape_interval") for job in prometheus["scrape_configs"]
    }
    assert source["jsonData"]["timeInterval"] == intervals["ddb_exporter"]
    assert source["jsonData"]["timeInterval"] == intervals["ddb_failover_responder"]


def test_dashboard_provider_path_is_where_compose_mounts_the_dashboards(
    compose_model: dict[str, Any],
) -> None:
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "ddb-failover.yml").read_text()
    )
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    mounts = {
        target: Path(source)
        for source, target, *_ in (
            v.split(":") for v in compose_model["services"]["grafana"]["volumes"]
        )
    }
    assert mounts[entry["options"]["path"]] == DASHBOARDS
    assert mounts["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    home = compose_model["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert home.startswith(entry["options"]["path"] + "/")
    assert (DASHBOARDS / Path(home).name).is_file()


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_dashboard_is_valid_for_grafanas_model(path: Path) -> None:
    dashboard = load(path)
    uid = provisioned_datasource()["uid"]
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    assert dashboard["title"]
    assert dashboard["id"] is None, "file-provisioned dashboards must not carry a database id"
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    text = path.read_text()
    assert "__inputs" not in dashboard and "${DS_" not in text, "exported form: use the uid"

    panels = all_panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    assert all(isinstance(i, int) and i > 0 for i in ids)
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["y"] >= 0
        assert grid["x"] + grid["w"] <= GRID_WIDTH, f"{panel['title']} is off the grid"
        columns = range(grid["x"], grid["x"] + grid["w"])
        cells = {(x, y) for x in columns for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["title"] and len(panel["description"]) > 40, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']} has no unit"
        assert panel["targets"], f"{panel['title']} has no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"{panel['title']}: duplicate refIds"
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": uid}
            assert target["expr"].strip()

    for annotation in dashboard["annotations"]["list"]:
        assert annotation["datasource"] == {"type": "prometheus", "uid": uid}
        assert annotation["expr"].strip() and annotation["titleFormat"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"table", "vantage"} <= set(variables)
    for variable in variables.values():
        assert variable["datasource"] == {"type": "prometheus", "uid": uid}


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_no_query_names_a_hard_coded_instance_or_host(path: Path) -> None:
    for query in dashboard_query_items(path):
        assert not re.search(r"\binstance\s*(=|!=|=~|!~)", query.expr), query
        assert not re.search(r"[\w.-]+:\d{2,5}\b", query.expr.replace(":ratio", "")), query
    raw = [q.expr for q in dashboard_query_items(path, {"table": "$table"})]
    assert all("wordpress_posts" not in expr for expr in raw), "a table name is hard-coded"


def test_probe_panels_follow_the_table_and_vantage_variables() -> None:
    panels = by_title(load(OVERVIEW))
    for title in FILTERED_PANELS:
        for target in panels[title]["targets"]:
            assert 'table=~"$table"' in target["expr"], title
            assert 'vantage=~"$vantage"' in target["expr"], title


def test_legends_name_only_labels_the_query_keeps() -> None:
    for panel in all_panels(load(OVERVIEW)):
        for target in panel.get("targets", []):
            match = re.match(r"^\s*(?:\w+\(\s*[\d.]+,\s*)?\w+ by \(([^)]*)\)", target["expr"])
            if match is None:
                continue
            kept = {label.strip() for label in match.group(1).split(",")}
            used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target["legendFormat"]))
            assert used <= kept, (
                f"{panel['title']}: legend uses {used - kept}, dropped by the query"
            )


def test_thresholds_match_the_alert_rules() -> None:
    rules = rule_exprs()
    panels = by_title(load(OVERVIEW))

    def number(name: str, pattern: str) -> float:
        match = re.search(pattern, rules[name])
        assert match, f"{name}: {pattern!r} not in {rules[name]!r}"
        return float(match.group(1))

    down = number("DynamoDBRegionDown", r"ddb:region_down_vantages:ratio > ([\d.]+)")
    assert red_threshold(panels["Vantage points seeing the region down"]) == down
    lag = number("DynamoDBReplicationLagHigh", r"ddb:replication_lag_seconds:min > ([\d.]+)")
    assert red_threshold(panels["Replication lag"]) == lag
    assert red_threshold(panels["Replication lag now"]) == lag
    slow = number("ddb:region_slow_vantages:ratio_2m", r"> bool ([\d.]+)")
    assert red_threshold(panels["Probe latency p50 / p99"]) == slow
    degraded = number("DynamoDBRegionDegraded", r"ratio_2m > ([\d.]+)")
    assert number("DynamoDBRegionDegraded", r"or .*ratio_2m > ([\d.]+)") == degraded
    assert red_threshold(panels["Degradation signals"]) == degraded
    stale = number("FailoverPlanNotReady", r"evaluated_timestamp_seconds > ([\d.]+)")
    assert red_threshold(panels["Plan evaluated"]) == stale
    # The panel shows exactly the series the rule votes on.
    (vote,) = panels["Vantage points seeing the region down"]["targets"]
    assert vote["expr"].startswith("ddb:region_down_vantages:ratio{")


def test_plan_row_shows_readiness_per_region_and_action() -> None:
    dashboard = load(OVERVIEW)
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert "Failover plan" in rows
    (timeline,) = by_title(dashboard)["Plan readiness by region and action"]["targets"]
    assert timeline["expr"] == "min by (region, action) (responder_plan_ready >= 0)"
    assert timeline["legendFormat"] == "{{region}} {{action}}"


def test_descriptions_quote_the_thresholds_they_draw() -> None:
    panels = by_title(load(OVERVIEW))
    assert "50%" in panels["Vantage points seeing the region down"]["description"]
    assert "60 s" in panels["Replication lag"]["description"]
    assert "1 s" in panels["Probe latency p50 / p99"]["description"]
    assert "900 s" in panels["Plan evaluated"]["description"]


def test_annotations_mark_failovers_and_failbacks() -> None:
    annotations = {a["name"]: a for a in load(OVERVIEW)["annotations"]["list"]}
    transitions = annotations["Failovers and failbacks"]
    # Each transition's start and end at their own times: the value is the time, in ms.
    assert "responder_transition_timestamp_seconds" in transitions["expr"]
    assert transitions["expr"].endswith("* 1000") and transitions["useValueForTime"] is True
    assert {"kind", "event"} <= set(transitions["tagKeys"].split(","))
    assert (
        "{{from_region}}" in transitions["textFormat"]
        and "{{to_region}}" in transitions["textFormat"]
    )
    blocked = annotations["Blocked transitions"]
    assert 'responder_transitions_total{result="blocked"}' in blocked["expr"]
    assert blocked["useValueForTime"] is False
    assert "responder_active_region" in annotations["Active region changed"]["expr"]


def test_substitution_handles_every_variable_form() -> None:
    expr = 'rate(x{table=~"$table", v=~"${vantage}", t=~"[[table]]"}[$__rate_interval])'
    out = substitute(expr, {"table": "a|b", "vantage": ".+", "__rate_interval": "1m"})
    assert out == 'rate(x{table=~"a|b", v=~".+", t=~"a|b"}[1m])'
    assert substitute("$tables $table", {"table": "T"}) == "$tables T"
    assert variable_selector('label_values(up{job=~"a"}, instance)') == 'up{job=~"a"}'
    assert variable_selector("label_values(job)") == '{job!=""}'


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_every_query_parses_in_a_real_prometheus(path: Path, prometheus_query: PromQuery) -> None:
    items = dashboard_query_items(path)
    dashboard = load(path)
    targets = sum(len(p.get("targets", [])) for p in all_panels(dashboard))
    assert len(items) == targets + len(dashboard["annotations"]["list"]) + 2
    assert dashboard_queries(path) == [item.expr for item in items]
    for item in items:
        assert "$" not in item.expr, f"unsubstituted variable in {item}"
        status, body = prometheus_query(item.expr)
        assert status == 200 and body["status"] == "success", f"{item}: {body.get('error')}"


def test_a_broken_query_is_caught(prometheus_query: PromQuery) -> None:
    status, body = prometheus_query("sum by (region (dynamodb_probe_success)")
    assert status == 400 and body["errorType"] == "bad_data"
    status, _ = prometheus_query("rate(dynamodb_probe_success)")  # a type error, not syntax
    assert status == 400


def test_dashboard_links_to_the_runbook_the_alerts_use() -> None:
    (link,) = load(OVERVIEW)["links"]
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert rule["annotations"]["runbook_url"].startswith(link["url"] + "#")


def test_wordpress_row_shows_what_the_site_alerts_watch() -> None:
    dashboard = load(OVERVIEW)
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows[-1] == "WordPress sites"
    panels = by_title(dashboard)
    (rule,) = [
        r
        for g in yaml.safe_load((RULES / "wordpress.yml").read_text())["groups"]
        for r in g["rules"]
        if r.get("alert") == "WordPressSiteDown"
    ]
    # The panels show the series the alert is on, and quote its window.
    record = rule["expr"].split(" ==")[0]
    for title in ("WordPress now", "WordPress health checks"):
        (query,) = panels[title]["targets"]
        assert query["expr"] == record == "wordpress:site_up:max", title
    assert (
        f"{rule['for'].removesuffix('s')} s fires WordPressSiteDown"
        in (panels["WordPress now"]["description"])
    )
    # The duration panel's red line is the probe module's timeout.
    blackbox = yaml.safe_load((REPO / "blackbox" / "blackbox.yml").read_text())
    timeout = blackbox["modules"]["wordpress_health"]["timeout"]
    assert red_threshold(panels["Health check duration"]) == float(timeout.removesuffix("s"))


def test_switchover_row_shows_each_runs_times_and_practice_outcomes() -> None:
    dashboard = load(OVERVIEW)
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert "Switchovers and practice runs" in rows
    panels = by_title(dashboard)
    times = panels["Switchover time and write unavailability"]["targets"]
    figures = {t["expr"].split('figure="')[1].split('"')[0] for t in times}
    assert figures == {"duration", "write_unavailable", "drain"}
    assert all("responder_switchover_seconds" in t["expr"] for t in times)
    (runs,) = panels["Practice runs by outcome"]["targets"]
    assert runs["expr"] == "max by (outcome) (responder_practice_runs_total)"
    (last,) = panels["Since the last successful practice run"]["targets"]
    assert "responder_practice_last_success_timestamp_seconds" in last["expr"]
    annotations = {a["name"]: a for a in dashboard["annotations"]["list"]}
    practice = annotations["Practice runs"]
    assert "responder_practice_runs_total" in practice["expr"]
    assert "{{outcome}}" in practice["titleFormat"] and practice["tagKeys"] == "outcome"
