"""The sandbox's WSGI app: auth, faults, spec checks both ways, dispatch, and the control API."""

from __future__ import annotations

import collections
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from sandbox.do_api import faults, ratelimit, spec
from sandbox.do_api.errors import ApiError
from sandbox.do_api.handlers import Call, handle
from sandbox.do_api.seed import Seed
from sandbox.do_api.store import Store

log = logging.getLogger("sandbox.do_api")

JSON_TYPE = "application/json; charset=utf-8"
MAX_LOG = 10_000
# Who sent a call, as a responder tells it, kept in the request log: the lease holder and its
# fencing token, so that a checker can tell whether two holders ever wrote at once.
HOLDER_HEADER = "X-DDB-Failover-Holder"
FENCE_HEADER = "X-DDB-Failover-Fence"
MAX_HEADER_KEPT = 200


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SandboxApp:
    """A DigitalOcean API look-alike over a Store; call it as a WSGI app."""

    def __init__(self, seed: Seed, token: str) -> None:
        self.seed = seed
        self.faults = faults.Faults()
        self.ratelimit = ratelimit.RateLimiter()
        self.store = Store(seed, self.faults.take_deployment)
        self._token = token
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_LOG)
        self._seq = 0
        self._violations: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/_sandbox/"):
            response = self._control(request)
        else:
            response = self._api(request)
        return response(environ, start_response)

    # The DigitalOcean API

    def _api(self, request: Request) -> Response:
        started = time.monotonic()
        started_at = _now()
        body_bytes = request.get_data(cache=True)
        call_request = spec.CallRequest(
            method=request.method,
            path=request.path,
            query=request.args,
            headers=Headers(request.headers),
            body=body_bytes or None,
            content_type=request.content_type or "application/octet-stream",
        )
        operation: spec.Operation | None = None
        fault = None
        try:
            operation = spec.find_operation(request.method, request.path)
        except spec.NoRoute as no_route:
            route_error: spec.NoRoute | None = no_route
        else:
            route_error = None
        token = _bearer_token(request)
        if not self._authorized(token):
            budget = self.ratelimit.peek(token)
            response = self._error(401, "unauthorized", "Unable to authenticate you.")
        elif not (budget := self.ratelimit.spend(token)).allowed:
            response = self._error(429, "too_many_requests", "API Rate limit exceeded.")
        elif (fault := self.faults.take(request.path, request.method)) is not None:
            response = self._faulted(fault, request, call_request, operation, route_error)
        else:
            response = self._normal(request, call_request, operation, route_error)
        response = self._checked(call_request, operation, _budgeted(response, budget))
        response = _budgeted(response, budget)  # again: a violation's 500 is a new answer
        self._record(request, operation, response.status_code, fault is not None, started_at)
        log.info(
            "method=%s path=%s operation=%s status=%d duration_ms=%.1f",
            request.method,
            request.path,
            operation.operation_id if operation else "-",
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    def _normal(
        self,
        request: Request,
        call_request: spec.CallRequest,
        operation: spec.Operation | None,
        route_error: spec.NoRoute | None,
    ) -> Response:
        """The answer with no fault: a routing error, or the operation's."""
        if route_error is not None:
            error_id = "not_found" if route_error.status == 404 else "method_not_allowed"
            return self._error(route_error.status, error_id, str(route_error))
        try:
            return self._answer(request, call_request, operation)
        except Exception as error:  # a crash is the sandbox's bug: say so, keep serving
            log.exception("msg=%s path=%s", '"sandbox crashed"', request.path)
            return self._violation(call_request, operation, 500, f"it crashed: {error!r}")

    def _faulted(
        self,
        fault: faults.Fault,
        request: Request,
        call_request: spec.CallRequest,
        operation: spec.Operation | None,
        route_error: spec.NoRoute | None,
    ) -> Response:
        """A fault's answer: an HTTP error, or the normal answer late (or 504 and no change)."""
        if fault.delay_seconds is None:
            return self._fault(fault)
        if fault.apply == "before":
            response = self._normal(request, call_request, operation, route_error)
            self._delay(fault.delay_seconds)
            return response
        if not self._delay(fault.delay_seconds):
            # Stopping: the sandbox goes away, and the delayed change with it.
            return self._error(503, "service_unavailable", "The sandbox is stopping.")
        if fault.apply == "never":
            return self._error(504, *faults.TIMEOUT_BODY)
        return self._normal(request, call_request, operation, route_error)

    def _delay(self, seconds: float) -> bool:
        """Wait seconds, on this request's thread only; False when the sandbox stops first."""
        return not self._stopping.wait(seconds)

    def stop(self) -> None:
        """Cut every delay short, so that no delayed call holds up the sandbox's exit."""
        self._stopping.set()

    def _authorized(self, token: str) -> bool:
        # Constant-time: the sandbox should not teach timing leaks by example.
        return bool(token) and hmac.compare_digest(token.encode(), self._token.encode())

    def _answer(
        self, request: Request, call_request: spec.CallRequest, operation: spec.Operation | None
    ) -> Response:
        assert operation is not None
        problem = spec.check_request(call_request, operation)
        if problem is not None:
            return self._error(problem.status, problem.error_id, problem.message)
        call = Call(
            operation=operation,
            query=request.args.to_dict(),
            body=_json_or_none(request.get_data(cache=True)),
            url=request.host_url.rstrip("/") + request.path,
        )
        try:
            status, payload = handle(self.store, call)
        except ApiError as error:
            return self._error(error.status, error.error_id, error.message)
        return self._json(status, payload)

    def _checked(
        self, call_request: spec.CallRequest, operation: spec.Operation | None, response: Response
    ) -> Response:
        """Validate our own response; a mismatch is the sandbox's bug: 500 and a violation."""
        data = response.get_data()
        if operation is not None:
            problem = spec.check_response(
                call_request,
                spec.CallResponse(
                    status_code=response.status_code,
                    data=data,
                    content_type=response.mimetype or "",
                    headers=Headers(response.headers),
                ),
            )
        else:
            problem = spec.check_error_body(_json_or_none(data))
        if problem is None:
            return response
        status = response.status_code
        return self._violation(
            call_request,
            operation,
            status,
            f"its {status} answer does not match the DigitalOcean OpenAPI description: {problem}",
        )

    def _violation(
        self,
        call_request: spec.CallRequest,
        operation: spec.Operation | None,
        status: int,
        problem: str,
    ) -> Response:
        """Record and log the sandbox's own bug; answer 500 naming it."""
        violation = {
            "time": _now(),
            "method": call_request.method.upper(),
            "path": call_request.path,
            "operation": operation.operation_id if operation else None,
            "status": status,
            "problem": problem,
        }
        with self._lock:
            self._violations.append(violation)
        log.error(
            "msg=%s method=%s path=%s status=%d problem=%s",
            '"sandbox violation"',
            violation["method"],
            violation["path"],
            status,
            json.dumps(problem),
        )
        return self._error(
            500, "sandbox_error", f"the DigitalOcean sandbox itself is wrong: {problem}"
        )

    def _fault(self, fault: faults.Fault) -> Response:
        assert fault.status is not None
        error_id, message = faults.ERROR_BODIES[fault.status]
        response = self._error(fault.status, error_id, fault.message or message)
        if fault.status == 429:
            retry_after = fault.retry_after or 0
            response.headers["Retry-After"] = str(retry_after)
            response.headers["ratelimit-remaining"] = "0"
            response.headers["ratelimit-reset"] = str(int(time.time()) + retry_after)
        return response

    def _error(self, status: int, error_id: str, message: str) -> Response:
        return self._json(
            status, {"id": error_id, "message": message, "request_id": str(uuid.uuid4())}
        )

    def _json(self, status: int, payload: dict[str, Any] | None) -> Response:
        if payload is None:
            response = Response(status=status)
            del response.headers["Content-Type"]
        else:
            response = Response(spec.json_bytes(payload), status=status, content_type=JSON_TYPE)
        return response

    def _record(
        self,
        request: Request,
        operation: spec.Operation | None,
        status: int,
        fault: bool,
        started: str,
    ) -> None:
        ended = _now()
        with self._lock:
            self._seq += 1
            self._requests.append(
                {
                    "seq": self._seq,
                    "time": ended,
                    "started": started,
                    "ended": ended,
                    "holder": _header(request, HOLDER_HEADER),
                    "fence": _header(request, FENCE_HEADER),
                    "method": request.method,
                    "path": request.path,
                    "query": request.args.to_dict(),
                    "operation": operation.operation_id if operation else None,
                    "status": status,
                    "fault": fault,
                    "body": _json_or_none(request.get_data(cache=True)),
                }
            )

    # The control API (outside /v2; documented in the package docstring)

    def _control(self, request: Request) -> Response:
        route = (request.method, request.path.rstrip("/"))
        try:
            if route == ("GET", "/_sandbox/requests"):
                since = int(request.args.get("since", "0"))
                with self._lock:
                    entries = [e for e in self._requests if e["seq"] > since]
                return _control_json(200, {"requests": entries})
            if route == ("DELETE", "/_sandbox/requests"):
                with self._lock:
                    self._requests.clear()
                return _control_json(200, {"cleared": True})
            if route == ("GET", "/_sandbox/violations"):
                with self._lock:
                    return _control_json(200, {"violations": list(self._violations)})
            if route == ("GET", "/_sandbox/faults"):
                return _control_json(200, {"faults": self.faults.pending()})
            if route == ("POST", "/_sandbox/faults"):
                fault = faults.parse_fault(_control_body(request))
                self.faults.add(fault)
                return _control_json(201, {"fault": fault.view(time.monotonic())})
            if route == ("DELETE", "/_sandbox/faults"):
                self.faults.clear()
                return _control_json(200, {"cleared": True})
            if route == ("GET", "/_sandbox/ratelimit"):
                return _control_json(200, self.ratelimit.view(self._token))
            if route == ("POST", "/_sandbox/ratelimit"):
                self.ratelimit.set(ratelimit.parse_limits(_control_body(request)))
                return _control_json(200, self.ratelimit.view(self._token))
            if route == ("DELETE", "/_sandbox/ratelimit"):
                self.ratelimit.restore()
                return _control_json(200, self.ratelimit.view(self._token))
            if route == ("GET", "/_sandbox/state"):
                return _control_json(200, self.store.dump())
            if route == ("POST", "/_sandbox/state"):
                return self._reset(_control_body(request))
        except ValueError as error:
            return _control_json(400, {"id": "bad_request", "message": str(error)})
        return _control_json(
            404,
            {"id": "not_found", "message": f"no control endpoint {request.method} {request.path}"},
        )

    def _reset(self, body: Any) -> Response:
        if not isinstance(body, dict) or set(body) - {"seed"}:
            raise ValueError('body must be {} or {"seed": {...}}')
        if "seed" in body:
            try:
                self.seed = Seed.model_validate(body["seed"])
            except Exception as error:  # pydantic's ValidationError is a ValueError
                raise ValueError(f"invalid seed: {error}") from error
        self.store.reset(self.seed)
        self.faults.clear()
        self.ratelimit.restore()
        with self._lock:
            self._requests.clear()
        return _control_json(200, self.store.dump())


def _bearer_token(request: Request) -> str:
    """The token of the request's bearer Authorization header; "" when it has none."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _header(request: Request, name: str) -> str | None:
    value = request.headers.get(name)
    return None if value is None else value[:MAX_HEADER_KEPT]


def _budgeted(response: Response, budget: ratelimit.Verdict) -> Response:
    """response with the token's ratelimit-* headers, where a fault has not set its own."""
    for name, value in budget.headers().items():
        if name not in response.headers:
            response.headers[name] = value
    return response


def _json_or_none(data: bytes) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _control_body(request: Request) -> Any:
    data = request.get_data()
    if not data:
        return {}
    try:
        return json.loads(data)
    except ValueError as error:
        raise ValueError(f"body is not valid JSON: {error}") from error


def _control_json(status: int, payload: dict[str, Any]) -> Response:
    return Response(spec.json_bytes(payload), status=status, content_type=JSON_TYPE)
