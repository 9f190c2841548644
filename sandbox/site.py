"""A WordPress stand-in for one sandbox region, and the reload command that goes with it.

    python -m sandbox.site serve --region R --port P --env-file F --table T --host-name H \\
        --endpoint REGION=URL [--endpoint ...]
    python -m sandbox.site reload --dir DIR

The site serves one virtual host, H (nginx's server_name); any other Host header gets
404, so a prober that forgets the header fails, as it would against the real front.

- ``GET /`` renders the newest post (the item with the latest ``post_date``) of table T
  in the DynamoDB region the env file names (``DYNAMODB_REGION=...``, as the seed's
  nginx/PHP-FPM setup passes it to WordPress); 500 when that region cannot be read, as
  WordPress's "Error establishing a database connection".
- ``GET /healthz`` is 200 only when the site can read its own region's replica of T (a
  consistent read of the canary item): the web tier and the data it would serve from
  once traffic is here. 503 otherwise, with the reason.
- ``POST /posts`` ``{"id", "title"}`` stores a post in the DynamoDB region the env file
  names (201), or answers 503 while the env file says ``WP_READ_ONLY=1`` (the switchover's
  fence: WordPress in maintenance mode).
- ``GET /_sandbox/config`` says which DynamoDB region the site reads now and whether it is
  read-only (no DynamoDB call), for the reload command to confirm a reload.

SIGHUP re-reads the env file (PHP-FPM's reload); SIGTERM stops the site. Every answer
carries ``X-Site-Region`` and ``X-DynamoDB-Region``.

``reload`` is the env_file action's reload command in the sandbox: it sends SIGHUP to
every site that runs in the stack of DIR (stack.json) and waits until each one reads
the region (and read-only flag) the env file names; exit 1 naming the sites that did not.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sandbox.jsonhttp import JsonHandler
from sandbox.net import serve_until_stopped

VARIABLE = "DYNAMODB_REGION"
READ_ONLY = "WP_READ_ONLY"  # 1: the site refuses writes (a switchover's fence); 0: it takes them
POST_MARKER = "post_title"  # items with it are posts; heartbeats and the canary are not
READ_TIMEOUT_SECONDS = 1.0
RELOAD_TIMEOUT_SECONDS = 5.0
SITE_PREFIX = "site:"
ENV_FILE = "wordpress/dynamodb.env"  # under the stack's directory


def read_env(env_file: Path, variable: str = VARIABLE) -> str | None:
    """The value of variable in an env file (the last assignment wins), or None."""
    try:
        text = env_file.read_text(encoding="utf-8")
    except OSError:
        return None
    value = None
    for line in text.splitlines():
        name, sep, raw = line.strip().removeprefix("export ").partition("=")
        if sep and name.strip() == variable:
            value = raw.strip().strip("\"'")
    return value or None


def read_region(env_file: Path) -> str | None:
    """The value of DYNAMODB_REGION in an env file, or None."""
    return read_env(env_file)


def read_only(env_file: Path) -> bool:
    """True when the env file sets WP_READ_ONLY=1 (the switchover's fence)."""
    return read_env(env_file, READ_ONLY) == "1"


def newest_post(items: list[dict[str, Any]]) -> dict[str, str] | None:
    """The post with the latest post_date among scanned items, as plain strings."""
    posts = [
        {key: next(iter(value.values())) for key, value in item.items()}
        for item in items
        if POST_MARKER in item
    ]
    return max(posts, key=lambda post: post.get("post_date", "")) if posts else None


def _page(post: dict[str, str] | None, region: str, dynamodb_region: str) -> bytes:
    title = html.escape(post.get("post_title", "")) if post else "No posts yet"
    body = html.escape(post.get("post_content", "")) if post else ""
    date = html.escape(post.get("post_date", "")) if post else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title></head><body><article><h1>{title}</h1>"
        f"<time>{date}</time><p>{body}</p></article>"
        f"<footer>Served from {html.escape(region)}, posts read from DynamoDB "
        f"{html.escape(dynamodb_region)}.</footer></body></html>"
    ).encode()


