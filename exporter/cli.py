"""ddb-exporter: probe DynamoDB regions in the background and serve the results."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from types import FrameType

from prometheus_client import disable_created_metrics
from pydantic import ValidationError

from ddb_failover import logs
from ddb_failover.config import (
    CONFIG_ENV,
    Config,
    ConfigError,
    ExporterConfig,
    format_errors,
    load,
)
from ddb_failover.secret_files import exposed_secrets
from exporter import report
from exporter.app import Exporter

log = logging.getLogger("exporter")

EXIT_OK, EXIT_PROBE_FAILED, EXIT_CONFIG = 0, 1, 2
SWITCH_INTERVAL = 0.0005


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="ddb-exporter", description=__doc__)
    parser.add_argument("--config", help=f"config file (default: ${CONFIG_ENV})")
    parser.add_argument(
        "--once", action="store_true", help="run one probe round, print it, exit 1 on failure"
    )
    parser.add_argument("--listen", help="HOST:PORT to serve on, overriding exporter.listen")
    parser.add_argument("--log-level", default="INFO", type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])  # fmt: skip
    return parser.parse_args(argv)


def with_listen(config: Config, listen: str) -> Config:
    """The config with exporter.listen replaced, validated like the file's value."""
    try:
        settings = ExporterConfig.model_validate({**config.exporter.model_dump(), "listen": listen})
    except ValidationError as exc:
        raise ConfigError("--listen: " + "; ".join(format_errors(exc))) from None
    return config.model_copy(update={"exporter": settings})


def run_once(exporter: Exporter) -> int:
    """One round: reads and writes first, then replication so it sees this round's heartbeats."""
    probes = exporter.config.exporter.probes
    outcomes = exporter.scheduler.run_round([k for k in probes if k != "replication"])
    if "replication" in probes:
        outcomes += exporter.scheduler.run_round(["replication"])
    now = time.time()
    rows = report.rows(
        outcomes,
        exporter.config.region_names,
        lambda table, source, region: exporter.metrics.lag_of(table, source, region, now),
    )
    print(report.table(rows), flush=True)
    return EXIT_PROBE_FAILED if report.failed(outcomes) else EXIT_OK


def serve(exporter: Exporter) -> int:
    """Serve /metrics and probe until SIGTERM or SIGINT."""
    stopping = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info(logs.kv(msg="stopping", signal=signal.Signals(signum).name))
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server = exporter.serve()
    except OSError as exc:
        address = exporter.config.exporter.listen
        log.error(logs.kv(msg="cannot listen", address=address, error=exc.strerror))
        exporter.scheduler.stop()
        return EXIT_PROBE_FAILED
    host, port = server.address
    log.info(logs.kv(msg="listening", address=f"{host}:{port}"))
    exporter.start()
    while not stopping.wait(1.0):
        pass
    exporter.close()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of ddb-exporter and python -m exporter."""
    args = parse_args(argv)
    logs.setup(args.log_level)
    if args.log_level != "DEBUG":
        # botocore announces where it found credentials on every client: noise.
        logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        config = load(args.config)
        if args.listen is not None:
            config = with_listen(config, args.listen)
    except ConfigError as exc:
        print(f"ddb-exporter: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for warning in exposed_secrets(config):
        log.warning(logs.kv(msg="secret file readable by others", detail=warning))
    # _created series would double the body for nothing the rules use.
    disable_created_metrics()
    # A scrape thread re-takes the GIL after each socket call; with probe threads
    # busy in botocore it would wait a whole switch interval (5 ms) every time.
    sys.setswitchinterval(SWITCH_INTERVAL)
    exporter = Exporter(config)
    if args.once:
        try:
            return run_once(exporter)
        finally:
            exporter.scheduler.stop()
    return serve(exporter)
