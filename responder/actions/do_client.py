"""The DigitalOcean client (pydo) the DO actions share, and its one error mapping.

pydo is built on azure-core, whose defaults do not suit a reconciler: it retries
up to 10 times with 300 s timeouts (our reconciler retries, with backoff and a
journal), and its bearer-token policy refuses plain-http endpoints such as the
sandbox. So the client gets no retries, the configured timeout for connect and
read, a small policy that sets the Authorization header (plain http is allowed
because the operator chose api_url; the default is https), and no azure-core
request logging. Many pydo
operations hand back a 404 body instead of raising, so every call goes through
call(), which looks at the HTTP status of each response.

Every answer's ratelimit-* headers go to the process's Budget, and every request names
its caller (do_budget.calling_as: a transition's lease holder and fencing token, or the
plan); a plan read that would eat into the reserve is refused before it is sent.

A change DigitalOcean did not answer (the client's read timeout, a 504 from its gateway)
may still land later. Its call does not return until it can no longer land
(late_write_seconds after it was sent): the attempt lives on, so its worker keeps the
lease and the step stays in flight, and no other holder (nor this one's next attempt)
writes the object while the old change is on its way.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import pydo
from azure.core.exceptions import AzureError, HttpResponseError, ServiceResponseError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy

from ddb_failover.config import ConfigError, DigitalOcean
from ddb_failover.logs import kv
from responder.actions.do_budget import Budget, ascii_digits, current_caller, spend
from responder.actions.inspection import CREDENTIALS, MISSING, RATE_LIMITED
from responder.model import fence
from responder.model.errors import PermanentError, TemporaryError

log = logging.getLogger(__name__)
PER_PAGE = 200
MAX_PAGES = 50
_MESSAGE_CHARS = 300
# 403 is a token without the scope the call needs: a credentials problem too.
_STATUS_KINDS = {401: CREDENTIALS, 403: CREDENTIALS, 404: MISSING}
# A gateway that gave up waiting: the change behind it may still be made.
_OUTCOME_UNKNOWN_STATUSES = (504,)


class _BearerToken(SansIOHTTPPolicy):
    """Sets the API token on every request, over https or the configured plain-http URL."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def on_request(self, request: PipelineRequest) -> None:
        request.http_request.headers["Authorization"] = self._header


class _Writes(threading.local):
    """When this thread last sent a change (monotonic seconds), None before any."""

    sent_at: float | None = None


class _Budgeting(SansIOHTTPPolicy):
    """Names the caller on each request; hands each answer's ratelimit-* headers to budget;
    notes when each change is sent."""

    def __init__(self, budget: Budget, writes: _Writes) -> None:
        self._budget = budget
        self._writes = writes

    def on_request(self, request: PipelineRequest) -> None:
        http = request.http_request
        if http.method not in ("GET", "HEAD"):  # a change: never after the lease ran out
            fence.check(f"DigitalOcean {http.method} {urlsplit(http.url).path}")
            self._writes.sent_at = time.monotonic()
        caller = current_caller()
        if caller is not None:
            request.http_request.headers.update(caller.headers())

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:
        answer = response.http_response
        self._budget.observe(answer.headers, refused_for(answer.status_code, answer.headers))


