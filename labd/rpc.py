"""JSON-RPC 2.0 over any byte transport: envelope checks, dispatch, errors, OpenRPC generation.

Methods are data: a name, a pydantic model for the params, one for the result, and a coroutine.
The OpenRPC document that ``rpc.discover`` returns is generated from those models, so the schema
a client sees is the one the server enforces.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

import labd

log = logging.getLogger(__name__)


class ErrorCode(IntEnum):
    """JSON-RPC error codes: the standard ones, then labd's application codes."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    INSTRUMENT_FAULT = -32000  # the instrument failed, timed out, or reported an error
    LIMIT_EXCEEDED = -32001  # a value outside the limits configured for the instrument
    NOT_IMPLEMENTED = -32002  # the instrument's model has no driver yet
    NOT_CONNECTED = -32003  # the instrument is configured but not connected
    READ_ONLY = -32004  # the parameter can be read but not set
    LEASE_REQUIRED = -32005  # a commanding method was called without any lease held
    LEASE_HELD = -32006  # another operator holds the lease, or the token is not the live one
    INTERLOCK = -32007  # a safety interlock refuses the command
    BUSY = -32008  # the resource is in use by a running procedure
    REQUEST_TOO_LARGE = -32009  # the request exceeds the size limit


ERROR_DOCS: dict[ErrorCode, str] = {
    ErrorCode.INSTRUMENT_FAULT: "the instrument failed, timed out, or reported an error; "
    "data: instrument, command, detail",
    ErrorCode.LIMIT_EXCEEDED: "value outside the configured limits; "
    "data: instrument, parameter, value, limits, unit",
    ErrorCode.NOT_IMPLEMENTED: "the instrument's model has no driver yet; data: instrument, model",
    ErrorCode.NOT_CONNECTED: "the instrument is not connected; data: instrument, last_error",
    ErrorCode.READ_ONLY: "the parameter can only be read; data: instrument, parameter",
    ErrorCode.LEASE_REQUIRED: "a commanding method needs a lease: call lease.acquire; data: holder",
    ErrorCode.LEASE_HELD: "another operator holds the lease, or the token is stale; "
    "data: holder, expires_at",
    ErrorCode.INTERLOCK: "a safety interlock refuses the command; data: interlock, instrument",
    ErrorCode.BUSY: "a running procedure owns the resource; data: owner",
    ErrorCode.REQUEST_TOO_LARGE: "request larger than the limit; data: size, limit",
}


class RpcError(Exception):
    """A JSON-RPC error object, raised by handlers and by the client alike."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": int(self.code), "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class Params(BaseModel):
    """Base of every params model: unknown members are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class CommandParams(Params):
    """Params of a method that commands the bench: it needs the live operator lease."""

    lease: str = Field(description="token from lease.acquire")


class Result(BaseModel):
    """Base of every result model."""


class NoParams(Params):
    """No params."""


class OpenRpcDocument(Result):
    """The OpenRPC document of this API."""

    model_config = ConfigDict(extra="allow")
    openrpc: str


Handler = Callable[[Any], Awaitable[Result]]


@dataclass(frozen=True)
class Method:
    """One RPC method: its name, what it does, and the models of its params and result."""

    name: str
    summary: str
    params: type[Params]
    result: type[Result]
    handler: Handler

    @property
    def commanding(self) -> bool:
        return issubclass(self.params, CommandParams)


@dataclass(frozen=True)
class CallRecord:
    """One answered call of a commanding method, for the record."""

    t: float
    caller: str  # the lease holder
    method: str
    params: dict[str, Any]
    error: str | None  # None: it succeeded


LeaseCheck = Callable[[Any], str]  # lease token -> holder, or raises RpcError
Audit = Callable[[CallRecord], None]


_Id = str | int | None


