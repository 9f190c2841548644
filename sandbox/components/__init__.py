"""Sandbox components, one module each; sandbox.components.catalog registers them all."""
