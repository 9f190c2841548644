"""The sandbox's Global Load Balancer front: users' requests go to one region's site.

    python -m sandbox.glb --port P --do-api URL --load-balancer-id ID --host-name H \\
        --target SLUG=SITE_URL [--target ...] [--check-interval-seconds 1] ...

It follows the Global Load Balancer's configuration in the DigitalOcean API sandbox
(``glb_settings.region_priorities`` and ``failover_threshold``, read from the sandbox's
own state every half second, as DigitalOcean's data plane follows its control plane
without spending the API's rate limit), and health-checks every region's site itself
(``GET /healthz`` with ``Host: H``; a target turns unhealthy after
``--unhealthy-threshold`` failed checks in a row and healthy again after
``--healthy-threshold`` good ones, as DigitalOcean's health checks do, only faster).

Each request goes to the region with the lowest priority number unless more than
``failover_threshold`` percent of its targets are unhealthy (the sandbox has one target
per region, its site, so a dead site moves traffic on at any threshold under 100), then
to the next; when every region is past the threshold, to the first anyway (fail open:
a region that might answer beats a certain error). The region's DigitalOcean slug is in
the answer's ``X-GLB-Region`` header; the site adds its own ``X-Site-Region``. 502 when
the site refuses the connection, 504 when it does not answer in time.

``GET /_sandbox/glb`` (any Host) shows the configuration it follows, each target's
health and the region it would pick now.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from sandbox.jsonhttp import JsonHandler
from sandbox.net import serve_until_stopped

CONTROL_PATH = "/_sandbox/glb"
FORWARD_TIMEOUT_SECONDS = 5.0
# Not forwarded: they describe one connection, not the request (RFC 9110, 7.6.1).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
}


@dataclass
class Health:
    """One target's health as the load balancer's own checks see it."""

    healthy: bool = True
    successes: int = 0
    failures: int = 0
    last_error: str | None = None

    def record(self, ok: bool, error: str | None, healthy_after: int, unhealthy_after: int) -> None:
        """Count a check; flip the state after enough of the same result in a row."""
        if ok:
            self.successes, self.failures, self.last_error = self.successes + 1, 0, None
            if self.successes >= healthy_after:
                self.healthy = True
        else:
            self.successes, self.failures, self.last_error = 0, self.failures + 1, error
            if self.failures >= unhealthy_after:
                self.healthy = False


def pick(
    priorities: Mapping[str, int],
    threshold: int,
    unhealthy_percent: Mapping[str, float],
) -> str | None:
    """The region traffic goes to: the first by priority not past the failure threshold."""
    ordered = [slug for slug, _ in sorted(priorities.items(), key=lambda kv: (kv[1], kv[0]))]
    ordered = [slug for slug in ordered if slug in unhealthy_percent]
    for slug in ordered:
        if unhealthy_percent[slug] <= threshold:
            return slug
    return ordered[0] if ordered else None


@dataclass
class Balancer:
    """What the front knows: its targets, the GLB's settings, and each target's health."""

    targets: dict[str, str]
    host_name: str
    priorities: dict[str, int] = field(default_factory=dict)
    threshold: int = 50
    config_error: str | None = None
    health: dict[str, Health] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.health = {slug: Health() for slug in self.targets}

    def choose(self) -> str | None:
        """The DigitalOcean region slug the next request goes to."""
        with self.lock:
            unhealthy = {
                slug: 0.0 if health.healthy else 100.0 for slug, health in self.health.items()
            }
            return pick(self.priorities, self.threshold, unhealthy)

    def view(self) -> dict[str, Any]:
        """The control endpoint's document."""
        with self.lock:
            health = {slug: vars(h).copy() for slug, h in self.health.items()}
            about = {
                "region_priorities": dict(self.priorities),
                "failover_threshold": self.threshold,
                "config_error": self.config_error,
                "targets": dict(self.targets),
            }
        return {**about, "health": health, "serving": self.choose()}


def read_settings(do_api: str, load_balancer_id: str) -> tuple[dict[str, int], int]:
    """The Global Load Balancer's region priorities and failover threshold, from the sandbox."""
    with urllib.request.urlopen(f"{do_api}/_sandbox/state", timeout=2) as response:
        state = json.load(response)
    for balancer in state["load_balancers"]:
        if balancer["id"] == load_balancer_id:
            settings = balancer.get("glb_settings") or {}
            priorities = {
                str(k): int(v) for k, v in (settings.get("region_priorities") or {}).items()
            }
            return priorities, int(settings.get("failover_threshold") or 0)
    raise LookupError(f"no load balancer {load_balancer_id} in the DigitalOcean sandbox")


