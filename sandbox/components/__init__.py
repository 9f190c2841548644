"""Sandbox components; importing this module registers them all."""

from sandbox.components import do_api, exporter, regions

__all__ = ["do_api", "exporter", "regions"]
