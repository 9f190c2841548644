"""Secret files readable by others are named at start, by the responder and the exporter."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ddb_failover.config import load
from ddb_failover.secret_files import exposed, exposed_secrets, secret_paths
from responder.cli.main import main

RESPONDER_TESTDATA = Path(__file__).parents[1] / "responder" / "testdata"
TOKEN = "x" * 40


def secret(path: Path, mode: int) -> Path:
    path.write_text(TOKEN + "\n")
    path.chmod(mode)
    return path


def responder_config(tmp_path: Path, token_file: Path) -> Path:
    data = yaml.safe_load((RESPONDER_TESTDATA / "web_good.yml").read_text())
    data["responder"]["webhook_token"] = {"file": str(token_file)}
    path = tmp_path / "ddb-failover.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mode", "who"),
    [
        (0o644, "its group and every user (mode 0644)"),
        (0o640, "its group (mode 0640)"),
        (0o604, "every user (mode 0604)"),
    ],
)
def test_group_or_world_readable_files_are_named(tmp_path: Path, mode: int, who: str) -> None:
    path = secret(tmp_path / "token", mode)
    assert exposed([path]) == [
        f"secret file {path} is readable by {who}: give it to the service's user with "
        "mode 0600 (docs/deploy.md)"
    ]


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700, 0o620, 0o602])
def test_owner_only_readable_files_pass(tmp_path: Path, mode: int) -> None:
    assert exposed([secret(tmp_path / "token", mode)]) == []


def test_a_missing_file_is_left_to_the_reader(tmp_path: Path) -> None:
    assert exposed([tmp_path / "absent"]) == []


def test_a_link_is_judged_by_its_target(tmp_path: Path) -> None:
    # Kubernetes and compose secrets are often links to the real file.
    target = secret(tmp_path / "real", 0o644)
    link = tmp_path / "token"
    link.symlink_to(target)
    assert len(exposed([link])) == 1
    target.chmod(0o600)
    assert exposed([link]) == []


def test_every_secret_file_of_the_config_and_the_sdk_credentials(tmp_path: Path) -> None:
    token = secret(tmp_path / "webhook-token", 0o600)
    config = load(responder_config(tmp_path, token))
    credentials = tmp_path / "aws-credentials"
    environ = {"AWS_SHARED_CREDENTIALS_FILE": str(credentials)}
    assert secret_paths(config, environ) == [token, credentials]
    assert secret_paths(config, {}) == [token]
    assert exposed_secrets(config, environ) == []
    secret(credentials, 0o644)
    assert [w.split(" is ")[0] for w in exposed_secrets(config, environ)] == [
        f"secret file {credentials}"
    ]


def test_the_responder_warns_at_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = secret(tmp_path / "webhook-token", 0o644)
    config = responder_config(tmp_path, token)
    assert main(["check-config", "--config", str(config)]) == 0
    err = capsys.readouterr().err
    assert f"ddb-responder: warning: secret file {token} is readable by its group" in err
    assert TOKEN not in err
    token.chmod(0o600)
    assert main(["check-config", "--config", str(config)]) == 0
    assert "secret file" not in capsys.readouterr().err


def test_the_exporter_warns_at_start(tmp_path: Path) -> None:
    credentials = tmp_path / "aws-credentials"
    credentials.write_text("[default]\naws_access_key_id = x\naws_secret_access_key = y\n")
    credentials.chmod(0o644)
    config = tmp_path / "exporter.yml"
    data = {
        "tables": ["wordpress_posts"],
        "canary": {"key": "id", "value": "ping"},
        "regions": [{"name": "us-east-1"}, {"name": "eu-west-1"}],
    }
    with socket.socket() as taken:  # a port it cannot take: it stops right away
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        data["exporter"] = {"listen": f"127.0.0.1:{taken.getsockname()[1]}"}
        config.write_text(yaml.safe_dump(data))
        result = run_exporter(config, credentials)
    assert result.returncode != 0
    assert 'msg="secret file readable by others"' in result.stderr, result.stderr
    assert f"secret file {credentials} is readable by its group and every user" in result.stderr
    assert "aws_secret_access_key" not in result.stderr


def run_exporter(config: Path, credentials: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "PATH": "/usr/bin:/bin"},
    )