def check(url: str, host_name: str, path: str, timeout: float) -> str | None:
    """One health check: None when it answered 200, else what went wrong."""
    request = urllib.request.Request(f"{url}{path}", headers={"Host": host_name})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except urllib.error.URLError as exc:  # the socket's own error, e.g. ConnectionRefusedError
        reason = exc.reason
        return type(reason).__name__ if isinstance(reason, BaseException) else str(reason)
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__


def run_every(interval: float, stop: threading.Event, work: Any) -> None:
    """Call work() every interval seconds until stop is set."""
    while not stop.is_set():
        started = time.monotonic()
        work()
        stop.wait(max(0.0, interval - (time.monotonic() - started)))


def make_server(balancer: Balancer, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """The front's HTTP server: the control endpoint, and every other request forwarded."""

    class Handler(JsonHandler):
        server_version = "glb-sandbox"

        def do_GET(self) -> None:
            if self.path == CONTROL_PATH:
                self.reply(200, balancer.view())
            else:
                self._forward()

        def do_HEAD(self) -> None:
            self._forward()

        def do_POST(self) -> None:
            self._forward()

        def _forward(self) -> None:
            slug = balancer.choose()
            if slug is None:
                self.reply(503, {"error": "no region has a priority and a target"})
                return
            target = urllib.parse.urlsplit(balancer.targets[slug])
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Host"] = balancer.host_name
            body = self.read_body() if self.headers.get("Content-Length") else None
            connection = http.client.HTTPConnection(
                target.hostname or "127.0.0.1", target.port, timeout=FORWARD_TIMEOUT_SECONDS
            )
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
            except TimeoutError:
                self.reply(504, {"error": f"{slug} did not answer in time"}, {"X-GLB-Region": slug})
                return
            except (OSError, http.client.HTTPException) as exc:
                error = f"{slug}: {type(exc).__name__}"
                self.reply(502, {"error": error}, {"X-GLB-Region": slug})
                return
            finally:
                connection.close()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP | {"content-length", "server", "date"}:
                    self.send_header(name, value)
            self.send_header("X-GLB-Region", slug)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    """Serve the front until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.glb", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--do-api", required=True, help="the DigitalOcean API sandbox's URL")
    parser.add_argument("--load-balancer-id", required=True)
    parser.add_argument("--host-name", required=True, help="the Host the sites serve")
    parser.add_argument("--target", action="append", required=True, help="SLUG=SITE_URL")
    parser.add_argument("--health-path", default="/healthz")
    parser.add_argument("--check-interval-seconds", type=float, default=1.0)
    parser.add_argument("--check-timeout-seconds", type=float, default=2.0)
    parser.add_argument("--healthy-threshold", type=int, default=2)
    parser.add_argument("--unhealthy-threshold", type=int, default=3)
    parser.add_argument("--config-interval-seconds", type=float, default=0.5)
    args = parser.parse_args(argv)
    targets = dict(pair.split("=", 1) for pair in args.target)
    balancer = Balancer({s: u.rstrip("/") for s, u in targets.items()}, args.host_name)
    stop = threading.Event()

    def follow_config() -> None:
        try:
            priorities, threshold = read_settings(args.do_api, args.load_balancer_id)
        except (OSError, ValueError, LookupError, KeyError) as exc:
            with balancer.lock:
                balancer.config_error = str(exc)  # keep serving by the last known settings
            return
        with balancer.lock:
            balancer.priorities, balancer.threshold = priorities, threshold
            balancer.config_error = None

    def checker(slug: str) -> Any:
        def check_one() -> None:
            url = balancer.targets[slug]
            error = check(url, args.host_name, args.health_path, args.check_timeout_seconds)
            with balancer.lock:
                balancer.health[slug].record(
                    error is None, error, args.healthy_threshold, args.unhealthy_threshold
                )

        return check_one

    follow_config()  # serve by the real settings from the first request on
    # One checker per target: a black-holed region must not delay the others' checks.
    work = [(args.config_interval_seconds, follow_config)]
    work += [(args.check_interval_seconds, checker(slug)) for slug in balancer.targets]
    for interval, job in work:
        threading.Thread(target=run_every, args=(interval, stop, job), daemon=True).start()
    server = make_server(balancer, args.host, args.port)
    from sandbox.region_server import _exit_when_orphaned

    threading.Thread(target=_exit_when_orphaned, args=(server,), daemon=True).start()
    print(f"listening address={args.host}:{server.server_address[1]}", file=sys.stderr, flush=True)
    serve_until_stopped(server)
    stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