class Dispatcher:
    """Turns request bytes into reply bytes through a method table.

    Every request needs an ``id``: over ZeroMQ REQ/REP each request must be answered, so labd
    takes no notifications and answers a request without ``id`` with -32600.
    """

    def __init__(self, methods: Sequence[Method], lease_check: LeaseCheck | None = None,
                 audit: Audit | None = None,
                 on_internal_error: Callable[[BaseException], None] | None = None) -> None:
        self.lease_check = lease_check
        self.audit = audit
        self.on_internal_error = on_internal_error
        discover = Method("rpc.discover", "OpenRPC description of this API", NoParams,
                          OpenRpcDocument, self._discover)
        self.methods = {m.name: m for m in (discover, *methods)}

    @staticmethod
    def error_reply_object(request_id: _Id, exc: RpcError) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": request_id, "error": exc.to_json()}

    @staticmethod
    def error_reply(request_id: _Id, exc: RpcError) -> bytes:
        """The bytes of an error reply."""
        return _dump(Dispatcher.error_reply_object(request_id, exc))

    async def _discover(self, _: NoParams) -> OpenRpcDocument:
        return OpenRpcDocument.model_validate(self.openrpc())

    async def handle(self, raw: bytes) -> bytes:
        """The reply to one request or batch."""
        try:
            request = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return self.error_reply(None, RpcError(ErrorCode.PARSE_ERROR, f"not JSON: {exc}"))
        if isinstance(request, list):
            if not request:
                return self.error_reply(None, RpcError(ErrorCode.INVALID_REQUEST, "empty batch"))
            return _dump([await self._one(item) for item in request])
        return _dump(await self._one(request))

    async def _one(self, request: Any) -> dict[str, Any]:
        request_id: _Id = None
        try:
            request_id, method, params = _envelope(request)
            result = await self._call(method, params)
        except RpcError as exc:
            return self.error_reply_object(request_id, exc)
        except Exception as exc:
            log.exception("method %r failed", request.get("method"))
            if self.on_internal_error is not None:
                self.on_internal_error(exc)
            internal = RpcError(ErrorCode.INTERNAL_ERROR, f"internal error: {exc}")
            return self.error_reply_object(request_id, internal)
        reply = {"jsonrpc": "2.0", "id": request_id, "result": result.model_dump(mode="json")}
        try:
            _dump(reply)
        except ValueError as exc:  # NaN or infinity: JSON has no spelling for them
            log.error("method %r returned what JSON cannot carry: %s", request.get("method"), exc)
            unencodable = RpcError(ErrorCode.INTERNAL_ERROR, f"result not JSON-encodable: {exc}")
            return self.error_reply_object(request_id, unencodable)
        return reply

    async def _call(self, name: str, params: dict[str, Any]) -> Result:
        method = self.methods.get(name)
        if method is None:
            raise RpcError(ErrorCode.METHOD_NOT_FOUND, f"no method {name!r}", {"method": name})
        if not method.commanding or self.lease_check is None:
            return await method.handler(_validated(method, params))
        holder = self.lease_check(params.get("lease"))
        try:
            result = await method.handler(_validated(method, params))
        except RpcError as exc:
            self._audit(holder, name, params, exc.message)
            raise
        self._audit(holder, name, params, None)
        return result

    def _audit(self, holder: str, method: str, params: dict[str, Any], error: str | None) -> None:
        if self.audit is not None:
            shown = {k: v for k, v in params.items() if k != "lease"}
            self.audit(CallRecord(time.time(), holder, method, shown, error))

    def openrpc(self) -> dict[str, Any]:
        """The OpenRPC 1.3 document of every method, schemas generated from the models."""
        components: dict[str, Any] = {}
        return {
            "openrpc": "1.3.2",
            "info": {"title": "labd", "version": labd.__version__},
            "methods": [_describe(m, components) for m in self.methods.values()],
            "components": {
                "schemas": components,
                "errors": {code.name: {"code": int(code), "message": doc}
                           for code, doc in ERROR_DOCS.items()},
            },
        }


def _validated(method: Method, params: dict[str, Any]) -> Params:
    try:
        return method.params.model_validate(params)
    except ValidationError as exc:
        raise invalid_params(method.name, exc) from exc


def invalid_params(method: str, exc: ValidationError) -> RpcError:
    """An invalid-params error naming each offending member."""
    errors = [
        {"param": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
    ]
    summary = "; ".join(f"{e['param'] or 'params'}: {e['message']}" for e in errors)
    return RpcError(ErrorCode.INVALID_PARAMS, f"invalid params for {method}: {summary}",
                    {"errors": errors})


def _envelope(request: Any) -> tuple[_Id, str, dict[str, Any]]:
    if not isinstance(request, dict):
        raise RpcError(ErrorCode.INVALID_REQUEST, "a request must be a JSON object")
    if "id" not in request:
        raise RpcError(ErrorCode.INVALID_REQUEST, "id is required (labd takes no notifications)")
    request_id = request.get("id")
    if not (request_id is None or isinstance(request_id, str)
            or (isinstance(request_id, int) and not isinstance(request_id, bool))):
        raise RpcError(ErrorCode.INVALID_REQUEST, "id must be a string, an integer or null")
    if request.get("jsonrpc") != "2.0":
        raise RpcError(ErrorCode.INVALID_REQUEST, 'jsonrpc must be "2.0"')
    method = request.get("method")
    if not isinstance(method, str):
        raise RpcError(ErrorCode.INVALID_REQUEST, "method must be a string")
    extra = set(request) - {"jsonrpc", "id", "method", "params"}
    if extra:
        raise RpcError(ErrorCode.INVALID_REQUEST, f"unknown members: {', '.join(sorted(extra))}")
    params = request.get("params", {})
    if not isinstance(params, dict):
        raise RpcError(ErrorCode.INVALID_PARAMS, "params must be an object (by name)")
    return request_id, method, params


def _dump(reply: Any) -> bytes:
    return json.dumps(reply, separators=(",", ":"), allow_nan=False).encode()


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    return schema


def _describe(method: Method, components: dict[str, Any]) -> dict[str, Any]:
    params = _schema(method.params, components)
    required = set(params.get("required", []))
    return {
        "name": method.name,
        "summary": method.summary,
        "paramStructure": "by-name",
        "params": [
            {"name": name, "required": name in required, "schema": schema}
            for name, schema in params.get("properties", {}).items()
        ],
        "result": {"name": method.result.__name__, "schema": _schema(method.result, components)},
    }
