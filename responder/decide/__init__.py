"""The pure decision: alerts, state and readiness in; a decision and its evidence out."""
