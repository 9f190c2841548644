"""Shared pieces of ddb-failover: configuration, heartbeat layout, logging."""
