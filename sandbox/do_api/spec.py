"""DigitalOcean's OpenAPI description, loaded once per process, and request/response checks."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema.exceptions import ValidationError as SchemaError
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.deserializing.exceptions import DeserializeError
from openapi_core.templating.media_types.exceptions import MediaTypeNotFound
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.validation.request.exceptions import (
    MissingRequestBodyError,
    ParameterValidationError,
    RequestBodyValidationError,
)
from openapi_schema_validator import OAS30Validator
from werkzeug.datastructures import Headers, MultiDict

SPEC_PATH = Path(__file__).with_name("digitalocean-openapi.yaml")
# The spec's servers entry: requests are matched as if they had been sent there.
API_HOST = "https://api.digitalocean.com"
MAX_MESSAGE = 400


def document() -> dict[str, Any]:
    """The vendored spec as a dict, exactly as DigitalOcean's (trimmed) description has it."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.load(handle, Loader=loader)
    return loaded


@functools.cache
def openapi() -> OpenAPI:
    """The parsed spec, built once per process (the YAML alone takes most of a second)."""
    # Checking the spec itself costs a second per start; a test does it once instead.
    return OpenAPI.from_dict(document(), config=Config(spec_validator_cls=None))


@functools.cache
def _finder() -> APICallPathFinder:
    return APICallPathFinder(openapi().spec)


@functools.cache
def _schema_validator(name: str) -> OAS30Validator:
    """A validator for one of the spec's (flat, $ref-free) component schemas."""
    schema = (openapi().spec / "components" / "schemas" / name).read_value()
    return OAS30Validator(schema)


@dataclass(frozen=True)
class Operation:
    """The spec operation a request matched, with its raw path variables."""

    operation_id: str
    variables: dict[str, str]
    takes_body: bool = False


@dataclass
class CallRequest:
    """A request as openapi-core sees it (its Request protocol)."""

    method: str
    path: str
    query: MultiDict[str, str]
    headers: Headers
    body: bytes | None
    content_type: str
    host_url: str = API_HOST
    parameters: RequestParameters = field(init=False)

    def __post_init__(self) -> None:
        self.method = self.method.lower()
        self.parameters = RequestParameters(query=self.query, header=self.headers)


@dataclass
class CallResponse:
    """A response as openapi-core sees it (its Response protocol)."""

    status_code: int
    data: bytes
    content_type: str
    headers: Headers


class NoRoute(Exception):
    """The path or the method is not in the spec; status says which (404 or 405)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RequestProblem:
    """Why a request does not validate, with the status DigitalOcean answers it with."""

    status: int
    error_id: str
    message: str


def find_operation(method: str, path: str) -> Operation:
    """The operation for method and path; NoRoute when the spec has none."""
    try:
        found = _finder().find(method.lower(), API_HOST + path)
    except PathNotFound:
        raise NoRoute(404, f"no such endpoint: {path}") from None
    except OperationNotFound:
        raise NoRoute(405, f"method {method.upper()} is not allowed on {path}") from None
    return Operation(
        str(found.operation["operationId"]),
        dict(found.path_result.variables),
        takes_body="requestBody" in found.operation,
    )


def check_request(request: CallRequest, operation: Operation) -> RequestProblem | None:
    """The first problem openapi-core finds with request, or None when it validates."""
    if operation.takes_body and not request.body:
        # The spec leaves some bodies optional (record PUT/PATCH); DigitalOcean needs them.
        return RequestProblem(400, "bad_request", "a request body is required")
    for error in openapi().iter_request_errors(request):
        return _request_problem(error)
    return None


def check_response(request: CallRequest, response: CallResponse) -> str | None:
    """What is wrong with our response to request, or None when it matches the spec."""
    problems = [describe(error) for error in openapi().iter_response_errors(request, response)]
    return "; ".join(problems)[:MAX_MESSAGE] if problems else None


def check_error_body(body: Any) -> str | None:
    """Check an error body against the spec's error schema (for paths the spec lacks)."""
    return check_schema("error", body, "response body")


