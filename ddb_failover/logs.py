"""Structured key=value log lines; secrets and request bodies never reach them."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

_redact: Callable[[str], str] = str


def set_redactor(redact: Callable[[str], str]) -> None:
    """Pass every log line through redact before it is written (the process's secrets)."""
    global _redact
    _redact = redact


def redact(text: str) -> str:
    """text with the process's secrets replaced (what set_redactor installed)."""
    return _redact(text)


def _quote(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
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
        line = f"{line} msg={_quote(message)}" if "=" not in message else f"{line} {message}"
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
