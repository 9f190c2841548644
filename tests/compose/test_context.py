"""The build context's digest: what decides whether test-compose rebuilds the images."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.compose.conftest import REPO
from tests.compose.context import allowed, digest


def _copy(target: Path) -> Path:
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, target / name)
    for name in ("ddb_failover", "docker"):
        shutil.copytree(REPO / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "tests").mkdir()
    (target / "tests" / "test_x.py").write_text("x = 1\n")
    return target


def test_the_digest_follows_the_context_and_nothing_else(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    before = digest(root)
    names = {str(p.relative_to(root)) for p in allowed(root)}
    assert "ddb_failover/config.py" in names and "docker/sandbox_service.py" in names
    assert not {n for n in names if n.startswith(("tests/", "docker/demo/"))}, names
    (root / "tests" / "test_x.py").write_text("x = 2\n")  # outside the context
    (root / "docker" / "demo" / "ddb-failover.yml").write_text("# mounted, not built\n")
    assert digest(root) == before
    (root / "ddb_failover" / "config.py").write_text("# changed\n")
    changed = digest(root)
    assert changed != before
    (root / "Dockerfile").write_text((REPO / "Dockerfile").read_text() + "# changed\n")
    assert digest(root) != changed
