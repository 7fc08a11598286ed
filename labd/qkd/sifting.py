"""What Alice tells Bob about a channel (the sifting information), and how it travels.

Alice's half (patterns on the AWGs, `labd.qkd.transmitter`) and Bob's half (counters and
estimates, `labd.qkd.service`) may run in two daemons on two hosts. Bob's counters already sort
the clicks by sifted class (`labd.qkd.receiver`); to estimate he needs what Alice announces after
the quantum stage: her basis probability, the intensity of each class and how often she sent it.
That is an ``Announcement``, one JSON message; Bob asks for it by channel.

* One daemon (the default): ``LocalAlice`` hands Bob the announcement in-process.
* Two sites: Alice's daemon serves ``AliceServer`` (a ZeroMQ REP socket); Bob's uses
  ``RemoteAlice`` (REQ, with a timeout and a fresh socket after one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import zmq
import zmq.asyncio
from pydantic import BaseModel, ConfigDict, ValidationError

from labd.qkd.patterns import Pattern


class Announcement(BaseModel):
    """Alice's announcement for one channel's pattern."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: int
    pattern_id: str
    clock_hz: float
    p_x: float
    intensities: tuple[float, float, float]  # what her calibrated modulators send: mu, nu1, nu2
    class_shares: tuple[float, float, float]  # share of the slots in each class
    secure: bool  # choices from the OS CSPRNG (False: seeded, for tests only)

    @classmethod
    def of(cls, channel: int, pattern: Pattern) -> Announcement:
        slots = np.bincount(pattern.symbols.intensity, minlength=3) / pattern.symbols.n_slots
        k = pattern.expected_intensities
        return cls(channel=channel, pattern_id=pattern.pattern_id,
                   clock_hz=pattern.settings.clock_hz,
                   p_x=float(pattern.settings.basis_probability),
                   intensities=(float(k[0]), float(k[1]), float(k[2])),
                   class_shares=(float(slots[0]), float(slots[1]), float(slots[2])),
                   secure=pattern.symbols.secure)


class AliceLink(Protocol):
    """How Bob reaches Alice: her announcement for ``channel`` (LookupError if she sends none)."""

    async def announcement(self, channel: int) -> Announcement: ...


class LocalAlice:
    """Alice in the same daemon: her announcements by channel."""

    def __init__(self, announcements: Mapping[int, Announcement]) -> None:
        self.announcements = announcements

    async def announcement(self, channel: int) -> Announcement:
        try:
            return self.announcements[channel]
        except KeyError:
            raise LookupError(f"Alice sends no pattern on channel {channel}") from None


class AliceServer:
    """Alice's side of a two-site link: answers ``{"channel": n}`` with the announcement, or
    ``{"error": "..."}``."""

    def __init__(self, alice: AliceLink, endpoint: str,
                 context: zmq.asyncio.Context | None = None) -> None:
        self.alice = alice
        self.socket = (context or zmq.asyncio.Context.instance()).socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(endpoint)

    async def serve(self) -> None:
        """Answer requests until cancelled."""
        while True:
            request = await self.socket.recv()
            await self.socket.send(await self._answer(request))

    async def _answer(self, request: bytes) -> bytes:
        try:
            channel = json.loads(request)["channel"]
            if not isinstance(channel, int):
                raise TypeError("channel must be an integer")
            return (await self.alice.announcement(channel)).model_dump_json().encode()
        except (ValueError, KeyError, TypeError, LookupError) as exc:
            return json.dumps({"error": str(exc) or type(exc).__name__}).encode()

    def close(self) -> None:
        self.socket.close(linger=0)


class RemoteAlice:
    """Bob's side of a two-site link: a REQ socket to Alice's ``AliceServer``."""

    def __init__(self, endpoint: str, timeout_s: float = 5.0,
                 context: zmq.asyncio.Context | None = None) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.context = context or zmq.asyncio.Context.instance()
        self.socket = self._connect()

    def _connect(self) -> zmq.asyncio.Socket:
        socket = self.context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(self.endpoint)
        return socket

    async def announcement(self, channel: int) -> Announcement:
        await self.socket.send(json.dumps({"channel": channel}).encode())
        if not await self.socket.poll(self.timeout_s * 1000):
            self.socket.close(linger=0)  # a REQ socket that got no reply cannot send again
            self.socket = self._connect()
            raise TimeoutError(f"Alice at {self.endpoint} did not answer in {self.timeout_s} s")
        reply: Any = json.loads(await self.socket.recv())
        if "error" in reply:
            raise LookupError(f"Alice at {self.endpoint}: {reply['error']}")
        try:
            return Announcement.model_validate(reply)
        except ValidationError as exc:
            raise LookupError(f"Alice at {self.endpoint} sent no announcement: {exc}") from exc

    def close(self) -> None:
        self.socket.close(linger=0)
