"""Wire config, clients, probers, scheduler and HTTP server into one exporter."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from ddb_failover.config import Config
from exporter.clients import make_client, make_session
from exporter.exposition import Exposition
from exporter.gate import Gate
from exporter.metrics import ProbeMetrics
from exporter.probes import PROBERS, Target
from exporter.scheduler import Lane, Scheduler
from exporter.server import MetricsServer
from exporter.tables import Describer, TableStates


def _version() -> str:
    try:
        return version("ddb-failover")
    except PackageNotFoundError:
        return "unknown"


def split_listen(listen: str) -> tuple[str, int]:
    """Split HOST:PORT (the config validated it)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class Exporter:
    """The whole exporter: metrics on a registry, a probe scheduler, an HTTP server."""

    def __init__(
        self,
        config: Config,
        registry: CollectorRegistry | None = None,
        credentials: dict[str, str] | None = None,
        process_metrics: bool = True,
    ) -> None:
        settings = config.exporter
        self.config = config
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = ProbeMetrics(self.registry, settings.vantage, _version())
        self.metrics.precreate(config.region_names, config.tables, settings.probes)
        live = None
        if process_metrics:  # read from /proc at scrape time: cheap, and always current
            live = CollectorRegistry()
            ProcessCollector(registry=live)
            PlatformCollector(registry=live)
        self.tables = TableStates(settings.vantage, self.registry)
        self.exposition = Exposition(lambda: self.metrics.render() + self.tables.render(), live)
        session = make_session(credentials)
        gate = Gate()
        lanes_per_region = len(config.tables) * len(settings.probes)
        lanes: list[Lane] = []
        clients = {}
        for region in config.regions:
            # One more connection for the describer (exporter/tables.py).
            client = make_client(session, region, settings.timeout_seconds, lanes_per_region + 1)
            gate.attach(client)
            clients[region.name] = client
            peers = tuple(name for name in config.region_names if name != region.name)
            for table in config.tables:
                target = Target(
                    client=client,
                    region=region.name,
                    table=table,
                    canary_key=config.canary.key,
                    canary_value=config.canary.value,
                    vantage=settings.vantage,
                    peers=peers,
                )
                lanes.extend(Lane(kind, target, PROBERS[kind]) for kind in settings.probes)
        self.scheduler = Scheduler(
            lanes,
            self.metrics,
            settings.interval_seconds,
            settings.timeout_seconds,
            on_round=self.exposition.refresh,
            gate=gate,
        )
        self.describer = Describer(
            self.tables, config.tables, clients, settings.describe_interval_seconds, gate
        )
        self.server: MetricsServer | None = None

    def serve(self, listen: str | None = None) -> MetricsServer:
        """Bind the HTTP server (listen overrides the config) and start it in the background."""
        host, port = split_listen(listen or self.config.exporter.listen)
        self.server = MetricsServer(self.exposition, host, port)
        self.server.start()
        return self.server

    def start(self) -> None:
        """Start probing and describing the tables in the background."""
        self.scheduler.start()
        self.describer.start()

    def close(self) -> None:
        """Stop probing, describing and serving."""
        self.describer.stop()
        self.scheduler.stop()
        if self.server is not None:
            self.server.shutdown()
