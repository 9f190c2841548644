"""Multi-Region strong consistency (MRSC) in the sandbox: quorum, conflicts, replica statuses.

A table in STRONG mode has exactly three members: three replicas, or two replicas
and a witness. AWS's rules, as the sandbox keeps them:

- a Region serves writes and strongly consistent reads only while a second member
  (a replica or the witness) can take part in its quorum; otherwise it answers
  them with an error and serves eventually consistent reads only;
- a Region catching up (a restarted one, or one whose replication was paused)
  answers those with an error too until it has caught up;
- a write to an item that another Region is writing fails with
  ReplicatedWriteConflictException, which is safe to retry;
- DescribeTable reports the mode, each replica's ReplicaStatus and the witness.

The Coordinator runs in the supervisor beside the replicator (which moves the
writes) and answers the region servers' adapter (sandbox/mrsc_adapter.py) on
loopback:

- POST /prepare {"region", "table", "keys"}: before a Region applies a write.
  200 {"token"}; 409 {"error": "conflict"} when another Region holds one of the
  keys; 503 {"error": ...} without a quorum.
- POST /commit {"token", "writes": [{"keys", "image"}]}: after it applied the
  write; the replicator sends it to the other members. 200 {"acks": N}, N 0
  when none applied it within COMMIT_TIMEOUT.
- POST /release {"token"}: the Region's own write failed; nothing to send.
- GET /state?region=R: DescribeTable's MRSC fields, and whether R may serve
  writes and strongly consistent reads ("quorum").
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ddb_failover.logs import kv
from sandbox.jsonhttp import JsonHandler
from sandbox.net import wait_until
from sandbox.regions import START_TIMEOUT, Region
from sandbox.replicator import Replicator, Write

log = logging.getLogger("sandbox.quorum")

MEMBERS = 3
ACTIVE = "ACTIVE"
# Statuses during which DynamoDB counts down to removing the replica (after 20 hours).
INACCESSIBLE = ("REGION_DISABLED", "INACCESSIBLE_ENCRYPTION_CREDENTIALS")
PING_PATH = "/_sandbox/delay"  # answered by every region server before any added latency
PING_INTERVAL, PING_TIMEOUT = 0.2, 0.3
COMMIT_TIMEOUT = 1.0
# A prepared write whose region server never commits nor releases it (it died) stops
# blocking others' writes of the same items after this long.
RESERVATION_SECONDS = 5.0


@cache
def replica_statuses() -> tuple[str, ...]:
    """Every ReplicaStatus botocore's DynamoDB model knows."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("dynamodb")
    return tuple(model.shape_for("ReplicaStatus").enum)


def check_members(replicas: Iterable[str], witness: str | None) -> None:
    """ValueError unless replicas and witness make the three members STRONG mode needs."""
    names = list(replicas)
    if witness is not None and witness in names:
        raise ValueError(f"the witness {witness} must be a region without a replica")
    count = len(names) + (witness is not None)
    if count != MEMBERS:
        have = f"{len(names)} region(s)" + (f" and the witness {witness}" if witness else "")
        raise ValueError(
            "strong consistency needs exactly three members: three regions, or two regions "
            f"and --witness REGION; got {have}"
        )


@dataclass
class _Reservation:
    region: str
    table: str
    keys: frozenset[str]
    expires: float


class NoQuorum(Exception):
    """The region cannot reach a second member, or is catching up."""


class Conflict(Exception):
    """Another region is writing one of the items."""


