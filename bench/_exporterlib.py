"""Shared by the exporter benchmarks: run the exporter as deployed, scrape it, read its memory."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox"}


def _pump(stream: IO[bytes], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line.decode(errors="replace"))


def start_exporter(config: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Run `python -m exporter` on a free port; the process and its URL once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--config", str(config), "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        env={**os.environ, **CREDENTIALS},
        start_new_session=True,
    )
    assert process.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stderr, lines), daemon=True).start()
    deadline = time.monotonic() + 30
    while True:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if "msg=listening" in line:
            return process, "http://" + line.split("address=")[1].split()[0]


def scrape(url: str) -> tuple[float, bytes]:
    """GET /metrics: seconds taken and the body."""
    started = time.perf_counter()
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        body = response.read()
    return time.perf_counter() - started, body


def rss_mb(pid: int) -> tuple[float, float]:
    """A process's resident memory now and at its peak (VmRSS, VmHWM), in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        fields[key] = rest.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
