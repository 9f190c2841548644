"""A region's WordPress as the readiness check sees it: one GET of its health URL, live.

No redirect is followed (a 301 to a login page is not a site that serves) and nothing
is retried: a dead site must say "not ready" within its timeout_seconds.
"""

from __future__ import annotations

import http.client
import re
import urllib.parse

from ddb_failover.config import Site
from ddb_failover.logs import redact
from responder.decide.decision import SiteAnswer

USER_AGENT = "ddb-failover-readiness"
BODY_LIMIT = 65536  # read (and drop) at most this much of the answer
_USERINFO = re.compile(r"//[^/@]*@")


def shown(url: str) -> str:
    """url as reasons and plans show it: no user:password, no process secret."""
    return redact(_USERINFO.sub("//", url))


def _error(exc: BaseException) -> str:
    """A short, bounded reason for no answer."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, http.client.HTTPException):
        return f"not an HTTP answer ({type(exc).__name__})"
    return type(exc).__name__


def probe(site: Site) -> SiteAnswer:
    """GET site.health_url with site.host as Host; the status, or why there was none."""
    url = urllib.parse.urlsplit(site.health_url)
    connection_class = (
        http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(url.hostname or "", url.port, timeout=site.timeout_seconds)
    headers = {"User-Agent": USER_AGENT, **({"Host": site.host} if site.host else {})}
    path = url.path or "/"
    answer = SiteAnswer(shown(site.health_url), site.expect_status, None)
    try:
        connection.request("GET", f"{path}?{url.query}" if url.query else path, headers=headers)
        response = connection.getresponse()
        response.read(BODY_LIMIT)
        return SiteAnswer(answer.url, answer.expect_status, response.status)
    except (OSError, http.client.HTTPException) as exc:
        return SiteAnswer(answer.url, answer.expect_status, None, _error(exc))
    finally:
        connection.close()
