"""Links that arrive from outside (a webhook's generatorURL, externalURL, runbook_url).

A page, a markdown report or a chat message turns them into something a person
clicks: only http and https are rendered, so a `javascript:` or `data:` URL
planted in an alert never becomes one.
"""

from __future__ import annotations

import re
import urllib.parse

# No whitespace, control characters, quotes or angle brackets: the link must stay one
# token inside an HTML attribute, a markdown <autolink> and a Slack <link|text>.
_PLAIN = re.compile(r'[^\s\x00-\x1f\x7f-\x9f<>"|]+')


def http_link(url: object) -> str | None:
    """url when it is an http:// or https:// URL with a host, safe to render as is; else None."""
    if not isinstance(url, str) or not _PLAIN.fullmatch(url):
        return None
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # a malformed IPv6 host
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else None
