"""Python client of the daemon: JSON-RPC calls with timeouts, and a telemetry subscriber.

A REQ socket that missed a reply can never send again, so after a timeout the client closes it
and opens a fresh one (the "lazy pirate" pattern of the ZeroMQ guide).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import zmq
import zmq.asyncio

from labd.rpc import RpcError

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
DEFAULT_TELEMETRY = "tcp://127.0.0.1:5556"


class DaemonTimeout(TimeoutError):
    """The daemon did not answer in time."""


class Client:
    """Synchronous JSON-RPC client: ``Client().call("station.get", instrument="pump", ...)``.

    Holding a lease (``lease=`` or ``acquire_lease``), the client adds its token to every method
    that takes one, as listed by ``rpc.discover``.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, timeout_s: float = 10.0,
                 lease: str | None = None) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.lease = lease
        self._context: zmq.Context[Any] = zmq.Context.instance()
        self._ids = itertools.count(1)
        self._socket = self._connect()
        self._takes_lease: set[str] | None = None

    def acquire_lease(self, holder: str, ttl_s: float = 60.0) -> dict[str, Any]:
        """Take the operator lease; later calls carry its token."""
        lease: dict[str, Any] = self.call("lease.acquire", holder=holder, ttl_s=ttl_s)
        self.lease = lease["token"]
        return lease

    def _with_lease(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if not _may_need_lease(self.lease, method, params):
            return params
        if self._takes_lease is None:
            self._takes_lease = _lease_takers(self.call("rpc.discover"))
        return {**params, "lease": self.lease} if method in self._takes_lease else params

    def _connect(self) -> zmq.Socket[Any]:
        socket = self._context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(self.endpoint)
        return socket

    def call(self, method: str, **params: Any) -> Any:
        """Call ``method`` with ``params``; return its result or raise RpcError / DaemonTimeout."""
        request_id = next(self._ids)
        payload = _request(request_id, method, self._with_lease(method, params))
        return _result(self.request(payload), request_id)

    def request(self, payload: bytes) -> Any:
        """Send raw request bytes and return the decoded JSON reply."""
        self._socket.send(payload)
        if not self._socket.poll(int(self.timeout_s * 1000)):
            self._socket.close()
            self._socket = self._connect()
            raise DaemonTimeout(f"no reply from {self.endpoint} within {self.timeout_s} s")
        return json.loads(self._socket.recv())

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


class AsyncClient:
    """The asyncio twin of ``Client``: ``await AsyncClient().call("station.list")``."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, timeout_s: float = 10.0,
                 lease: str | None = None) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.lease = lease
        self._context = zmq.asyncio.Context.instance()
        self._ids = itertools.count(1)
        self._socket = self._connect()
        self._takes_lease: set[str] | None = None

    def _connect(self) -> zmq.asyncio.Socket:
        socket = self._context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(self.endpoint)
        return socket

    async def acquire_lease(self, holder: str, ttl_s: float = 60.0) -> dict[str, Any]:
        lease: dict[str, Any] = await self.call("lease.acquire", holder=holder, ttl_s=ttl_s)
        self.lease = lease["token"]
        return lease

    async def call(self, method: str, **params: Any) -> Any:
        """Call ``method``; return its result or raise RpcError / DaemonTimeout."""
        if _may_need_lease(self.lease, method, params):
            if self._takes_lease is None:
                self._takes_lease = _lease_takers(await self.call("rpc.discover"))
            if method in self._takes_lease:
                params = {**params, "lease": self.lease}
        request_id = next(self._ids)
        return _result(await self.request(_request(request_id, method, params)), request_id)

    async def request(self, payload: bytes) -> Any:
        """Send raw request bytes and return the decoded JSON reply."""
        await self._socket.send(payload)
        if not await self._socket.poll(int(self.timeout_s * 1000)):
            self._socket.close()
            self._socket = self._connect()
            raise DaemonTimeout(f"no reply from {self.endpoint} within {self.timeout_s} s")
        return json.loads(await self._socket.recv())

    def close(self) -> None:
        self._socket.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: type[BaseException] | BaseException | TracebackType | None
                        ) -> None:
        self.close()


def _may_need_lease(lease: str | None, method: str, params: dict[str, Any]) -> bool:
    return lease is not None and "lease" not in params and method != "rpc.discover"


def _lease_takers(document: dict[str, Any]) -> set[str]:
    """Methods whose params include ``lease``, from an OpenRPC document."""
    return {m["name"] for m in document["methods"]
            if any(p["name"] == "lease" for p in m["params"])}


def _request(request_id: int, method: str, params: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method,
                       "params": params}).encode()


def _result(reply: dict[str, Any], request_id: int) -> Any:
    """The result of a reply, or its error raised as RpcError."""
    if reply.get("id") != request_id:
        raise RpcError(-32603, f"reply to request {reply.get('id')}, expected {request_id}")
    if "error" in reply:
        error = reply["error"]
        raise RpcError(error["code"], error["message"], error.get("data"))
    return reply["result"]


class Subscription:
    """Telemetry from the daemon as ``(topic, message)`` pairs; topics match by prefix.

    The SUB socket connects at construction, so messages published after that (and after
    ZeroMQ's short join) arrive. Iterating raises DaemonTimeout after ``timeout_s`` of silence.
    """

    def __init__(self, endpoint: str = DEFAULT_TELEMETRY, topics: tuple[str, ...] = ("",),
                 timeout_s: float | None = None) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._socket: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        for topic in topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self._socket.connect(endpoint)

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        return self

    def __next__(self) -> tuple[str, dict[str, Any]]:
        if self.timeout_s is not None and not self._socket.poll(int(self.timeout_s * 1000)):
            raise DaemonTimeout(f"no telemetry from {self.endpoint} within {self.timeout_s} s")
        raw_topic, body = self._socket.recv_multipart()
        return raw_topic.decode(), json.loads(body)

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

