"""Log lines: one line per record, whatever a value carries (an operator's reason, a label)."""

from __future__ import annotations

import logging

import pytest

from ddb_failover.logs import LogfmtFormatter, kv

# Every character that ends a line for some reader (str.splitlines, a terminal, a log
# shipper) or restyles a terminal (ESC and CSI start ANSI sequences).
FORGERS = {
    "CR": "\r",
    "LF": "\n",
    "CRLF": "\r\n",
    "VT": "\x0b",
    "FF": "\x0c",
    "NEL": "\x85",
    "LINE SEPARATOR": "\u2028",
    "PARAGRAPH SEPARATOR": "\u2029",
    "ANSI ESC": "\x1b[2K\x1b[1G",
    "ANSI CSI": "\x9b2K",
    "FS": "\x1c",
}
UNSAFE = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]}


def _format(message: str) -> str:
    record = logging.LogRecord("responder.test", logging.INFO, __file__, 1, message, None, None)
    return LogfmtFormatter().format(record)


@pytest.mark.parametrize("forger", sorted(FORGERS))
def test_a_value_cannot_forge_a_log_line(forger: str) -> None:
    reason = f"drill{FORGERS[forger]}ts=2024-01-01T00:00:00.000Z level=error msg=forged"
    for line in (_format(kv(event="freeze", reason=reason)), _format(reason)):
        assert len(line.splitlines()) == 1, line
        assert not UNSAFE & set(line), line
        assert "drill" in line and "forged" in line  # escaped, not dropped


def test_escapes_are_readable_and_unambiguous() -> None:
    assert kv(reason="a\r\nb") == 'reason="a\\r\\nb"'
    assert kv(label="x\u2028y\x85z\x1b[31m") == 'label="x\\u2028y\\x85z\\x1b[31m"'
    # A literal backslash-n stays distinct from an escaped newline.
    assert kv(a="\\n", b="\n") == 'a=\\n b="\\n"'
    assert kv(a='say "hi"') == 'a="say \\"hi\\""'
