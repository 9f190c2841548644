"""DynamoDB region probe exporter: background probes, Prometheus metrics."""
