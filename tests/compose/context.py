"""The Dockerfile's build context, digested: an image built from the same context needs no
rebuild. Under the vfs driver even a fully cached `podman build` copies every stage's root
filesystem (about 4 minutes an image on these machines), so the run builds only when the
digest on the image differs from the sources'."""

from __future__ import annotations

import hashlib
from pathlib import Path

CONTEXT_LABEL = "ddb-failover.context"
_NEVER = ("__pycache__",)


def allowed(directory: Path) -> list[Path]:
    """The files .dockerignore lets into the context: its `!` entries after `*`; every file
    when it is no such allow-list (always right, only rebuilt more often)."""
    ignore = directory / ".dockerignore"
    lines = [ln.strip() for ln in ignore.read_text().splitlines()] if ignore.exists() else []
    rules = [ln for ln in lines if ln and not ln.startswith("#")]
    roots = [directory / r[1:] for r in rules if r.startswith("!")]
    if not rules or rules[0] != "*":
        roots = [directory]
    files = {p for root in roots for p in ([root] if root.is_file() else root.rglob("*"))}
    return sorted(
        p
        for p in files
        if p.is_file() and p.suffix not in (".pyc", ".pyo") and not set(_NEVER) & set(p.parts)
    )


def digest(directory: Path) -> str:
    """sha256 over the Dockerfile, .dockerignore and every file in the context, with names."""
    extra = [directory / "Dockerfile", directory / ".dockerignore"]
    sha = hashlib.sha256()
    for path in [*extra, *allowed(directory)]:
        if path.exists():
            sha.update(str(path.relative_to(directory)).encode() + b"\0")
            sha.update(path.read_bytes() + b"\0")
    return sha.hexdigest()
