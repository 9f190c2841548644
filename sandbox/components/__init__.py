"""Sandbox components; importing this module registers them all."""

from sandbox.components import exporter, regions

__all__ = ["exporter", "regions"]
