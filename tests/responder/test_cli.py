"""ddb-responder: check-config on good and bad files, and the API commands against gunicorn."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from responder.cli.main import main, parse_args
from sandbox.net import free_port
from tests.conftest import RegionFactory
from tests.responder.fakes import KEYS
from tests.responder.weblib import TOKEN, Responder, put_heartbeat, write_config

TESTDATA = Path(__file__).parent / "testdata"
CONFIG_TESTDATA = Path(__file__).parents[1] / "config" / "testdata"


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDB_TEST_WEBHOOK_TOKEN", TOKEN)


def test_check_config_prints_a_summary(token_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(TESTDATA / "web_good.yml")]) == 0
    out = capsys.readouterr().out
    assert "regions: us-east-1, eu-west-1 (primary us-east-1)" in out
    assert "failback=manual" in out and "dry_run=true" in out
    assert f"audit:   key {KEYS.current.id}\n" in out  # its fingerprint, never the key
    assert KEYS.current.secret.decode() not in out
    assert "  wp-env (env_file)" in out and "  command (command)" in out
    # No regions[].site: valid, but the responder cannot see WordPress; it says so.
    assert (
        "warning: regions.1.site: not set: the responder cannot tell whether WordPress answers "
        "in eu-west-1, and would move traffic there on DynamoDB's readiness alone"
    ) in out


def test_check_config_names_strongly_consistent_tables_and_their_witness(
    token_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load((TESTDATA / "web_good.yml").read_text())
    data["tables"] = ["wordpress_posts", "wordpress_sessions"]
    data["responder"].update(
        consistency="strong", witness="us-west-2", tables={"wordpress_sessions": {}}
    )
    path = tmp_path / "strong.yml"
    path.write_text(yaml.safe_dump(data))
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "tables:  wordpress_posts (strong: RPO 0, witness us-west-2), wordpress_sessions\n" in out
    )


def test_check_config_is_quiet_with_a_site_for_every_region(
    token_env: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = (TESTDATA / "web_good.yml").read_text()
    sites = (
        "regions:\n"
        "  - {name: us-east-1, site: {health_url: 'http://lb-us/healthz'}}\n"
        "  - {name: eu-west-1, site: {health_url: 'http://lb-eu/healthz', host: www.example.com}}"
    )
    path = tmp_path / "with-sites.yml"
    path.write_text(text.replace("regions: [{name: us-east-1}, {name: eu-west-1}]", sites))
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "config OK" in out and "warning" not in out


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (TESTDATA / "web_bad_policy.yml", "responder.policy.failback"),
        (TESTDATA / "web_bad_policy.yml", "responder.policy.max_transitions_per_hour"),
        (CONFIG_TESTDATA / "bad-listen.yml", "exporter.listen: must be HOST:PORT"),
        (CONFIG_TESTDATA / "bad-yaml-syntax.yml", "not valid YAML"),
        (TESTDATA / "web_missing.yml", "cannot read"),
    ],
)
def test_check_config_rejects_bad_files_with_exit_2(
    token_env: None, capsys: pytest.CaptureFixture[str], path: Path, message: str
) -> None:
    assert main(["check-config", "--config", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_check_config_needs_the_webhook_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DDB_TEST_WEBHOOK_TOKEN", raising=False)
    assert main(["check-config", "--config", str(TESTDATA / "web_good.yml")]) == 2
    err = capsys.readouterr().err
    assert "responder.webhook_token" in err and "DDB_TEST_WEBHOOK_TOKEN" in err


def test_check_config_refuses_two_tokens_with_one_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    # Two files, one value: the viewer's token would also be the operator's.
    (tmp_path / "viewer-token").write_text((tmp_path / "operator-token").read_text())
    assert main(["check-config", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert (
        f"responder.auth.tokens.1.secret: secret file {tmp_path / 'viewer-token'} holds the "
        "same token as responder.auth.tokens.0.secret; each token needs a value of its own"
    ) in err


def test_console_script_exit_code(token_env: None) -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "responder", "check-config", "--config",
         str(TESTDATA / "web_bad_policy.yml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "failback" in bad.stderr


def test_unreachable_responder_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["status", "--url", url]) == 1
    assert f"cannot reach the responder at {url}/api/v1/status" in capsys.readouterr().err


@pytest.fixture
def served(tmp_path: Path, start_regions: RegionFactory) -> Iterator[Path]:
    """A running responder whose config's listen address is where it serves; the config path."""
    regions = start_regions()
    put_heartbeat(regions["eu-west-1"], "us-east-1")
    port = free_port()
    config = write_config(
        tmp_path,
        region_urls={name: r.url for name, r in regions.items()},
        listen=f"127.0.0.1:{port}",
    )
    server = Responder(config, tmp_path, workers=2, port=port).start()
    yield config
    server.stop()


