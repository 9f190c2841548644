"""Thin Flask blueprints over responder.intake.service: HTTP concerns only."""
