"""moto answering as one region of a STRONG (multi-Region strongly consistent) table.

moto models no global tables. This WSGI middleware, in each region server, adds
what a region of an MRSC table does, asking the supervisor's coordinator
(sandbox/quorum.py) about the other members:

- DescribeTable reports MultiRegionConsistency STRONG, every replica's
  ReplicaStatus and the witness (GlobalTableWitnesses).
- A write (PutItem, UpdateItem, DeleteItem, BatchWriteItem) is applied here only
  with a quorum, then handed to the other members synchronously: it returns once
  a second member has it. Without a quorum it fails with InternalServerError
  (HTTP 500); a write to an item another region is writing fails with
  ReplicatedWriteConflictException (HTTP 400). Nothing is applied in either case.
- A strongly consistent read (ConsistentRead true) without a quorum, or while
  the region catches up, fails with InternalServerError; eventually consistent
  reads are served as usual.

AWS documents that an isolated region serves only eventually consistent reads,
not which error the rest get; InternalServerError is the one server-side error
botocore's model lists for PutItem and GetItem. A witness region server (one
with no tables) only acknowledges the writes it is sent.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from werkzeug.test import run_wsgi_app

from sandbox.replicator import REPLICATED_HEADER, WITNESS_PATH

TARGET_PREFIX = "DynamoDB_20120810."
ERROR_TYPE = "com.amazonaws.dynamodb.v20120810#"
JSON_TYPE = "application/x-amz-json-1.0"
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem")
CONSISTENT_READS = ("GetItem", "Query", "Scan", "BatchGetItem")
GLOBAL_TABLE_VERSION = "2019.11.21"
# botocore's documentation of the exception, which is DynamoDB's message for it.
CONFLICT_MESSAGE = (
    "The request was rejected because one or more items in the request are being modified "
    "by a request in another Region."
)
COORDINATOR_TIMEOUT = 5.0
REPLICATED_ENVIRON = "HTTP_" + REPLICATED_HEADER.upper().replace("-", "_")

Reply = tuple[str, list[tuple[str, str]], bytes]
App = Callable[..., Iterable[bytes]]


class Refused(Exception):
    """The request fails with a DynamoDB error before it reaches moto."""

    def __init__(self, status: str, code: str, message: str) -> None:
        super().__init__(message)
        self.reply: Reply = _error(status, code, message)


def _error(status: str, code: str, message: str) -> Reply:
    body = json.dumps({"__type": f"{ERROR_TYPE}{code}", "message": message}).encode()
    return status, [("Content-Type", JSON_TYPE), ("x-amzn-ErrorType", code)], body


def _no_quorum(region: str) -> Refused:
    return Refused(
        "500 Internal Server Error",
        "InternalServerError",
        f"Internal server error: {region} cannot reach a second member of the multi-Region "
        "strongly consistent table, or is catching up; only eventually consistent reads "
        "are served",
    )


class StrongConsistency:
    """Wraps moto's app: region `region` of the STRONG tables `tables`."""

    def __init__(
        self,
        app: App,
        region: str,
        tables: Sequence[str],
        coordinator_url: str,
        witness: bool = False,
    ) -> None:
        self.app = app
        self.region = region
        self.tables = frozenset(tables)
        self.coordinator_url = coordinator_url.rstrip("/")
        self.witness = witness
        self._key_names: dict[str, tuple[str, ...]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == WITNESS_PATH:
            status, headers, body = (
                ("200 OK", [("Content-Type", "application/json")], b"{}")
                if self.witness and environ["REQUEST_METHOD"] == "POST"
                else ("404 Not Found", [("Content-Type", "application/json")], b"{}")
            )
            start_response(status, headers)
            return [body]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        replicated = REPLICATED_ENVIRON in environ
        if replicated or operation not in (*WRITES, *CONSISTENT_READS, "DescribeTable"):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length)
        request = json.loads(raw or b"{}")
        environ["wsgi.input"] = io.BytesIO(raw)
        try:
            status, headers, body = self._handle(environ, operation, request)
        except Refused as refused:
            status, headers, body = refused.reply
        kept = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*kept, ("Content-Length", str(len(body)))])
        return [body]

    # -- operations ---------------------------------------------------------------

    def _handle(self, environ: dict[str, Any], operation: str, request: dict[str, Any]) -> Reply:
        if operation == "DescribeTable":
            return self._describe(environ, request)
        if operation in CONSISTENT_READS:
            ours = self._consistent_read_of_ours(operation, request)
            if ours and not self._state()["quorum"]:
                raise _no_quorum(self.region)
            return self._forward(environ)
        return self._write(environ, operation, request)

    def _describe(self, environ: dict[str, Any], request: dict[str, Any]) -> Reply:
        status, headers, body = self._forward(environ)
        if request.get("TableName") not in self.tables or not status.startswith("200"):
            return status, headers, body
        state = self._state()
        state.pop("quorum")
        answer = json.loads(body)
        answer["Table"].update(state, GlobalTableVersion=GLOBAL_TABLE_VERSION)
        # botocore checks x-amz-crc32 against the body when it is there: this is a new body.
        kept = [(k, v) for k, v in headers if k.lower() != "x-amz-crc32"]
        return status, kept, json.dumps(answer).encode()

    def _consistent_read_of_ours(self, operation: str, request: dict[str, Any]) -> bool:
        if operation == "BatchGetItem":
            return any(
                table in self.tables and wanted.get("ConsistentRead")
                for table, wanted in request.get("RequestItems", {}).items()
            )
        return request.get("TableName") in self.tables and bool(request.get("ConsistentRead"))

    def _write(self, environ: dict[str, Any], operation: str, request: dict[str, Any]) -> Reply:
        keys_by_table = self._written_keys(environ, operation, request)
        if not keys_by_table:
            return self._forward(environ)
        tokens: dict[str, str] = {}
        try:
            for table, keys in keys_by_table.items():
                tokens[table] = self._prepare(table, keys)
            reply = self._forward(environ)
        except BaseException:
            self._release(tokens.values())
            raise
        if not reply[0].startswith("200"):  # moto refused it (a condition, a bad request)
            self._release(tokens.values())
            return reply
        for table, keys in keys_by_table.items():
            writes = [(key, self._item(environ, table, key)) for key in keys]
            if self._commit(tokens[table], writes) == 0:
                # No member took it in time: like any 500, the write may yet be applied.
                raise _no_quorum(self.region)
        return reply

    def _written_keys(
        self, environ: dict[str, Any], operation: str, request: dict[str, Any]
    ) -> dict[str, list[dict[str, Any]]]:
        """The key of each item the write changes, by table (ours only)."""
        if operation == "BatchWriteItem":
            found: dict[str, list[dict[str, Any]]] = {}
            for table, requests in request.get("RequestItems", {}).items():
                if table not in self.tables:
                    continue
                for each in requests:
                    if "PutRequest" in each:
                        key = self._key_of(environ, table, each["PutRequest"]["Item"])
                    else:
                        key = each["DeleteRequest"]["Key"]
                    found.setdefault(table, []).append(key)
            return found
        table = request.get("TableName")
        if table not in self.tables:
            return {}
        if operation == "PutItem":
            return {table: [self._key_of(environ, table, request.get("Item", {}))]}
        return {table: [request.get("Key", {})]}

    def _key_of(self, environ: dict[str, Any], table: str, item: dict[str, Any]) -> dict[str, Any]:
        names = self._key_names.get(table)
        if names is None:
            status, _, body = self._call(environ, "DescribeTable", {"TableName": table})
            if not status.startswith("200"):
                return {}  # moto will refuse the write itself
            schema = json.loads(body)["Table"]["KeySchema"]
            names = self._key_names[table] = tuple(k["AttributeName"] for k in schema)
        return {name: item[name] for name in names if name in item}

    def _item(
        self, environ: dict[str, Any], table: str, key: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The item as this region now holds it, read straight from moto."""
        request = {"TableName": table, "Key": key, "ConsistentRead": True}
        status, _, body = self._call(environ, "GetItem", request)
        if not status.startswith("200"):
            raise _no_quorum(self.region)
        item = json.loads(body).get("Item")
        return dict(item) if item is not None else None

    # -- moto ---------------------------------------------------------------------

    def _forward(self, environ: dict[str, Any]) -> Reply:
        app_iter, status, headers = run_wsgi_app(self.app, environ, buffered=True)
        body = b"".join(app_iter)
        return status, list(headers.items()), body

    def _call(self, environ: dict[str, Any], operation: str, request: dict[str, Any]) -> Reply:
        """Another operation on moto, signed as the client's request was (moto reads the
        region from it)."""
        data = json.dumps(request).encode()
        inner = dict(environ)
        inner.update(
            {
                "wsgi.input": io.BytesIO(data),
                "CONTENT_LENGTH": str(len(data)),
                "HTTP_X_AMZ_TARGET": f"{TARGET_PREFIX}{operation}",
            }
        )
        return self._forward(inner)

    # -- the coordinator -------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        query = urllib.parse.urlencode({"region": self.region})
        return self._coordinator(f"/state?{query}", None)

    def _prepare(self, table: str, keys: list[dict[str, Any]]) -> str:
        names = [json.dumps(key, sort_keys=True) for key in keys]
        body = {"region": self.region, "table": table, "keys": names}
        return str(self._coordinator("/prepare", body)["token"])

    def _commit(self, token: str, writes: list[tuple[dict[str, Any], Any]]) -> int:
        body = {"token": token, "writes": [{"keys": k, "image": i} for k, i in writes]}
        return int(self._coordinator("/commit", body)["acks"])

    def _release(self, tokens: Iterable[str]) -> None:
        for token in tokens:
            self._coordinator("/release", {"token": token})

    def _coordinator(self, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.coordinator_url}{path}",
            data=data,
            headers={"Content-Type": "application/json"},
            method="GET" if data is None else "POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=COORDINATOR_TIMEOUT) as reply:
                return dict(json.load(reply))
        except urllib.error.HTTPError as exc:
            if exc.code == 409:
                raise Refused(
                    "400 Bad Request", "ReplicatedWriteConflictException", CONFLICT_MESSAGE
                ) from None
            raise _no_quorum(self.region) from None
        except OSError:  # the coordinator (the supervisor) is gone: no member can be reached
            raise _no_quorum(self.region) from None