def check_schema(name: str, value: Any, where: str) -> str | None:
    """What is wrong with value as the spec's component schema name, or None; where names it."""
    errors = [_schema_error_text(e, where) for e in _schema_validator(name).iter_errors(value)]
    return "; ".join(errors)[:MAX_MESSAGE] if errors else None


def _request_problem(error: Exception) -> RequestProblem:
    text = describe(error)
    if isinstance(error, MissingRequestBodyError):
        return RequestProblem(400, "bad_request", "a request body is required")
    if isinstance(error, RequestBodyValidationError):
        if isinstance(error.__cause__, DeserializeError):
            return RequestProblem(400, "bad_request", f"request body is not valid JSON: {text}")
        if isinstance(error.__cause__, MediaTypeNotFound):
            return RequestProblem(415, "unsupported_media_type", text)
        return RequestProblem(422, "unprocessable_entity", text)
    if isinstance(error, ParameterValidationError) and error.location == "path":
        # DigitalOcean routes a malformed id to "not found".
        return RequestProblem(404, "not_found", text)
    return RequestProblem(400, "bad_request", text)


def describe(error: BaseException) -> str:
    """One readable line for an openapi-core error, naming the field at fault."""
    cause = error.__cause__
    schema_errors = getattr(cause, "schema_errors", None)
    where = _where(error)
    if schema_errors:
        return "; ".join(_schema_error_text(e, where) for e in schema_errors)[:MAX_MESSAGE]
    context = getattr(error, "context", None) or getattr(cause, "context", None)
    if isinstance(context, Iterable) and not isinstance(context, str | bytes):
        inner = [describe(e) for e in context if isinstance(e, BaseException)]
        if inner:
            return "; ".join(inner)[:MAX_MESSAGE]
    detail = f": {cause}" if cause is not None and str(cause) not in str(error) else ""
    return f"{error}{detail}"[:MAX_MESSAGE]


def _where(error: BaseException) -> str:
    if isinstance(error, ParameterValidationError):
        return f"{error.location} parameter {error.name!r}"
    if isinstance(error, RequestBodyValidationError):
        return "request body"
    name = getattr(error, "name", None)
    if name:
        return f"header {name!r}"
    return "response body"


def _schema_error_text(error: SchemaError | Exception, where: str) -> str:
    if not isinstance(error, SchemaError):
        return f"{where}: {error}"
    texts = []
    for leaf in _leaves(error):
        location = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in leaf.path)
        texts.append(f"{location}: {_message(leaf)}")
    return "; ".join(texts)


def _leaves(error: SchemaError) -> list[SchemaError]:
    """The errors under a oneOf/anyOf failure, in the alternative that came closest."""
    if not error.context:
        return [error]
    branches: dict[Any, list[SchemaError]] = {}
    for sub in error.context:
        branches.setdefault(sub.schema_path[0] if sub.schema_path else None, []).append(sub)
    leaves = []
    for sub in min(branches.values(), key=len):
        # A sub-error's path is relative to its parent's: put the parent's in front.
        sub.path.extendleft(reversed(error.path))
        leaves.extend(_leaves(sub))
    return leaves


def _message(error: SchemaError) -> str:
    if error.validator == "oneOf" and isinstance(error.validator_value, list):
        titles = [s.get("title") for s in error.validator_value if isinstance(s, Mapping)]
        named = ", ".join(t for t in titles if t) or "its alternatives"
        return f"matches more than one of: {named} (they are mutually exclusive)"
    if error.validator in ("required", "type", "enum", "format", "pattern", "readOnly"):
        return error.message
    return _shorten(error.message)


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_bytes(value: Any) -> bytes:
    """Serialise value the way the API does (compact UTF-8 JSON)."""
    return json.dumps(value, separators=(",", ":")).encode()
