"""Fault injection: knobs that make an emulated instrument fail the way real ones do.

Every emulator carries a ``Faults``; its server reads the knobs on every message, so a test (or
the ``[simulation.faults.<instrument>]`` table) can change them while clients are connected.
Instrument-level faults (a queued error, an interlock trip) belong to the emulator itself, through
``inject_error`` and the world device's interlock.
"""

from __future__ import annotations

from dataclasses import dataclass

GARBAGE = b"\xff\xfe#?!garbage\x00"


@dataclass
class Faults:
    """How the instrument's connection misbehaves right now."""

    drop_connection: bool = False  # hang up on the next message, and on every connection after
    stall: bool = False  # read messages but never answer (a hung instrument)
    reply_delay_s: float = 0.0  # answer, but this much later (a slow instrument)
    garbage_reply: bool = False  # answer with bytes that are no valid reply

    def clear(self) -> None:
        """Back to a healthy instrument."""
        self.drop_connection = self.stall = self.garbage_reply = False
        self.reply_delay_s = 0.0
