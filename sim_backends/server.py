"""Loopback servers carrying an emulator's text protocol, as a LAN port or terminal server would."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol, runtime_checkable

from sim_backends.faults import GARBAGE, Faults


class Session(Protocol):
    """The state of one client connection (a login handshake, say); SCPI state is per instrument."""

    def handle(self, message: str) -> str | bytes | None:
        """Answer one terminated message (bytes for binary blocks); None: no answer."""


class LineEmulator(Protocol):
    """An emulated instrument that speaks terminated ASCII messages over a byte stream."""

    read_terminator: bytes
    write_terminator: bytes
    faults: Faults

    def new_session(self) -> Session:
        """State for a client that has just connected."""


class LineServer:
    """Listens on ``host:port`` and runs every connection through a fresh emulator session."""

    def __init__(self, emulator: LineEmulator) -> None:
        self.emulator = emulator
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)

    async def close(self) -> None:
        """Stop listening and hang up on every client, as a powered-off instrument would."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):
            writer.close()
        await asyncio.gather(*self._clients.values(), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = self.emulator.new_session()
        terminator = self.emulator.read_terminator
        faults = self.emulator.faults
        task = asyncio.current_task()
        assert task is not None
        self._clients[writer] = task
        try:
            while not faults.drop_connection:
                raw = await reader.readuntil(terminator)
                if faults.drop_connection:
                    break
                message = raw[: -len(terminator)].decode("ascii", "replace").strip()
                reply = session.handle(message)
                if reply is None or faults.stall:
                    continue
                await asyncio.sleep(faults.reply_delay_s)
                data = reply.encode("ascii") if isinstance(reply, str) else reply
                data = GARBAGE if faults.garbage_reply else data
                writer.write(data + self.emulator.write_terminator)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            self._clients.pop(writer, None)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@runtime_checkable
class Server(Protocol):
    """Something listening for an emulated instrument on a loopback port."""

    async def start(self, host: str, port: int) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class ServedEmulator(Server, Protocol):
    """An emulated instrument that carries its own server (ZeroMQ, say: not a byte stream)."""

    faults: Faults


Emulator = LineEmulator | ServedEmulator


def server_for(emulator: Emulator) -> Server:
    """The server an emulator needs: itself if it serves, its ``server_type`` (binary blocks),
    else a LineServer."""
    if isinstance(emulator, ServedEmulator):
        return emulator
    server_type: type[LineServer] = getattr(emulator, "server_type", LineServer)
    return server_type(emulator)
