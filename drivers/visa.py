"""VISA connection settings every driver applies.

pyvisa-py leaves Nagle's algorithm on for TCP sockets, where NI-VISA's default is
``VI_ATTR_TCPIP_NODELAY = true``: a set command followed at once by ``SYST:ERR?`` then waits for
the instrument's delayed ACK (~40 ms on Linux). pyvisa-py does not accept that attribute on a
SOCKET resource, so ``low_latency`` sets the option on the session's socket itself.
"""

from __future__ import annotations

import socket
from typing import Any


def low_latency(adapter: Any) -> None:
    """Turn Nagle's algorithm off on a pymeasure VISA adapter's TCP socket, if it has one."""
    connection = getattr(adapter, "connection", None)
    sessions = getattr(getattr(connection, "visalib", None), "sessions", {})
    interface = getattr(sessions.get(getattr(connection, "session", None)), "interface", None)
    if isinstance(interface, socket.socket) and interface.family in (socket.AF_INET,
                                                                     socket.AF_INET6):
        interface.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
