"""Fixtures shared by every test package: sandbox regions on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from _pytest.nodeid import NodeId

from sandbox.net import wait_until
from sandbox.quorum import StrongMembers, start_members
from sandbox.regions import Region
from sandbox.replicator import Replicator

CANARY_KEY = "health_check_id"
CANARY_VALUE = "ping"
# STRONG tables' members: two replicas and a witness.
STRONG_REGIONS, WITNESS = ("us-east-1", "us-east-2"), "us-west-2"

# boto3 must never find real credentials or a real region in tests.
os.environ.update(
    AWS_ACCESS_KEY_ID="sandbox",
    AWS_SECRET_ACCESS_KEY="sandbox",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
)

RegionFactory = Callable[..., dict[str, Region]]


def _shared_stack(item: pytest.Item) -> str | None:
    """The first session-scoped fixture of ours that item uses: one stack, one xdist worker.

    A module marked `stack_copy(N)` gets copy N of that stack: a worker of its own builds
    it, so the longest group is cut in two (each xdist worker holds its own session).
    """
    info = getattr(item, "_fixtureinfo", None)
    marker = item.get_closest_marker("stack_copy")
    copy = f"#{marker.args[0]}" if marker else ""
    for name in getattr(info, "names_closure", ()):
        for definition in info.name2fixturedefs.get(name, ()):
            if definition.scope == "session" and definition.baseid.startswith("tests"):
                return f"session:{definition.baseid}::{name}{copy}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group tests for `pytest -n N --dist loadgroup`, and run the shared stacks first.

    A test that uses a session-scoped stack runs on the worker that holds that stack;
    every other test stays with its module, whose module-scoped fixtures it shares. The
    shared stacks are the longest groups, so they start first.
    """
    groups = {item: _shared_stack(item) or item.nodeid.split("::")[0] for item in items}
    items.sort(key=lambda item: not groups[item].startswith("session:"))
    if not config.getoption("loadgroup", False):  # set on xdist workers under --dist loadgroup
        return
    for item, group in groups.items():
        # xdist's loadgroup reads a group from the node id's "@" suffix. Its own marker
        # handling sets a private attribute that pytest 9.2 no longer reads, so the suffix
        # is written here (xdist's scheduler, xdist/scheduler/loadgroup.py, splits it off).
        item._id = NodeId.parse(f"{item.nodeid}@{group}")  # type: ignore[attr-defined]


def sandbox_chaos(directory: Path, region: str, op: str) -> None:
    """`python -m sandbox chaos --dir DIR REGION OP` as a user types it; it must succeed."""
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "chaos", "--dir", str(directory), region, op],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture
def start_regions(tmp_path: Path) -> Iterator[RegionFactory]:
    """Start sandbox regions (moto server processes); all are stopped at teardown."""
    started: list[Region] = []

    def start(
        names: Sequence[str] = ("us-east-1", "eu-west-1"),
        tables: Sequence[str] = ("wordpress_posts",),
        seed: bool = True,
    ) -> dict[str, Region]:
        regions = {}
        for name in names:
            region = Region(name, tables, CANARY_KEY, CANARY_VALUE, tmp_path / "regions", seed=seed)
            started.append(region)
            region.start()
            regions[name] = region
        return regions

    yield start
    for region in started:
        region.close()


@pytest.fixture
def start_replicator() -> Iterator[Callable[..., Replicator]]:
    """Start a replicator between regions; stopped at teardown."""
    started: list[Replicator] = []

    def start(
        regions: dict[str, Region], tables: Sequence[str], delay_seconds: float
    ) -> Replicator:
        replicator = Replicator({n: r.url for n, r in regions.items()}, tables, delay_seconds)
        started.append(replicator)
        replicator.start()
        return replicator

    yield start
    for replicator in started:
        replicator.stop()


@pytest.fixture(scope="module")
def strong_members(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongMembers]:
    """A STRONG table wordpress_posts on two replicas and a witness, shared by a module."""
    started = start_members(
        STRONG_REGIONS, WITNESS, ["wordpress_posts"], {"key": CANARY_KEY, "value": CANARY_VALUE},
        tmp_path_factory.mktemp("strong"),
    )  # fmt: skip
    yield started
    started.close()


@pytest.fixture
def strong(strong_members: StrongMembers) -> Iterator[StrongMembers]:
    """The module's STRONG members, mended after the test whatever it did to them."""
    yield strong_members
    coordinator = strong_members.coordinator
    for name, region in strong_members.all.items():
        if region.pid is None:
            region.start()
            if not region.witness:
                coordinator.rejoin(name)
        else:
            region.resume()
        strong_members.replicator.resume_into(name)
    for name in strong_members.regions:
        coordinator.set_status(name, "ACTIVE")
    wait_until(
        lambda: (
            set(coordinator.available()) == set(strong_members.all)
            and all(coordinator.has_quorum(name) for name in strong_members.regions)
        ),
        30,
        message="every member back, every replica in its quorum",
    )


@pytest.fixture
def make_immutable() -> Iterator[Callable[[Path], Callable[[], None]]]:
    """chattr +i a path, returning its undo (also run at teardown): unwritable even for root.

    Skips the test where chattr cannot do it (no chattr, not root, or a filesystem
    without inode flags, such as some overlay or tmpfs mounts).
    """
    done: list[Path] = []

    def undo(path: Path) -> None:
        if path in done:
            subprocess.run(["chattr", "-i", str(path)], check=True)
            done.remove(path)

    def immutable(path: Path) -> Callable[[], None]:
        chattr = shutil.which("chattr")
        if chattr is None:
            pytest.skip("chattr is not installed")
        result = subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"chattr +i {path} is not possible here: {result.stderr.strip()}")
        done.append(path)
        return lambda: undo(path)

    yield immutable
    for path in list(done):
        undo(path)
