"""Who may call the responder: bearer tokens with roles, and TLS (responder.auth, .tls)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ddb_failover.config_base import Secret, Strict, unique_names

Role = Literal["alertmanager", "operator", "viewer"]
PublicEndpoint = Literal["metrics", "healthz", "readyz", "status", "history", "plan", "page"]


# Names the history already gives to others: a token called so would pass for them.
RESERVED_TOKEN_NAMES = {
    "alertmanager": "webhook_token's holder is known by it",
    "responder": "the history records the responder's own acts by it "
    "(an automatic freeze, an approval's timeout)",
}


class NamedToken(Strict):
    """A bearer token and what it may do; its name is what the history records as `by`."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: Role
    secret: Secret

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_TOKEN_NAMES:
            raise ValueError(f"{name!r} is reserved: {RESERVED_TOKEN_NAMES[name]}")
        return name


class Auth(Strict):
    tokens: tuple[NamedToken, ...] = ()
    # Reachable without a token; everything else needs one with the right role.
    public: tuple[PublicEndpoint, ...] = ("metrics", "healthz", "readyz")

    @field_validator("tokens")
    @classmethod
    def _unique_names(cls, tokens: tuple[NamedToken, ...]) -> tuple[NamedToken, ...]:
        return unique_names(tokens, "token")


class TLS(Strict):
    """Serve HTTPS; with client_ca_file, require client certificates it signed (mTLS)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
