"""Every sandbox component; importing this module registers them all."""

from sandbox.components import (
    alertmanager,
    blackbox,
    chat,
    do_api,
    exporter,
    pagerduty,
    prometheus,
    regions,
    responder,
    sites,
)

__all__ = [
    "alertmanager",
    "blackbox",
    "chat",
    "do_api",
    "exporter",
    "pagerduty",
    "prometheus",
    "regions",
    "responder",
    "sites",
]
