"""The actions the responder drives the outside world with: one small module per type."""
