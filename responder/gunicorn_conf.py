"""gunicorn settings for the responder: `gunicorn -c responder/gunicorn_conf.py`.

Workers, threads and bind come from the environment and the config file;
metrics follow prometheus_client's multiprocess rules; each worker starts
its reconciler runner once it has loaded the app.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import ssl
import tempfile
from pathlib import Path
from typing import Any

# prometheus_client picks its value class at import: the directory must be set before
# anything imports it, here in the master, and inherited by every worker.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
if not os.environ.get(MULTIPROC_ENV):
    os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="ddb-responder-metrics-")

from ddb_failover.config import CONFIG_ENV, ConfigError, ResponderConfig, load  # noqa: E402


def _responder() -> ResponderConfig:
    """The config's responder section (bind address, TLS)."""
    try:
        return load(os.environ.get(CONFIG_ENV)).responder
    except ConfigError as exc:
        # gunicorn would only say "app failed to load"; name the problem here.
        raise SystemExit(f"ddb-responder: {exc}") from None


_settings = _responder()
wsgi_app = "responder.app:create_app_from_env()"
bind = [_settings.listen]
if _settings.tls is not None:
    certfile = str(_settings.tls.cert_file)
    keyfile = str(_settings.tls.key_file)
    if _settings.tls.client_ca_file is not None:
        ca_certs = str(_settings.tls.client_ca_file)
        cert_reqs = ssl.CERT_REQUIRED
workers = int(os.environ.get("DDB_RESPONDER_WORKERS") or os.environ.get("WEB_CONCURRENCY") or 2)
# gthread, with each request head read in the worker's poller (10 s deadline, 431 over
# 64 KiB): an idle client or one that sends half its headers holds no thread. A client that
# sends its body slowly still holds one, so every worker keeps enough that fifty such clients
# cannot starve Alertmanager (measured: docs/security.md). Threads also keep the webhook
# answering while another request waits on the store's write lock.
worker_class = "responder.gunicorn_worker.HeadFirstWorker"
threads = int(os.environ.get("DDB_RESPONDER_THREADS") or 64)
timeout = 30
graceful_timeout = 10
keepalive = 5
# Each worker builds its own app after fork: no store handles or threads cross a fork.
preload_app = False
proc_name = "ddb-responder"
# gunicorn's control socket defaults to one path per user: two responders would clash.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Wipe the metrics directory: values of a previous run must not leak into this one."""
    path = Path(os.environ[MULTIPROC_ENV])
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def post_worker_init(worker: Any) -> None:
    """Start this worker's reconciler, plan and notification loops; the app exists only here."""
    from responder.app import (
        notifier_of,
        plan_runner_of,
        practice_loop_of,
        runner_of,
        serves_responder,
    )

    if serves_responder(worker.wsgi):  # the benchmark's bare baseline app has no runner
        runner_of(worker.wsgi).start()
        plan_runner_of(worker.wsgi).start()
        notifier_of(worker.wsgi).start()
        practice_loop_of(worker.wsgi).start()
    # What the worker built lives as long as it does: out of the collector's full passes,
    # whose pauses otherwise land on whichever webhook is being answered.
    gc.freeze()


def worker_exit(server: Any, worker: Any) -> None:
    """Stop the loops so they release the lease, the plan lock and notice claims first;
    then close the store, which writes the repeat counts still in memory."""
    from responder.app import (
        notifier_of,
        plan_runner_of,
        practice_loop_of,
        runner_of,
        serves_responder,
        store_of,
    )

    wsgi = getattr(worker, "wsgi", None)
    if wsgi is not None and serves_responder(wsgi):
        plan_runner_of(wsgi).stop(timeout=1.0)  # nothing of its own to finish
        practice_loop_of(wsgi).stop(timeout=5.0)  # a round releases the lease
        runner_of(wsgi).stop(timeout=5.0)
        notifier_of(wsgi).stop(timeout=5.0)
        from responder.state.store import StoreError

        with contextlib.suppress(StoreError):  # unreachable: those counts are lost
            store_of(wsgi).close()


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges (client_python's multiprocess rule)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