class Site:
    """One region's WordPress: its clients per DynamoDB region and the region it reads now."""

    def __init__(
        self,
        region: str,
        env_file: Path,
        table: str,
        canary: tuple[str, str],
        host_name: str,
        endpoints: dict[str, str],
    ) -> None:
        from sandbox.regions import dynamodb_client  # boto3: only the serving process needs it

        if region not in endpoints:
            raise ValueError(f"no --endpoint for the site's own region {region}")
        self.region = region
        self.env_file = env_file
        self.table = table
        self.canary = {canary[0]: {"S": canary[1]}}
        self.host_name = host_name
        self.clients = {
            name: dynamodb_client(name, url, timeout=READ_TIMEOUT_SECONDS)
            for name, url in endpoints.items()
        }
        self.reloads = 0
        self.read_only = False
        self.dynamodb_region = self.reload()

    def reload(self) -> str:
        """Re-read the env file; keep the region it named last when it names none."""
        found = read_region(self.env_file)
        if found is not None:
            self.dynamodb_region = found
        self.read_only = read_only(self.env_file)
        self.reloads += 1
        return self.dynamodb_region

    def write_post(self, body: Any) -> tuple[int, dict[str, Any]]:
        """Store a post ({"id", "title"}) in the DynamoDB region the env file names; 503
        while read-only, as WordPress in maintenance mode."""
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) and body.get(k) for k in ("id", "title")
        ):
            return 400, {"error": 'body must be {"id": "...", "title": "..."}'}
        region = self.dynamodb_region
        if self.read_only:
            return 503, {"error": "read-only: writes are fenced", "region": region}
        item = {
            next(iter(self.canary)): {"S": body["id"]},
            "post_title": {"S": body["title"]},
            "post_date": {"S": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())},
        }
        try:
            self.clients[region].put_item(TableName=self.table, Item=item)
        except Exception as exc:  # WordPress's "could not save": the write is not acknowledged
            return 500, {"error": f"write failed: {type(exc).__name__}", "region": region}
        return 201, {"id": body["id"], "region": region}

    def health(self) -> tuple[int, dict[str, Any]]:
        """200 when the own region's replica answers a consistent read of the canary."""
        about: dict[str, Any] = {"region": self.region, "table": self.table}
        try:
            item = self.clients[self.region].get_item(
                TableName=self.table, Key=self.canary, ConsistentRead=True
            )
        except Exception as exc:  # any failure to read is an unhealthy site
            return 503, {**about, "status": "unhealthy", "error": type(exc).__name__}
        if "Item" not in item:
            return 503, {**about, "status": "unhealthy", "error": "canary item missing"}
        return 200, {**about, "status": "ok"}

    def front_page(self) -> tuple[int, bytes]:
        """The newest post, read from the region the env file names."""
        region = self.dynamodb_region
        client = self.clients.get(region)
        if client is None:
            return 500, f"Unknown DYNAMODB_REGION {html.escape(region)}".encode()
        try:
            scanned = client.scan(TableName=self.table, ConsistentRead=True)
        except Exception:  # WordPress shows one page for every database failure
            return 500, b"<h1>Error establishing a database connection</h1>"
        return 200, _page(newest_post(scanned.get("Items", [])), self.region, region)


