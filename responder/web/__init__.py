"""Thin Flask blueprints over responder.service: HTTP concerns only."""
