"""podman and podman-compose as this machine runs them, without changing anything system-wide.

Rootful podman with the cgroupfs manager, the runc runtime and the vfs storage driver,
configured through CONTAINERS_CONF and CONTAINERS_STORAGE_CONF files of our own. The store
lives in a cache directory (DDB_COMPOSE_CACHE, default ~/.cache/ddb-failover-compose) so
images survive between runs; containers, networks and volumes do not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
[network]
network_backend = "netavark"
"""
STORAGE_CONF = """\
[storage]
driver = "vfs"
graphroot = "{root}/storage"
runroot = "{root}/run"
"""
# Files builds mount so pip inside them reaches the package registry as the machine's does.
_PIP_MOUNTS = (
    "/etc/pip.conf",
    "/etc/xdg/pip",
    "/root/.config/pip",
    "/etc/ssl/certs",
    "/opt/wheels",
)


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "ddb-failover-compose"
    return Path(os.environ.get("DDB_COMPOSE_CACHE", default))


class Podman:
    """podman and podman-compose with this run's configuration."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        containers = self.root / "containers.conf"
        storage = self.root / "storage.conf"
        containers.write_text(CONTAINERS_CONF)
        storage.write_text(STORAGE_CONF.format(root=self.root))
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(containers),
            "CONTAINERS_STORAGE_CONF": str(storage),
        }
        compose = Path(sys.executable).with_name("podman-compose")
        self.compose_program = str(compose) if compose.exists() else "podman-compose"

    def run(
        self, *args: str, timeout: float = 900, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """podman ARGS; the timeout leaves room to wait for the store's lock: after a build
        with the vfs driver, podman can hold it for minutes while it removes the stages."""
        result = subprocess.run(
            ["podman", *args], capture_output=True, text=True, env=self.env, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {result.returncode}\n{result.stderr}")
        return result

    def image_exists(self, image: str) -> bool:
        return self.run("image", "exists", image, check=False).returncode == 0

    def image_labels(self, image: str) -> dict[str, str]:
        out = self.run("image", "inspect", "--format", "{{json .Labels}}", image).stdout
        return json.loads(out) or {}

    def pull(self, image: str, timeout: float) -> bool:
        try:
            return self.run("pull", "--quiet", image, timeout=timeout, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def import_image(self, tarball: Path, image: str, changes: Sequence[str]) -> None:
        args = [arg for change in changes for arg in ("--change", change)]
        self.run("import", *args, str(tarball), image, timeout=600)

    def build_args(self) -> str:
        """podman build options: docker format (keeps HEALTHCHECK), the host's network and pip."""
        mounts = [f"-v {p}:{p}:ro" for p in _PIP_MOUNTS if Path(p).exists()]
        return " ".join(["--format docker", "--network host", *mounts])

    def compose(
        self, project_dir: Path, *args: str, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """podman-compose in project_dir with the demo profile."""
        argv = [self.compose_program, "--profile", "demo", *args]
        result = subprocess.run(
            argv, cwd=project_dir, capture_output=True, text=True, env=self.env, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)}: {result.returncode}\n{result.stdout[-4000:]}\n"
                f"{result.stderr[-4000:]}"
            )
        return result


def available() -> str | None:
    """Why podman cannot run here (None when it can)."""
    for program in ("podman", "mmdebstrap"):
        if shutil.which(program) is None:
            return (
                f"{program} is not installed: run scripts/bootstrap-compose.sh (make test-compose)"
            )
    return None