def test_api_commands_against_a_running_responder(
    served: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ["--config", str(served)]
    assert main(["status", *config]) == 0
    assert "active region:  us-east-1" in capsys.readouterr().out

    assert main(["freeze", "--reason", "drill", *config]) == 0
    assert "frozen:         yes, by " in capsys.readouterr().out
    assert main(["status", "--json", *config]) == 0
    assert json.loads(capsys.readouterr().out)["freeze"]["reason"] == "drill"
    assert main(["unfreeze", *config]) == 0
    assert "frozen:         no" in capsys.readouterr().out

    assert main(["failover", "--to", "mars-north-1", *config]) == 1
    err = capsys.readouterr().err
    assert "HTTP 400" in err and "unknown region 'mars-north-1'" in err

    assert main(["failover", "--to", "eu-west-1", "--reason", "drill", *config]) == 0
    out = capsys.readouterr().out
    assert "accepted: manual us-east-1 -> eu-west-1" in out
    transition_id = out.split()[1]

    assert main(["report", transition_id, *config]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"# Transition {transition_id}: manual us-east-1 → eu-west-1")
    assert "| decision |" in text and "drill" in text
    assert main(["report", transition_id, "--format", "json", *config]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["timeline"][0]["event"] == "request_received"
    assert main(["report", "t-none", *config]) == 1
    assert "HTTP 404" in capsys.readouterr().err

    assert main(["history", *config]) == 0
    out = capsys.readouterr().out
    assert "manual   us-east-1 -> eu-west-1" in out

    wrong = tmp_path / "wrong-token"
    wrong.write_text("nope-not-a-token-at-all\n")
    assert main(["freeze", "--token-file", str(wrong), *config]) == 1
    assert "HTTP 401" in capsys.readouterr().err
    viewer = ["--token-file", str(served.parent / "viewer-token")]
    assert main(["freeze", *viewer, *config]) == 1
    assert (
        "HTTP 403: token 'viewer' has role viewer; this needs operator" in capsys.readouterr().err
    )
    assert main(["status", *viewer, *config]) == 0
    url = ["--url", main_url(served)]
    assert main(["freeze", *url]) == 2
    assert "no operator token" in capsys.readouterr().err

    # The audit commands read the store itself (the SQLite file), beside the running responder.
    assert main(["audit", "verify", *config]) == 0
    out = capsys.readouterr().out
    assert out.startswith("audit chain OK: ") and "\nhead:   " in out
    exported = tmp_path / "audit.jsonl"
    assert main(["audit", "export", "--since", "1h", "--output", str(exported), *config]) == 0
    assert "exported " in capsys.readouterr().err
    events = [json.loads(line) for line in exported.read_text().splitlines()]
    assert [e["type"] for e in events][:2] == ["genesis", "frozen"]
    # An export checks with the key alone, which the config names.
    assert main(["audit", "verify", "--file", str(exported), *config]) == 0
    assert capsys.readouterr().out.startswith("export OK: events #1..#")
    events[1]["body"]["freeze"]["reason"] = "nothing to see"
    exported.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert main(["audit", "verify", "--file", str(exported), *config]) == 1
    assert "export BROKEN: audit event #2 was edited" in capsys.readouterr().out
    assert main(["audit", "verify", "--file", str(exported)]) == 2
    assert "audit reads the audit key: pass --config" in capsys.readouterr().err
    assert main(["audit", "export", "--since", "yesterday", *config]) == 2
    assert "--since 'yesterday'" in capsys.readouterr().err


def main_url(config: Path) -> str:
    import yaml

    listen = yaml.safe_load(config.read_text())["responder"]["listen"]
    return f"http://{listen}"


COMMANDS = {
    "serve": [],
    "status": [],
    "history": ["--limit", "3"],
    "failover": ["--to", "eu-west-1"],
    "freeze": [],
    "unfreeze": [],
    "retry": [],
    "skip": ["wp-env", "--reason", "by hand"],
    "abort": ["--reason", "drill", "--rollback"],
    "plan": ["--to", "eu-west-1"],
    "switchover": ["--to", "eu-west-1", "--reason", "maintenance", "--force", "--wait"],
    "check-config": [],
    "init-state": [],
    "report": ["t-1", "--format", "json"],
    "audit": ["verify", "--expect", "3:" + "a" * 64],
}
COMMON = [
    "--config",
    "c.yml",
    "--url",
    "http://r:1",
    "--token-file",
    "t",
    "--json",
    "--cacert",
    "ca",
]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_common_options_work_on_either_side_of_every_command(command: str) -> None:
    before = parse_args([*COMMON, command, *COMMANDS[command]])
    after = parse_args([command, *COMMANDS[command], *COMMON])
    for args in (before, after):
        assert (args.config, args.url, str(args.token_file), args.json, str(args.cacert)) == (
            "c.yml",
            "http://r:1",
            "t",
            True,
            "ca",
        )
    assert vars(before) == vars(after)
    assert parse_args([command, *COMMANDS[command]]).config is None


def test_config_before_the_command_is_read(
    token_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # The SQLite config has no control table: init-state says so, instead of "no configuration".
    assert main(["--config", str(TESTDATA / "web_good.yml"), "init-state"]) == 1
    assert "backend is not dynamodb" in capsys.readouterr().err


def test_switchover_waits_only_when_asked() -> None:
    base = ["switchover", "--to", "eu-west-1", "--reason", "maintenance"]
    assert parse_args(base).wait == 0.0
    assert parse_args([*base, "--wait"]).wait == 900.0
    assert parse_args([*base, "--wait", "60"]).wait == 60.0
