"""Every secret the responder holds, read once at start, and the redaction of outgoing text.

Text leaves the process through logs, HTTP answers (JSON, the page, metrics),
the state store (step errors) and child processes. Children get a minimal
environment (responder.actions._subprocess) and the variables their action passes
on purpose, which count as secrets too; everything else passes through redact(),
which replaces any secret value, in every spelling an answer gives it (plain,
JSON, HTML, and the page's own: Jinja's escaping and its tojson), with a marker.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from jinja2.utils import htmlsafe_json_dumps
from markupsafe import escape

from ddb_failover.config import Config, ConfigError

REDACTED = "[redacted]"
ALERTMANAGER = "alertmanager"  # the name webhook_token's holder is known by
# Credentials of the AWS SDK's environment chain: never configured here, still secret.
AWS_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# Shorter values would redact ordinary words; every token we accept is at least 16.
MIN_REDACTED_CHARS = 8


@dataclass(frozen=True)
class Token:
    """A bearer token the responder accepts: its name (recorded as `by`), role and value."""

    name: str
    role: str
    value: str = field(repr=False)


def _at(key: str, read: Callable[[], str]) -> str:
    """read(), with a ConfigError prefixed by the config key it came from."""
    try:
        return read()
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _readable(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return ""


def _spellings(value: str) -> set[str]:
    """value as each writer of outgoing text spells it: Jinja writes a quote as &#34; or
    &#39; where html.escape writes &quot; or &#x27;, and its tojson writes ' as \\u0027."""
    as_json = json.dumps(value)[1:-1]
    return {
        value,
        as_json,
        html.escape(value),
        str(escape(value)),
        str(escape(as_json)),
        str(htmlsafe_json_dumps(value))[1:-1],
    }


class Secrets:
    """The tokens the API accepts, and every secret value to keep out of outgoing text."""

    def __init__(
        self,
        tokens: Iterable[Token],
        others: Iterable[str] = (),
        receivers: dict[str, str] | None = None,
    ) -> None:
        self.tokens = tuple(tokens)
        self.receivers = dict(receivers or {})  # notification receivers' keys or URLs, by name
        values = {t.value for t in self.tokens} | {v for v in others if v}
        values |= set(self.receivers.values())
        forms = {form for v in values if len(v) >= MIN_REDACTED_CHARS for form in _spellings(v)}
        # Longest first: a secret that contains another is replaced whole.
        self._forms = sorted(forms, key=len, reverse=True)
        self._byte_forms = [f.encode("utf-8") for f in self._forms]

    @classmethod
    def from_config(cls, config: Config) -> Secrets:
        """Read every secret the config names; ConfigError naming the key of an unusable one."""
        responder = config.responder
        webhook = _at("responder.webhook_token", responder.webhook_token.read_token)
        tokens = [Token(ALERTMANAGER, "alertmanager", webhook)]
        # One value in two sources would be one token with two names and two roles.
        keys = {webhook: "responder.webhook_token"}
        for index, named in enumerate(responder.auth.tokens):
            key = f"responder.auth.tokens.{index}.secret"
            value = _at(key, named.secret.read_token)
            if value in keys:
                raise ConfigError(
                    f"{key}: {named.secret.source} holds the same token as {keys[value]}; "
                    "each token needs a value of its own"
                )
            keys[value] = key
            tokens.append(Token(named.name, named.role, value))
        others = [os.environ.get(name, "") for name in AWS_SECRET_ENV]
        # What an action hands its command is the command's secret (a database password).
        for action in responder.actions:
            others += [os.environ.get(name, "") for name in getattr(action, "pass_env", ())]
        if any(a.type.startswith("do_") for a in responder.actions):
            others.append(_at("responder.digitalocean.token", responder.digitalocean.token.read))
        receivers = {}
        for index, receiver in enumerate(responder.notify.receivers):
            key = "routing_key" if receiver.type == "pagerduty_change" else "webhook_url"
            secret = getattr(receiver, key)
            receivers[receiver.name] = _at(f"responder.notify.receivers.{index}.{key}", secret.read)
        if responder.tls is not None:
            for key in ("cert_file", "key_file", "client_ca_file"):
                path: Path | None = getattr(responder.tls, key)
                if path is not None:
                    _at(f"responder.tls.{key}", partial(_readable, path))
        return cls(tokens, others, receivers)

    def redact(self, text: str) -> str:
        """text with every secret value replaced by [redacted]."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def redact_bytes(self, data: bytes) -> bytes:
        """redact() for an encoded body; the same bytes object when nothing matched."""
        marker = REDACTED.encode("utf-8")
        for form in self._byte_forms:
            if form in data:
                data = data.replace(form, marker)
        return data