class Coordinator:
    """Quorum, write conflicts and replica statuses of the sandbox's STRONG tables."""

    def __init__(
        self,
        replicator: Replicator,
        members: Mapping[str, str],
        witness: str | None = None,
    ) -> None:
        check_members([m for m in members if m != witness], witness)
        self.replicator = replicator
        self.members = dict(members)  # every member's name -> its server's URL
        self.witness = witness
        self._statuses = {name: ACTIVE for name in members if name != witness}
        self._inaccessible_since: dict[str, float] = {}
        self._reachable = dict.fromkeys(members, False)
        self._rejoining: set[str] = set()
        self._reservations: dict[str, _Reservation] = {}
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None
        self.conflicts = 0  # how many prepares were refused as conflicts

    # -- lifecycle --------------------------------------------------------------

    def start(self, host: str = "127.0.0.1") -> str:
        """Serve the region servers on a free port; return the URL they call."""
        self._server = ThreadingHTTPServer((host, 0), _handler(self))
        self._server.daemon_threads = True
        self._spawn(self._server.serve_forever, "quorum-http")
        for name in self.members:
            self._spawn(lambda n=name: self._watch(n), f"quorum-ping-{name}")
        return self.url

    @property
    def url(self) -> str:
        """Where the region servers reach the coordinator."""
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        """Stop serving and watching the members."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _watch(self, name: str) -> None:
        # A member counts towards a quorum while its server answers: a paused
        # (black-holed) or stopped one does not.
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(
                    f"{self.members[name]}{PING_PATH}", timeout=PING_TIMEOUT
                ) as reply:
                    reachable = reply.status == 200
            except OSError:
                reachable = False
            self._reachable[name] = reachable
            self._stop.wait(PING_INTERVAL)

    # -- quorum ----------------------------------------------------------------

    def has_quorum(self, region: str) -> bool:
        """True when region may serve writes and strongly consistent reads."""
        if region not in self.members or region == self.witness:
            return False
        if region in self._rejoining or self.replicator.behind(region):
            return False  # catching up
        return any(m != region for m in self.available())

    def prepare(self, region: str, table: str, keys: Iterable[str]) -> str:
        """Reserve keys of table for a write in region; its token. NoQuorum or Conflict."""
        wanted = frozenset(keys)
        with self._lock:
            if not self.has_quorum(region):
                raise NoQuorum(f"{region} has no quorum")
            now = time.monotonic()
            for token, held in list(self._reservations.items()):
                if held.expires < now:
                    del self._reservations[token]
                elif held.region != region and held.table == table and held.keys & wanted:
                    self.conflicts += 1
                    raise Conflict(f"{held.region} is writing the same item")
            token = str(next(self._tokens))
            self._reservations[token] = _Reservation(
                region, table, wanted, now + RESERVATION_SECONDS
            )
            return token

    def commit(self, token: str, writes: list[Write], timeout: float = COMMIT_TIMEOUT) -> int:
        """Send a prepared write to the other members; how many applied it within timeout.

        It waits for every member that can take part, not just the one a quorum
        needs, so a strongly consistent read anywhere sees the write once it returns;
        a member that misses it lags until it has applied it.
        """
        with self._lock:
            held = self._reservations.get(token)
            if held is None:
                raise ValueError(f"no prepared write {token}")
            sent = self.replicator.send(held.region, held.table, writes)
        expected = [m for m in self.available() if m != held.region]
        try:
            return sent.wait(expected, timeout)
        finally:
            self.release(token)

    def available(self) -> list[str]:
        """The members that answer and take replication."""
        return [m for m in self.members if self._reachable[m] and not self.replicator.paused(m)]

    def release(self, token: str) -> None:
        """Forget a prepared write."""
        with self._lock:
            self._reservations.pop(token, None)

    def rejoin(self, region: str) -> None:
        """Region restarted empty: it catches up from a peer before it serves again."""
        with self._lock:
            self._rejoining.add(region)
        self._spawn(lambda: self._refill(region), f"quorum-rejoin-{region}")

    def _refill(self, region: str) -> None:
        while not self._stop.is_set():
            # Under the lock no write is sent, so the copy misses none and overtakes none.
            with self._lock:
                if self.replicator.refill(region):
                    self._rejoining.discard(region)
                    log.info(kv(msg="rejoined", region=region))
                    return
            self._stop.wait(PING_INTERVAL)

    # -- what DescribeTable reports ---------------------------------------------

    def set_status(self, region: str, status: str) -> None:
        """Make DescribeTable report status for region's replica."""
        if region == self.witness:
            raise ValueError(f"{region} is the witness; replica-status applies to replicas")
        if region not in self._statuses:
            known = ", ".join(self._statuses)
            raise ValueError(f"unknown region {region!r}; replicas: {known}")
        if status not in replica_statuses():
            raise ValueError(
                f"unknown replica status {status!r}; one of {', '.join(replica_statuses())}"
            )
        with self._lock:
            self._statuses[region] = status
            if status not in INACCESSIBLE:
                self._inaccessible_since.pop(region, None)
            else:
                self._inaccessible_since.setdefault(region, time.time())

    def state(self, region: str) -> dict[str, Any]:
        """The MRSC fields of DescribeTable, and whether region has a quorum."""
        with self._lock:
            replicas = []
            for name, status in self._statuses.items():
                replica: dict[str, Any] = {"RegionName": name, "ReplicaStatus": status}
                if name in self._inaccessible_since:
                    replica["ReplicaInaccessibleDateTime"] = self._inaccessible_since[name]
                replicas.append(replica)
        witnesses = [] if self.witness is None else [self.witness]
        return {
            "MultiRegionConsistency": "STRONG",
            "Replicas": replicas,
            "GlobalTableWitnesses": [
                {"RegionName": name, "WitnessStatus": ACTIVE} for name in witnesses
            ],
            "quorum": self.has_quorum(region),
        }


