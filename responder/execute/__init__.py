"""Executing a transition step by step: the reconciler, its thread, operator commands, approvals."""
