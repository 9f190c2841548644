"""Every sandbox component; importing this module registers them all."""

from sandbox.components import (
    alertmanager,
    chat,
    do_api,
    exporter,
    pagerduty,
    prometheus,
    regions,
    responder,
)

__all__ = [
    "alertmanager",
    "chat",
    "do_api",
    "exporter",
    "pagerduty",
    "prometheus",
    "regions",
    "responder",
]
