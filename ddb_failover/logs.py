"""Structured key=value log lines; secrets and request bodies never reach them."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from typing import Any

_redact: Callable[[str], str] = str
# What could end a log line or restyle a terminal: C0 and C1 controls (CR, LF, VT, FF,
# NEL, ESC that starts an ANSI sequence, ...), DEL, and the Unicode line and paragraph
# separators. Each is written as an escape, so a value cannot forge a line of its own.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def set_redactor(redact: Callable[[str], str]) -> None:
    """Pass every log line through redact before it is written (the process's secrets)."""
    global _redact
    _redact = redact


def redact(text: str) -> str:
    """text with the process's secrets replaced (what set_redactor installed)."""
    return _redact(text)


def _escape(match: re.Match[str]) -> str:
    char, code = match.group(), ord(match.group())
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def _quote(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=') or _UNSAFE.search(text):
        return '"' + _UNSAFE.sub(_escape, text.replace("\\", "\\\\").replace('"', '\\"')) + '"'
    return text


def kv(**fields: Any) -> str:
    """Render fields as logfmt: key=value pairs, quoted where needed, None dropped."""
    return " ".join(f"{k}={_quote(v)}" for k, v in fields.items() if v is not None)


class LogfmtFormatter(logging.Formatter):
    """Format records as one logfmt line with time, level, logger and message."""

    def format(self, record: logging.LogRecord) -> str:
        line = kv(
            ts=self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            level=record.levelname.lower(),
            logger=record.name,
        )
        message = record.getMessage()
        # A message with "=" is logfmt already (kv's); control characters are escaped anyway.
        line = (
            f"{line} msg={_quote(message)}"
            if "=" not in message
            else f"{line} {_UNSAFE.sub(_escape, message)}"
        )
        if record.exc_info:
            line += " exc=" + _quote(self.formatException(record.exc_info))
        return _redact(line)


def setup(level: str = "INFO") -> None:
    """Send logfmt lines to stderr at level; idempotent."""
    import time

    logging.Formatter.converter = time.gmtime
    root = logging.getLogger()
    if not any(isinstance(h.formatter, LogfmtFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(LogfmtFormatter())
        root.addHandler(handler)
    root.setLevel(level.upper())
