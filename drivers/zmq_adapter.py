"""A pymeasure Adapter over a ZeroMQ REQ socket, for instruments that serve text on a REP socket.

A REQ socket must alternate send and receive, and such instruments answer every message,
setters included: ``write`` sends one message and waits for its reply, which ``read`` returns.
A reply that does not come within ``timeout_s`` raises ``InstrumentTimeout`` (``ConnectionLost``
if no connection to the endpoint is up), and the socket is closed and opened afresh, as the
ZeroMQ guide's "lazy pirate" client does: a REQ socket that missed its reply cannot send again.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import zmq
from pymeasure.adapters import Adapter
from zmq.utils.monitor import recv_monitor_message

from drivers.errors import ConnectionLost, InstrumentError, InstrumentTimeout

_ENDPOINT = re.compile(r"^tcp://[^:\s/]+:\d+$")


class ZmqAdapter(Adapter):
    """Talks to the instrument at ``resource`` (``tcp://host:port``) over a REQ socket."""

    def __init__(self, resource: str, name: str = "instrument", timeout_s: float = 2.0,
                 log: logging.Logger | None = None) -> None:
        super().__init__(log=log)
        if not _ENDPOINT.match(resource):
            raise ValueError(f"{resource!r} is not a ZeroMQ endpoint tcp://HOST:PORT")
        self.resource = resource
        self.name = name
        self.timeout_s = timeout_s
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._reply: bytes | None = None
        self._command = ""
        self.connection, self._monitor = self._open()
        self._connected = False

    def _open(self) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
        socket: zmq.Socket[bytes] = self._context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        monitor = socket.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        socket.connect(self.resource)
        return socket, monitor

    def _reopen(self) -> None:
        """Lazy pirate: drop the socket stuck waiting for its reply, connect a fresh one."""
        self._shut()
        self.connection, self._monitor = self._open()
        self._connected = False

    def _connection_up(self) -> bool:
        """Whether the socket is connected now, from the monitor's connect/disconnect events."""
        while self._monitor.poll(0):
            self._connected = recv_monitor_message(self._monitor)["event"] == zmq.EVENT_CONNECTED
        return self._connected

    def _write(self, command: str, **kwargs: Any) -> None:
        self._write_bytes(command.encode("ascii"))

    def _write_bytes(self, content: bytes, **kwargs: Any) -> None:
        self._command = content.decode("ascii", "replace")
        self._reply = None
        try:
            self.connection.send(content, flags=zmq.NOBLOCK)
            answered = self.connection.poll(int(self.timeout_s * 1000))
        except zmq.ZMQError as exc:
            self._reopen()
            raise ConnectionLost(self.name, str(exc), self._command) from exc
        if not answered:
            connected = self._connection_up()
            self._reopen()
            if connected:
                raise InstrumentTimeout(
                    self.name, f"no reply within {self.timeout_s:g} s", self._command)
            raise ConnectionLost(self.name, f"no connection to {self.resource}", self._command)
        self._reply = self.connection.recv()

    def _read(self, **kwargs: Any) -> str:
        reply = self._read_bytes(-1)
        try:
            return reply.decode("ascii")
        except UnicodeDecodeError as exc:
            raise InstrumentError(self.name, f"unreadable reply {reply!r}", self._command) from exc

    def _read_bytes(self, count: int, break_on_termchar: bool = False, **kwargs: Any) -> bytes:
        """The pending reply (messages are framed: no terminator to break on), or its first
        ``count`` bytes, keeping the rest for the next read."""
        if self._reply is None:
            raise InstrumentError(self.name, "read with no reply pending", self._command)
        if 0 <= count < len(self._reply):
            data, self._reply = self._reply[:count], self._reply[count:]
            return data
        data, self._reply = self._reply, None
        return data

    def flush_read_buffer(self) -> None:
        """Forget an unread reply."""
        self._reply = None

    def _shut(self) -> None:
        if not self.connection.closed:
            self.connection.disable_monitor()
            self.connection.close(linger=0)
        self._monitor.close(linger=0)

    def close(self) -> None:
        """Close the socket (safe to call twice, and from ``__del__`` after a failed init)."""
        if getattr(self, "_monitor", None) is not None:
            self._shut()

    def __repr__(self) -> str:
        return f"<ZmqAdapter(resource='{self.resource}')>"
