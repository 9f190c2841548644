"""HTTPS and mTLS natively: gunicorn serves responder.tls; a real Alertmanager delivers over it."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
import yaml

from sandbox.net import free_port, wait_until
from sandbox.stack import stop_process
from tests.responder.weblib import OPERATOR, VIEWER, Responder, auth, http, write_config

pytestmark = pytest.mark.slow


@dataclass
class Pki:
    """A CA made for this test, a server certificate for loopback, a client certificate."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path

    def context(self, client: bool = True) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if client:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("alertmanager.test", common_name="alertmanager")
    paths = Pki(*(directory / n for n in ("ca.pem", "cert.pem", "key.pem", "c.pem", "ck.pem")))
    ca.cert_pem.write_to_path(str(paths.ca))
    server.cert_chain_pems[0].write_to_path(str(paths.cert))
    server.private_key_pem.write_to_path(str(paths.key))
    client.cert_chain_pems[0].write_to_path(str(paths.client_cert))
    client.private_key_pem.write_to_path(str(paths.client_key))
    return paths


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Responder]:
    directory = tmp_path_factory.mktemp("tls")
    port = free_port()
    tls = {"cert_file": str(pki.cert), "key_file": str(pki.key), "client_ca_file": str(pki.ca)}
    config = write_config(directory, listen=f"127.0.0.1:{port}", extra={"tls": tls})
    server = Responder(config, directory, workers=1, port=port, context=pki.context()).start()
    yield server
    server.stop()


def test_https_with_a_client_certificate_and_nothing_less(served: Responder, pki: Pki) -> None:
    assert http("GET", f"{served.url}/healthz", context=pki.context())[0] == 200
    status, body = http("GET", f"{served.url}/api/v1/status", None, auth(VIEWER), pki.context())
    assert status == 200 and body["active_region"] == "us-east-1"
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        http("GET", f"{served.url}/healthz", context=pki.context(client=False))
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        http("GET", served.url.replace("https://", "http://") + "/healthz")
    untrusting = ssl.create_default_context()  # the system's CAs do not know ours
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        http("GET", f"{served.url}/healthz", context=untrusting)


def test_the_cli_speaks_mtls(served: Responder, pki: Pki) -> None:
    files = ["--cacert", str(pki.ca), "--cert", str(pki.client_cert), "--key", str(pki.client_key)]
    done = subprocess.run(
        [sys.executable, "-m", "responder", "status", "--config", str(served.config), *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "active region:  us-east-1" in done.stdout
    token = served.config.parent / "operator-token"
    assert token.read_text().strip() == OPERATOR
    refused = subprocess.run(
        [sys.executable, "-m", "responder", "status", "--config", str(served.config),
         "--cacert", str(pki.ca)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1 and "cannot reach the responder" in refused.stderr


def test_alertmanager_delivers_over_mtls(served: Responder, pki: Pki, tmp_path: Path) -> None:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary, "Debian's prometheus-alertmanager is installed by the bootstrap"
    receiver = {
        "name": "responder",
        "webhook_configs": [
            {
                "url": f"{served.url}/webhook",
                "send_resolved": True,
                "http_config": {
                    "authorization": {
                        "type": "Bearer",
                        "credentials_file": str(served.config.parent / "webhook-token"),
                    },
                    "tls_config": {
                        "ca_file": str(pki.ca),
                        "cert_file": str(pki.client_cert),
                        "key_file": str(pki.client_key),
                    },
                },
            }
        ],
    }
    config = {
        "route": {"receiver": "responder", "group_wait": "1s", "group_interval": "1s"},
        "receivers": [receiver],
    }
    (tmp_path / "am.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ok(f"{url}/-/ready"), 30, 0.2, "alertmanager ready")
        alert = [{"labels": {"alertname": "Watchdog", "severity": "none"}}]
        request = urllib.request.Request(
            f"{url}/api/v2/alerts",
            data=json.dumps(alert).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=5).close()

        def delivered() -> bool:
            history = http(
                "GET", f"{served.url}/api/v1/history", None, auth(VIEWER), pki.context()
            )[1]
            return any("Watchdog" in d["reason"] for d in history["decisions"])

        wait_until(delivered, 30, 0.3, "the notification over mTLS")
    finally:
        stop_process(process)


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
