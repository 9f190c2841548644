"""DynamoDB region probe exporter: background probes, Prometheus metrics.

Probes, per (region, table), every ``exporter.interval_seconds``:

- ``read``: a strongly consistent GetItem of the canary item;
- ``write``: a PutItem of this region's heartbeat item;
- ``replication``: one consistent BatchGetItem, in this region, of every other
  region's heartbeat.

Read and write set ``dynamodb_probe_success``, ``dynamodb_probe_duration_seconds``,
``dynamodb_probe_failures_total{reason}``,
``dynamodb_probe_last_success_timestamp_seconds`` and
``dynamodb_probe_failing_seconds`` (label ``operation``). Rounds start on a
fixed grid of slots, P apart on the monotonic clock; the last is
(latest failed slot - first failed slot of the current run) * P, 0 after a
success, and is what DynamoDBRegionDown compares with its window
(docs/alerting.md).

Replication is measured, not judged: ``dynamodb_replication_lag_seconds`` is
the age, at the end of each round, of the newest heartbeat from
``source_region`` ever seen in ``region``. When the heartbeats cannot be read
the gauge keeps ageing (the data there is as stale as we can tell), and the
failure is counted in ``dynamodb_replication_probe_failures_total{reason}``,
never in the read/write series, so a lag problem cannot fire the region-down
alert. The lag series appears once a first heartbeat from that source has
been seen. Heartbeats are written once per interval, so the lag reads between
the true replication delay and that delay plus one interval.

A ``ReplicatedWriteConflictException`` from a write (a multi-Region strongly
consistent table: another region was writing the heartbeat item) is retried once
and is no failure either way: the region answered after consulting its peers.

Beside the probes, never on their path, each table's DescribeTable is read every
``exporter.describe_interval_seconds`` (exporter/tables.py):
``dynamodb_table_info{consistency, witness_region}`` and
``dynamodb_replica_status{region, status}``, 1 for the current values only.

The scheduler owns the deadline: a probe with no answer within
``exporter.timeout_seconds`` is a ``timeout`` failure at that moment; a probe
still hung a round later counts another timeout and is not launched twice.
"""
