"""Images compose pins, or stand-ins built from Debian under the same name and tag.

These machines reach Debian's and PyPI's package registries but no image registry. Each
image compose names is pulled when it can be; when it cannot, a stand-in is built with
mmdebstrap (a Debian bookworm root filesystem) and imported under the pinned name:
- python:3.11-slim: Debian's Python 3.11, `python` and `pip` on the PATH as in the official
  image, without Debian's EXTERNALLY-MANAGED marker so `pip install` works as it does there;
- prom/prometheus, prom/alertmanager and prom/blackbox-exporter: Debian's packages, with the
  official images' entrypoints (/bin/prometheus, /bin/alertmanager, /bin/blackbox_exporter),
  working directories, user (nobody), and wget for compose's healthchecks.
Grafana has no Debian package: it is left out of the run (its provisioning is checked
statically by tests/deploy). Stand-ins stay in podman's store between runs (labelled
ddb-failover.standin), so only the first run on a machine builds them.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.compose.podman import Podman

STANDIN_LABEL = "ddb-failover.standin"
SUITE = "bookworm"
# No documentation or translations: smaller images, faster imports under vfs.
_SLIM = [
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
]


@dataclass(frozen=True)
class Rootfs:
    """A Debian root filesystem: its packages, and a hook run in it with chroot."""

    packages: tuple[str, ...]
    hook: str


@dataclass(frozen=True)
class Standin:
    """An image imported from a root filesystem with the upstream image's settings."""

    image: str  # the fully qualified name compose's short name resolves to
    rootfs: str  # a key of ROOTFS
    changes: tuple[str, ...]  # podman import --change instructions


_NOBODY = "65534:65534"
# One root filesystem for the three Prometheus images: one mmdebstrap run instead of three.
ROOTFS = {
    "python": Rootfs(
        ("python3", "python3-pip", "python3-venv", "ca-certificates", "passwd"),
        "ln -sf /usr/bin/python3 /usr/local/bin/python && ln -sf /usr/bin/pip3 /usr/local/bin/pip"
        " && rm -f /usr/lib/python3.*/EXTERNALLY-MANAGED",
    ),
    "prometheus": Rootfs(
        ("prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter", "wget"),
        "ln -sf /usr/bin/prometheus-alertmanager /bin/alertmanager"
        " && ln -sf /usr/bin/prometheus-blackbox-exporter /bin/blackbox_exporter"
        " && mkdir -p /prometheus /alertmanager /etc/prometheus /etc/alertmanager"
        f" /etc/blackbox_exporter && chown {_NOBODY} /prometheus /alertmanager",
    ),
}
STANDINS = {
    "python:3.11-slim": Standin(
        "docker.io/library/python:3.11-slim",
        "python",
        ('CMD ["python3"]', "ENV LANG=C.UTF-8"),
    ),
    "prom/prometheus:v2.53.4": Standin(
        "docker.io/prom/prometheus:v2.53.4",
        "prometheus",
        (
            'ENTRYPOINT ["/bin/prometheus"]',
            'CMD ["--config.file=/etc/prometheus/prometheus.yml",'
            ' "--storage.tsdb.path=/prometheus"]',
            f"USER {_NOBODY}",
            "WORKDIR /prometheus",
            "EXPOSE 9090",
        ),
    ),
    "prom/alertmanager:v0.27.0": Standin(
        "docker.io/prom/alertmanager:v0.27.0",
        "prometheus",
        (
            'ENTRYPOINT ["/bin/alertmanager"]',
            'CMD ["--config.file=/etc/alertmanager/alertmanager.yml",'
            ' "--storage.path=/alertmanager"]',
            f"USER {_NOBODY}",
            "WORKDIR /alertmanager",
            "EXPOSE 9093",
        ),
    ),
    "prom/blackbox-exporter:v0.23.0": Standin(
        "docker.io/prom/blackbox-exporter:v0.23.0",
        "prometheus",
        (
            'ENTRYPOINT ["/bin/blackbox_exporter"]',
            'CMD ["--config.file=/etc/blackbox_exporter/config.yml"]',
            f"USER {_NOBODY}",
            "EXPOSE 9115",
        ),
    ),
}


def ensure(podman: Podman, name: str, pull_timeout: float = 60) -> str:
    """Make image `name` available; say how: pulled, a cached stand-in, a new stand-in."""
    standin = STANDINS[name]
    if podman.image_exists(standin.image):
        labels = podman.image_labels(standin.image)
        return "stand-in (cached)" if STANDIN_LABEL in labels else "pulled (cached)"
    if podman.pull(standin.image, pull_timeout):
        return "pulled"
    build(podman, standin)
    return "stand-in (built)"


def build(podman: Podman, standin: Standin) -> None:
    """Import the stand-in's root filesystem (made once, kept beside the store) as the image."""
    tarball = podman.root / f"rootfs-{standin.rootfs}-{SUITE}.tar"
    if not tarball.exists():
        make_rootfs(ROOTFS[standin.rootfs], tarball)
    changes = [*standin.changes, f"LABEL {STANDIN_LABEL}=debian-{SUITE}"]
    podman.import_image(tarball, standin.image, changes)


def make_rootfs(rootfs: Rootfs, tarball: Path) -> None:
    """mmdebstrap a root filesystem with the packages into tarball (atomically)."""
    with tempfile.TemporaryDirectory(prefix="ddb-standin-", dir=tarball.parent) as tmp:
        partial = Path(tmp) / "rootfs.tar"
        subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=apt",
                f"--include={','.join(rootfs.packages)}",
                *_SLIM,
                f'--customize-hook=chroot "$1" sh -c {_shell_quote(rootfs.hook)}',
                '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
                SUITE,
                str(partial),
            ],
            check=True,
            capture_output=True,
            timeout=1200,
        )
        partial.rename(tarball)


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
