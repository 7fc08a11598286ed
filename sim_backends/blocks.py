"""IEEE 488.2 definite-length binary blocks (``#<n><length><bytes>``) on a line protocol.

A block's bytes can be anything, the terminator and ``;`` included, so the plain ``LineServer``
(which splits at the terminator and decodes ASCII) cannot carry them. ``BinaryAwareLineServer``
frames whole program messages and sets every block's payload aside in the emulator's
``BlockStore``; the command claims it by the token left in its place. An emulator that takes
blocks names this server as its ``server_type``.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass
from typing import Protocol, cast

from sim_backends.server import LineEmulator, LineServer

_BLOCK_START = re.compile(rb"#([1-9])")
_READ_CHUNK = 65536


@dataclass(frozen=True)
class _Block:
    """Where a definite-length block sits in a byte string."""

    start: int  # the '#'
    payload: int  # first payload byte
    end: int | None  # past the last payload byte; None while the length digits are incomplete


def _next_block(data: bytes | bytearray, start: int) -> _Block | None:
    """The first IEEE 488.2 definite-length block header at or after ``start``."""
    for match in _BLOCK_START.finditer(data, start):
        count = int(match[1])
        digits = bytes(data[match.end(): match.end() + count])
        if digits and not digits.isdigit():
            continue  # a '#' and a digit in text, not a block header
        payload = match.end() + count
        return _Block(match.start(), payload,
                      payload + int(digits) if len(digits) == count else None)
    return None


class BlockStore:
    """Block payloads set aside from the message text; the text keeps a ``#@<n>`` token each.

    Tokens are unique, so connections cannot take each other's blocks; the emulator drops the
    unclaimed ones after each message (``LineServer`` handles a message as soon as it is read).
    """

    def __init__(self) -> None:
        self._payloads: dict[str, bytes] = {}
        self._ids = itertools.count()

    def put(self, payload: bytes) -> str:
        token = f"#@{next(self._ids)}"
        self._payloads[token] = payload
        return token

    def claim(self, token: str) -> bytes | None:
        return self._payloads.pop(token, None)

    def clear(self) -> None:
        self._payloads.clear()


class ProgramMessageReader:
    """Frames terminated program messages whose blocks may hold any byte, the terminator too.

    ``readuntil`` returns one whole message and its terminator, each block replaced by the token
    its payload was stored under, so the text that follows is plain ASCII.
    """

    def __init__(self, reader: asyncio.StreamReader, blocks: BlockStore) -> None:
        self._reader = reader
        self._blocks = blocks
        self._buffer = bytearray()

    async def readuntil(self, separator: bytes) -> bytes:
        scan, blocks = 0, list[tuple[int, int, int]]()  # (start, payload, end) of each block
        while True:
            block = _next_block(self._buffer, scan)
            stop = self._buffer.find(separator, scan)
            if stop >= 0 and (block is None or stop < block.start):
                return self._take(stop + len(separator), blocks)
            if block is None or block.end is None:
                await self._read_more()
            elif block.end > len(self._buffer):
                self._buffer += await self._reader.readexactly(block.end - len(self._buffer))
            else:
                blocks.append((block.start, block.payload, block.end))
                scan = block.end

    async def _read_more(self) -> None:
        chunk = await self._reader.read(_READ_CHUNK)
        if not chunk:
            raise asyncio.IncompleteReadError(bytes(self._buffer), None)
        self._buffer += chunk

    def _take(self, length: int, blocks: list[tuple[int, int, int]]) -> bytes:
        """Cut ``length`` bytes off the buffer, each block swapped for its payload's token."""
        message = bytes(self._buffer[:length])
        del self._buffer[:length]
        pieces, pos = [], 0
        for start, payload, end in blocks:
            pieces += [message[pos:start], self._blocks.put(message[payload:end]).encode()]
            pos = end
        return b"".join([*pieces, message[pos:]])


class BlockEmulator(LineEmulator, Protocol):
    """A line emulator whose commands take binary blocks, claimed from ``blocks``."""

    blocks: BlockStore


class BinaryAwareLineServer(LineServer):
    """``LineServer`` for an emulator taking binary blocks: their bytes travel beside the text.

    ``LineServer`` splits at the terminator and decodes ASCII, which would cut a block at any
    payload byte equal to the terminator and mangle bytes above 127. Here each connection's
    reader frames whole messages and sets every block's payload aside in the emulator's
    ``BlockStore``; the command claims it by the token left in its place.
    """

    def __init__(self, emulator: BlockEmulator) -> None:
        super().__init__(emulator)
        self.blocks = emulator.blocks

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framing = ProgramMessageReader(reader, self.blocks)
        await super()._serve(cast(asyncio.StreamReader, framing), writer)
