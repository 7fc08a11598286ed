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
        if self.lease is None or "lease" in params or method == "rpc.discover":
            return params
        if self._takes_lease is None:
            document = self.call("rpc.discover")
            self._takes_lease = {m["name"] for m in document["methods"]
                                 if any(p["name"] == "lease" for p in m["params"])}
        return {**params, "lease": self.lease} if method in self._takes_lease else params

    def _connect(self) -> zmq.Socket[Any]:
        socket = self._context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(self.endpoint)
        return socket

    def call(self, method: str, **params: Any) -> Any:
        """Call ``method`` with ``params``; return its result or raise RpcError / DaemonTimeout."""
        params = self._with_lease(method, params)
        request_id = next(self._ids)
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        reply = self.request(json.dumps(request).encode())
        if reply.get("id") != request_id:
            raise RpcError(-32603, f"reply to request {reply.get('id')}, expected {request_id}")
        if "error" in reply:
            error = reply["error"]
            raise RpcError(error["code"], error["message"], error.get("data"))
        return reply["result"]

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