def retry_after_header(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from Retry-After (delta or HTTP date); None when absent or unreadable."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if not value:
        return None
    value = value.strip()
    if ascii_digits(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from Retry-After (delta or HTTP date), else DO's ratelimit-reset;
    None when neither is there or readable (the caller's own backoff applies)."""
    wait = retry_after_header(headers, now)
    if wait is not None:
        return wait
    reset = next((v for k, v in headers.items() if k.lower() == "ratelimit-reset"), None)
    if reset and ascii_digits(reset.strip()):
        now = time.time() if now is None else now
        return max(0.0, float(reset) - now)
    return None


def refused_for(status: int, headers: Mapping[str, str]) -> float | None:
    """How long a 429 says the token is refused (its Retry-After); None for other answers."""
    return retry_after_header(headers) if status == 429 else None


def status_error(
    what: str, status: int, headers: Mapping[str, str], body: Any
) -> TemporaryError | PermanentError:
    """The error an HTTP status means: 408, 429 and 5xx are temporary, other 4xx permanent."""
    detail = ""
    if isinstance(body, dict):
        # DigitalOcean's error body: {"id": "not_found", "message": "..."}.
        parts = [str(body[k]) for k in ("id", "message") if body.get(k)]
        detail = ": " + ": ".join(parts)[:_MESSAGE_CHARS] if parts else ""
    message = f"{what}: HTTP {status}{detail}"
    if status == 429:
        return TemporaryError(message, retry_after_seconds(headers), RATE_LIMITED)
    if status == 408 or status >= 500:
        # DigitalOcean sends ratelimit-reset on every answer; only Retry-After speaks to a 5xx.
        return TemporaryError(message, retry_after=retry_after_header(headers))
    return PermanentError(message, _STATUS_KINDS.get(status))


def _with_status(pipeline_response: PipelineResponse, body: Any, _headers: Any) -> Any:
    # pydo's `cls` hook: keep the status and headers that pydo otherwise drops.
    response = pipeline_response.http_response
    return response.status_code, dict(response.headers), body


class DOClient:
    """A pydo client with no retries, bounded timeouts and checked responses."""

    def __init__(
        self,
        api_url: str,
        token: str,
        timeout_seconds: float,
        budget: Budget | None = None,
        late_write_seconds: float = DigitalOcean().late_write_seconds,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if not api_url.startswith(("https://", "http://")):
            raise ConfigError(f"digitalocean.api_url {api_url!r} must start with https://")
        self.api_url = api_url
        self.budget = budget if budget is not None else Budget()
        self.late_write_seconds = late_write_seconds
        self._sleep = sleep
        self._writes = _Writes()
        self.pydo = pydo.Client(
            token,
            endpoint=api_url.rstrip("/"),
            authentication_policy=_BearerToken(token),
            retry_policy=RetryPolicy.no_retries(),
            # azure-core logs every request's headers at INFO; our own log lines say what matters.
            http_logging_policy=SansIOHTTPPolicy(),
            custom_hook_policy=_Budgeting(self.budget, self._writes),
            connection_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
        )

    @classmethod
    def from_config(cls, config: DigitalOcean, budget: Budget | None = None) -> DOClient:
        """Build from the digitalocean config section; ConfigError when the token is unreadable."""
        return cls(
            config.api_url,
            config.token.read(),
            config.timeout_seconds,
            budget,
            config.late_write_seconds,
        )

    def call(self, what: str, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one pydo operation; its body on 2xx, else Temporary/PermanentError.

        BudgetKept, before anything is sent, when the caller keeps a reserve this call would
        eat into.
        """
        spend(self.budget, what)
        self._writes.sent_at = None
        try:
            status, headers, body = operation(*args, cls=_with_status, **kwargs)
        except HttpResponseError as exc:
            response: Any = exc.response
            status = exc.status_code or (response.status_code if response is not None else 0)
            headers = dict(response.headers) if response is not None else {}
            if status in _OUTCOME_UNKNOWN_STATUSES:
                self._until_landed(what)
            raise status_error(what, status, headers, _json_body(response)) from None
        except AzureError as exc:
            # Connection refused or reset, connect or read timeout.
            if isinstance(exc, ServiceResponseError):  # sent, never answered
                self._until_landed(what)
            raise TemporaryError(f"{what}: {type(exc).__name__}: {exc.message}") from None
        if not 200 <= status < 300:
            if status in _OUTCOME_UNKNOWN_STATUSES:
                self._until_landed(what)
            raise status_error(what, status, headers, body)
        return body

    def _until_landed(self, what: str) -> None:
        """A change was sent and not answered: wait until it can no longer land."""
        sent_at = self._writes.sent_at
        if sent_at is None:
            return  # a read: nothing can land
        wait = sent_at + self.late_write_seconds - time.monotonic()
        if wait > 0:
            log.warning(
                kv(event="do_write_outcome_unknown", call=what, wait_seconds=round(wait, 1))
            )
            self._sleep(wait)

    def paginate(
        self, what: str, operation: Callable[..., Any], key: str, *args: Any, **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        """Every item under key across all pages of a list operation."""
        for page in range(1, MAX_PAGES + 1):
            body = self.call(what, operation, *args, page=page, per_page=PER_PAGE, **kwargs)
            items = (body or {}).get(key)
            if not isinstance(items, list):
                raise TemporaryError(f"{what}: response has no {key!r} list")
            yield from items
            if not (body.get("links") or {}).get("pages", {}).get("next"):
                return
        raise PermanentError(f"{what}: more than {MAX_PAGES} pages of {key}")


def _json_body(response: Any) -> Any:
    if response is None:
        return None
    try:
        return response.json()
    except Exception:  # an error page that is not JSON: the status says enough
        return None
