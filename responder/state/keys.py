"""The audit chain's keys: HMAC-SHA256 keys kept outside the state store.

`responder.audit.key_file` seals every new event; `previous_key_files` only verify
the events sealed before a rotation. An event names its key by `key_id`, a short
fingerprint (an HMAC of a fixed label under the key), never the key itself.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

from ddb_failover.config import AuditConfig, ConfigError

# A guessable key is no key: 32 bytes is the size of the HMAC-SHA256 output.
MIN_KEY_BYTES = 32
KEY_ID_LABEL = b"ddb-failover audit key id"


def fingerprint(secret: bytes) -> str:
    """The key's id: 16 hex digits that name it without revealing it."""
    return hmac.new(secret, KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class AuditKey:
    """One key: its id, and the secret that never leaves the process."""

    id: str
    secret: bytes = field(repr=False)

    @classmethod
    def of(cls, secret: bytes) -> AuditKey:
        """The key with this secret."""
        return cls(fingerprint(secret), secret)

    def mac(self, content: bytes) -> str:
        """HMAC-SHA256 of content under this key, as hex."""
        return hmac.new(self.secret, content, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuditKeys:
    """The key new events are sealed with, and the previous keys older events were."""

    current: AuditKey
    previous: tuple[AuditKey, ...] = ()

    @classmethod
    def of(cls, current: bytes, *previous: bytes) -> AuditKeys:
        """Keys from their secrets."""
        return cls(AuditKey.of(current), tuple(AuditKey.of(p) for p in previous))

    @classmethod
    def from_config(cls, audit: AuditConfig) -> AuditKeys:
        """Read the configured key files; ConfigError naming the config key when unusable."""
        where = "responder.audit.key_file"
        if audit.key_file is None:
            raise ConfigError(
                f"{where}: not set; the audit chain is sealed with a key kept outside the"
                " state store (a file of at least 32 random bytes, e.g. `openssl rand -hex 32`)"
            )
        current = read_key(audit.key_file, where)
        previous = tuple(
            read_key(path, f"responder.audit.previous_key_files.{index}")
            for index, path in enumerate(audit.previous_key_files)
        )
        return cls(AuditKey.of(current), tuple(AuditKey.of(p) for p in previous))

    def find(self, key_id: str) -> AuditKey | None:
        """The key with this id, current or previous; None when unknown."""
        return next((k for k in (self.current, *self.previous) if k.id == key_id), None)


def read_key(path: Path, where: str) -> bytes:
    """A key file's content (surrounding whitespace apart); ConfigError naming where."""
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
    if not secret:
        raise ConfigError(f"{where}: {path} is empty")
    if len(secret) < MIN_KEY_BYTES:
        raise ConfigError(
            f"{where}: {path} holds {len(secret)} bytes; an audit key needs at least"
            f" {MIN_KEY_BYTES} (e.g. `openssl rand -hex 32`)"
        )
    return secret