def make_server(site: Site, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """The site's HTTP server on host:port."""

    class Handler(JsonHandler):
        server_version = "wordpress-sandbox"

        def _headers(self) -> dict[str, str]:
            return {"X-Site-Region": site.region, "X-DynamoDB-Region": site.dynamodb_region}

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/_sandbox/config":
                about = {"region": site.region, "dynamodb_region": site.dynamodb_region}
                self.reply(200, {**about, "read_only": site.read_only})
                return
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
            if host != site.host_name:
                self.reply(404, {"error": f"no site for host {host!r}"}, self._headers())
                return
            if path == "/healthz":
                code, body = site.health()
                self.reply(code, body, self._headers())
            elif path == "/":
                code, page = site.front_page()
                self.send_response(code)
                for name, value in self._headers().items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
            else:
                self.reply(404, {"error": f"no page {path}"}, self._headers())

        def do_POST(self) -> None:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
            if host != site.host_name or self.path != "/posts":
                self.reply(404, {"error": f"no page {self.path}"}, self._headers())
                return
            try:
                body = json.loads(self.read_body() or b"null")
            except ValueError:
                body = None
            code, answer = site.write_post(body)
            self.reply(code, answer, self._headers())

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve(args: argparse.Namespace) -> int:
    """Run one site until SIGTERM; SIGHUP reloads the env file."""
    endpoints = dict(pair.split("=", 1) for pair in args.endpoint)
    key, _, value = args.canary.partition("=")
    site = Site(
        args.region,
        Path(args.env_file),
        args.table,
        (key, value),
        args.host_name.lower(),
        endpoints,
    )
    server = make_server(site, args.host, args.port)
    signal.signal(signal.SIGHUP, lambda *_: site.reload())
    from sandbox.region_server import _exit_when_orphaned

    threading.Thread(target=_exit_when_orphaned, args=(server,), daemon=True).start()
    print(
        f"listening address={args.host}:{server.server_address[1]} region={site.region} "
        f"dynamodb_region={site.dynamodb_region}",
        file=sys.stderr,
        flush=True,
    )
    serve_until_stopped(server)
    return 0


def _reads(url: str) -> tuple[str, bool]:
    with urllib.request.urlopen(f"{url}/_sandbox/config", timeout=1) as response:
        about = json.load(response)
        return str(about["dynamodb_region"]), bool(about.get("read_only"))


def reload_sites(directory: Path, timeout: float = RELOAD_TIMEOUT_SECONDS) -> list[str]:
    """SIGHUP every running site of the stack in directory; the sites that did not follow."""
    state = json.loads((directory / "stack.json").read_text())
    sites = {
        name: entry
        for name, entry in state.get("components", {}).items()
        if name.startswith(SITE_PREFIX) and entry.get("pid")
    }
    wanted = (read_region(directory / ENV_FILE), read_only(directory / ENV_FILE))
    lagging = []
    for name, entry in sites.items():
        try:
            os.kill(int(entry["pid"]), signal.SIGHUP)
        except ProcessLookupError:
            continue  # stopped meanwhile: it reads the file when it starts again
        deadline = time.monotonic() + timeout
        while True:
            try:
                if _reads(entry["url"]) == wanted:
                    break
            except OSError:
                pass
            if time.monotonic() >= deadline:
                lagging.append(name)
                break
            time.sleep(0.02)
    return lagging


def main(argv: list[str] | None = None) -> int:
    """Serve a site, or reload every site of a stack."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.site", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="serve one region's site until SIGTERM")
    run.add_argument("--region", required=True)
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--env-file", required=True)
    run.add_argument("--table", required=True)
    run.add_argument("--canary", required=True, help="KEY=VALUE of the canary item")
    run.add_argument("--host-name", required=True, help="the virtual host served")
    run.add_argument("--endpoint", action="append", required=True, help="REGION=URL")
    reload = sub.add_parser("reload", help="SIGHUP every site of a running stack and confirm")
    reload.add_argument("--dir", required=True, type=Path)
    reload.add_argument(
        "--timeout-seconds",
        type=float,
        default=RELOAD_TIMEOUT_SECONDS,
        help="how long each site may take to follow",
    )
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    try:
        lagging = reload_sites(args.dir, args.timeout_seconds)
    except (OSError, ValueError) as exc:
        print(f"sandbox.site reload: no running stack in {args.dir}: {exc}", file=sys.stderr)
        return 1
    if lagging:
        print(f"sandbox.site reload: not reloaded: {', '.join(lagging)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
