"""Fixtures: sandbox regions (real moto server processes) and an exporter over them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ddb_failover.config import Config
from exporter.app import Exporter
from sandbox.regions import Region
from tests.exporter.exporterlib import CANARY, CREDENTIALS, NAMES, TABLE


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Region]]:
    """Three running regions with the table and its canary, shared by a module."""
    workdir = tmp_path_factory.mktemp("regions")
    started: list[Region] = []
    try:
        for name in NAMES:
            region = Region(name, [TABLE], CANARY["key"], CANARY["value"], workdir)
            region.start()
            started.append(region)
        yield started
    finally:
        for region in started:
            region.close()


@pytest.fixture
def healthy(regions: list[Region]) -> Iterator[list[Region]]:
    """The shared regions, mended after the test whatever it did to them."""
    yield regions
    for region in regions:
        if region.pid is None:
            region.start()
        else:
            region.resume()


@pytest.fixture
def run_exporter() -> Iterator[Callable[[Config], str]]:
    """Start an in-process exporter on a free port; returns its base URL."""
    running: list[Exporter] = []

    def start(config: Config) -> str:
        exporter = Exporter(config, credentials=CREDENTIALS, process_metrics=False)
        running.append(exporter)
        server = exporter.serve("127.0.0.1:0")
        exporter.start()
        return f"http://127.0.0.1:{server.address[1]}"

    yield start
    for exporter in running:
        exporter.close()
