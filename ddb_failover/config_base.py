"""The building blocks of the configuration: strict models, secrets, checked strings."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# A guessable bearer token is no token: anything shorter is a configuration error.
MIN_TOKEN_CHARS = 16


def matching(pattern: str, what: str) -> AfterValidator:
    """A check that a string matches pattern; the error says it is not `what`."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


RegionName = Annotated[
    str, matching(r"^[a-z]{2}(-[a-z]+)+-\d+$", "an AWS region name like us-east-1")
]
Seconds = Annotated[float, Field(gt=0)]
HttpUrl = Annotated[str, matching(r"^https?://[^\s]+$", "an http:// or https:// URL")]
RUNBOOK_URL = "https://github.com/ddb-failover/ddb-failover/blob/main/docs/runbook.md"


class ConfigError(Exception):
    """The configuration is unusable; the message names every offending key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Secret(Strict):
    """Where a secret comes from: an environment variable or a file, never inline."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Secret:
        if (self.env is None) == (self.file is None):
            raise ValueError("set exactly one of env or file")
        return self

    @property
    def source(self) -> str:
        """Where the secret comes from, for messages: never its value."""
        return f"environment variable {self.env}" if self.env else f"secret file {self.file}"

    def read(self) -> str:
        """Return the secret's value; raise ConfigError naming the source if absent or blank."""
        if self.env is not None:
            value = os.environ.get(self.env, "").strip()
        else:
            assert self.file is not None
            try:
                value = self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read {self.source}: {exc.strerror}") from None
        if not value:
            raise ConfigError(f"{self.source} is unset, empty or only whitespace")
        return value

    def read_token(self) -> str:
        """Read a bearer token: as read(), and at least MIN_TOKEN_CHARS long."""
        value = self.read()
        if len(value) < MIN_TOKEN_CHARS:
            raise ConfigError(
                f"{self.source} holds a token of {len(value)} characters; "
                f"tokens need at least {MIN_TOKEN_CHARS}"
            )
        return value


def _listen(value: str) -> str:
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT with a port from 0 to 65535")
    return value


Listen = Annotated[str, AfterValidator(_listen)]


def named(actions: tuple[Any, ...]) -> tuple[Any, ...]:
    """Each action with its name: the one given, else its type (numbered when taken)."""
    named = []
    seen: set[str] = set()
    for index, action in enumerate(actions):
        name = action.name or action.type
        if name in seen:
            name = f"{name}.{index}" if not action.name else name
        if name in seen:
            raise ValueError(f"action name {name!r} is used twice")
        seen.add(name)
        named.append(action.model_copy(update={"name": name}))
    return tuple(named)


def unique_names(items: tuple[Any, ...], what: str) -> tuple[Any, ...]:
    """items unchanged; ValueError naming each name that two of them share."""
    names = [item.name for item in items]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{what} name {', '.join(twice)} is used twice")
    return items