def _handler(coordinator: Coordinator) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            region = urllib.parse.parse_qs(url.query).get("region", [""])[0]
            if url.path != "/state" or not region:
                self.reply(404, {"error": f"no such endpoint {self.path}"})
                return
            self.reply(200, coordinator.state(region))

        def do_POST(self) -> None:
            try:
                body = json.loads(self.read_body() or b"{}")
                if self.path == "/prepare":
                    token = coordinator.prepare(body["region"], body["table"], body["keys"])
                    self.reply(200, {"token": token})
                elif self.path == "/commit":
                    writes = [(w["keys"], w.get("image")) for w in body["writes"]]
                    self.reply(200, {"acks": coordinator.commit(body["token"], writes)})
                elif self.path == "/release":
                    coordinator.release(body["token"])
                    self.reply(200, {})
                else:
                    self.reply(404, {"error": f"no such endpoint {self.path}"})
            except Conflict as exc:
                self.reply(409, {"error": "conflict", "detail": str(exc)})
            except NoQuorum as exc:
                self.reply(503, {"error": "no quorum", "detail": str(exc)})
            except (ValueError, KeyError, TypeError) as exc:
                self.reply(400, {"error": f"bad request: {exc}"})

    return Handler


@dataclass
class StrongMembers:
    """The running members of the STRONG tables, with their replicator and coordinator."""

    regions: dict[str, Region]  # the replicas, in priority order
    witness: Region | None
    replicator: Replicator
    coordinator: Coordinator

    @property
    def all(self) -> dict[str, Region]:
        """Every member's process, the witness's included."""
        extra = {} if self.witness is None else {self.witness.name: self.witness}
        return {**self.regions, **extra}

    def close(self) -> None:
        """Stop everything; safe to call twice."""
        self.coordinator.stop()
        self.replicator.stop()
        for region in self.all.values():
            region.close()


def start_members(
    names: Sequence[str],
    witness: str | None,
    tables: Sequence[str],
    canary: Mapping[str, str],
    workdir: Path,
) -> StrongMembers:
    """Start the replicas and witness of STRONG tables, then write the canary once."""
    check_members(names, witness)
    key, value = canary["key"], canary["value"]
    regions = {name: Region(name, tables, key, value, workdir) for name in names}
    witness_region = None if witness is None else Region(witness, (), "", "", workdir, witness=True)
    replicator = Replicator(
        {name: region.url for name, region in regions.items()},
        tables,
        synchronous=True,
        witness=None if witness_region is None else (witness_region.name, witness_region.url),
    )
    urls = {name: region.url for name, region in regions.items()}
    if witness_region is not None:
        urls[witness_region.name] = witness_region.url
    members = StrongMembers(
        regions, witness_region, replicator, Coordinator(replicator, urls, witness)
    )
    try:
        url = members.coordinator.start()
        for region in members.all.values():
            region.coordinator_url = url
        with ThreadPoolExecutor(max_workers=MEMBERS) as pool:  # each takes seconds to start
            list(pool.map(Region.start, members.all.values()))
        replicator.start()
        primary = next(iter(regions.values()))
        wait_until(
            lambda: members.coordinator.has_quorum(primary.name),
            START_TIMEOUT,
            message=f"a quorum for {primary.name}",
        )
        for table in tables:
            primary.put_canary(table)
    except BaseException:
        members.close()
        raise
    return members
