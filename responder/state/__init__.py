"""Durable responder state: the records, the phase rules, the StateStore interface, its backends."""
