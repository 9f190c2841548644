"""Secret files anyone but their owner can read: named at start, so a deployment can fix them.

Compose bind-mounts secret files with the host's owner and mode: a 0644 file in the
repository or in /etc is readable by every user in the container. Nothing breaks, so only a
warning tells. docs/deploy.md says how to give them to the services' uid (10001) with 0600.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ddb_failover.config import Secret

# Files the AWS SDK reads on its own, named by these variables (not by the config).
_SDK_FILE_VARIABLES = ("AWS_SHARED_CREDENTIALS_FILE",)
_READABLE_BY_OTHERS = stat.S_IRGRP | stat.S_IROTH


def _secrets_in(value: Any) -> Iterator[Secret]:
    if isinstance(value, Secret):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets_in(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _secrets_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secrets_in(item)


def secret_paths(config: BaseModel, environ: Mapping[str, str] | None = None) -> list[Path]:
    """Every secret file the config names, and the SDK's credentials file; in order, once."""
    environ = os.environ if environ is None else environ
    paths = [s.file for s in _secrets_in(config) if s.file is not None]
    paths += [Path(environ[v]) for v in _SDK_FILE_VARIABLES if environ.get(v)]
    return list(dict.fromkeys(paths))


def exposed(paths: list[Path]) -> list[str]:
    """A warning for each file (followed through links) that its group or others can read."""
    warnings = []
    for path in paths:
        try:
            mode = path.stat().st_mode
        except OSError:
            continue  # a missing file is reported where it is read, as an error
        if mode & _READABLE_BY_OTHERS:
            who = " and ".join(
                w
                for w, bit in (("its group", stat.S_IRGRP), ("every user", stat.S_IROTH))
                if mode & bit
            )
            warnings.append(
                f"secret file {path} is readable by {who} (mode {stat.S_IMODE(mode):04o}): "
                f"give it to the service's user with mode 0600 (docs/deploy.md)"
            )
    return warnings


def exposed_secrets(config: BaseModel, environ: Mapping[str, str] | None = None) -> list[str]:
    """exposed() for every secret file of config (secret_paths)."""
    return exposed(secret_paths(config, environ))
