"""The dashboards against Grafana's own schema, as generated into grafana-foundation-sdk's models.

Each part (the dashboard, every panel's plugin options and field config, every Prometheus
query) is decoded into the SDK's model and encoded again: a key the schema does not know is
dropped on the way, and an enum value outside the schema's set is reported.
"""

from __future__ import annotations

import enum
import importlib
import json
import types
import typing
from pathlib import Path
from typing import Any

import grafana_foundation_sdk.models.dashboard as sdk_dashboard
import pytest

from tests.deploy.grafana_queries import DASHBOARDS

PLUGIN_MODULES = {
    "timeseries": "timeseries",
    "stat": "stat",
    "bargauge": "bargauge",
    "state-timeline": "statetimeline",
}
# Datasource-specific keys the core schema leaves open (Grafana keeps them as they are).
OPEN_KEYS = {
    "annotations": {"expr", "step", "titleFormat", "textFormat", "tagKeys", "useValueForTime"},
    "templating": {"definition"},
}
DASHBOARD_FILES = sorted(DASHBOARDS.glob("*.json"))


def encode(model: Any) -> Any:
    """A model as plain JSON data, the way the SDK serialises it."""

    def default(value: Any) -> Any:
        if hasattr(value, "to_json"):
            return value.to_json()
        if isinstance(value, enum.Enum):
            return value.value
        raise TypeError(f"cannot encode {value!r}")

    return json.loads(json.dumps(model.to_json(), default=default))


def dropped(original: Any, encoded: Any, path: str = "") -> list[str]:
    """Paths of keys (or values) in original that the round trip lost or changed."""
    if isinstance(original, dict):
        if not isinstance(encoded, dict):
            return [f"{path}: became {type(encoded).__name__}"]
        lost = []
        for key, value in original.items():
            if value is None:
                continue
            if key not in encoded:
                lost.append(f"{path}.{key}")
            else:
                lost.extend(dropped(value, encoded[key], f"{path}.{key}"))
        return lost
    if isinstance(original, list):
        if not isinstance(encoded, list) or len(original) != len(encoded):
            return [f"{path}: list changed"]
        lost = []
        for index, (before, after) in enumerate(zip(original, encoded, strict=True)):
            lost.extend(dropped(before, after, f"{path}[{index}]"))
        return lost
    return [] if original == encoded else [f"{path}: {original!r} became {encoded!r}"]


def enum_types(hint: Any) -> list[type[enum.Enum]]:
    """The enum classes a type hint admits (through Optional, unions and lists)."""
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return [hint]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType, list):
        return [e for arg in typing.get_args(hint) for e in enum_types(arg)]
    return []


def bad_enums(model: Any, path: str) -> list[str]:
    """Fields holding a value outside the schema's enum, anywhere in model."""
    problems = []
    for name, hint in typing.get_type_hints(type(model)).items():
        value = getattr(model, name, None)
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            enums = enum_types(hint)
            raw = item.value if isinstance(item, enum.Enum) else item
            if enums and not any(raw in {e.value for e in kind} for kind in enums):
                problems.append(f"{path}.{name}: {raw!r} is not one of {enums[0].__name__}")
            if hasattr(item, "to_json") and not isinstance(item, enum.Enum):
                problems.extend(bad_enums(item, f"{path}.{name}"))
    return problems


def open_key(path: str) -> bool:
    """Whether a dropped path is a datasource-specific key the core schema leaves open."""
    part = path.split(".")[1]
    return path.startswith(f".{part}.list[") and path.rsplit(".", 1)[1] in OPEN_KEYS.get(part, ())


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_dashboard_keys_are_all_in_grafanas_schema(path: Path) -> None:
    data = load(path)
    lost = dropped(data, encode(sdk_dashboard.Dashboard.from_json(data)))
    unknown = [path for path in lost if not open_key(path)]
    assert not unknown, unknown


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_panel_options_and_field_config_follow_each_plugins_schema(path: Path) -> None:
    problems = []
    for panel in load(path)["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["type"] in PLUGIN_MODULES, f"no schema check for {panel['type']}"
        plugin = importlib.import_module(
            f"grafana_foundation_sdk.models.{PLUGIN_MODULES[panel['type']]}"
        )
        where = panel["title"]
        options = plugin.Options.from_json(panel["options"])
        problems += dropped(panel["options"], encode(options), f"{where}.options")
        problems += bad_enums(options, f"{where}.options")
        custom = panel["fieldConfig"]["defaults"].get("custom")
        if custom is not None:
            field_config = plugin.FieldConfig.from_json(custom)
            problems += dropped(custom, encode(field_config), f"{where}.custom")
            problems += bad_enums(field_config, f"{where}.custom")
    assert not problems, problems


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_prometheus_queries_follow_the_datasource_schema(path: Path) -> None:
    prometheus = importlib.import_module("grafana_foundation_sdk.models.prometheus")
    problems = []
    for panel in load(path)["panels"]:
        for target in panel.get("targets", []):
            query = prometheus.Dataquery.from_json(target)
            problems += dropped(target, encode(query), f"{panel['title']}.{target['refId']}")
            problems += bad_enums(query, panel["title"])
    assert not problems, problems


def test_the_schema_check_catches_an_unknown_key_and_a_bad_enum() -> None:
    stat = importlib.import_module("grafana_foundation_sdk.models.stat")
    options = {"textMode": "bogus", "colourMode": "background"}
    decoded = stat.Options.from_json(options)
    assert dropped(options, encode(decoded)) == [".colourMode"]
    assert bad_enums(decoded, "stat") == ["stat.text_mode: 'bogus' is not one of BigValueTextMode"]
