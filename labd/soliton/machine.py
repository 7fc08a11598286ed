"""The soliton-switching state machine as one explicit transition table.

Every state, every event and every allowed transition is listed in ``TRANSITIONS``; anything
else is refused. The machine only keeps the state: the controller decides which event happened
(from measurements) and fires it with a reason, and every transition is published on
``soliton.state`` and recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any


class State(StrEnum):
    IDLE = "idle"
    PREPARING = "preparing"  # TEC settled, lasers on, aux parked, EDFA ramped
    SWEEPING = "sweeping"  # pump tuned blue to red, comb power recorded
    SOLITON_DETECTED = "soliton_detected"  # N >= 1 solitons, N estimated
    STEPPING_DOWN = "stepping_down"  # backward tuning or TEC warming, one soliton at a time
    VERIFYING = "verifying"  # OSA: spacing, sech^2 envelope, bandwidth, lines over the floor
    SINGLE_SOLITON = "single_soliton"
    LOCKED = "locked"  # comb power held by the aux laser or the TEC
    RECOVERING = "recovering"  # soliton lost: back through the sweep
    FAULT = "fault"  # an instrument fault or interlock: sources in safe state


class Event(StrEnum):
    START = "start"
    PREPARED = "prepared"
    SOLITONS_FOUND = "solitons_found"
    NO_SOLITON = "no_soliton"
    STEP_DOWN = "step_down"
    SINGLE_FOUND = "single_found"
    VERIFIED = "verified"
    NOT_SINGLE = "not_single"
    LOCK = "lock"
    UNLOCK = "unlock"
    LOST = "lost"
    RETRY = "retry"  # an attempt found no soliton, or lost them all: back through the sweep
    STOP = "stop"
    FAULT = "fault"
    RESET = "reset"


S, E = State, Event
TRANSITIONS: dict[State, dict[Event, State]] = {
    S.IDLE: {E.START: S.PREPARING},
    S.PREPARING: {E.PREPARED: S.SWEEPING},
    S.SWEEPING: {E.SOLITONS_FOUND: S.SOLITON_DETECTED, E.NO_SOLITON: S.SWEEPING},
    S.SOLITON_DETECTED: {E.STEP_DOWN: S.STEPPING_DOWN, E.SINGLE_FOUND: S.VERIFYING,
                         E.LOST: S.RECOVERING},
    S.STEPPING_DOWN: {E.SINGLE_FOUND: S.VERIFYING, E.LOST: S.RECOVERING},
    S.VERIFYING: {E.VERIFIED: S.SINGLE_SOLITON, E.NOT_SINGLE: S.STEPPING_DOWN,
                  E.LOST: S.RECOVERING},
    S.SINGLE_SOLITON: {E.LOCK: S.LOCKED, E.LOST: S.RECOVERING},
    S.LOCKED: {E.UNLOCK: S.SINGLE_SOLITON, E.LOST: S.RECOVERING},
    S.RECOVERING: {E.PREPARED: S.SWEEPING},
    S.FAULT: {E.RESET: S.IDLE},
}
# An attempt that did not end on one soliton goes back through the sweep (the controller bounds
# how often).
for _state in (S.SWEEPING, S.SOLITON_DETECTED, S.STEPPING_DOWN, S.VERIFYING, S.RECOVERING):
    TRANSITIONS[_state][E.RETRY] = S.RECOVERING
# From every state but fault: stop goes to idle, a fault to fault.
for _state, _moves in TRANSITIONS.items():
    if _state is not S.FAULT:
        _moves.setdefault(E.STOP, S.IDLE)
        _moves.setdefault(E.FAULT, S.FAULT)


class IllegalTransition(Exception):
    """An event the current state does not allow."""


Publish = Callable[[str, dict[str, Any]], object]
Record = Callable[[float, str, str, str, str], None]  # (t, machine, source, target, reason)


class SolitonMachine:
    """The current state, moved only along ``TRANSITIONS``."""

    name = "soliton"

    def __init__(self, publish: Publish, record: Record) -> None:
        self.state = State.IDLE
        self.reason = "start-up"
        self.since = time.time()
        self._publish = publish
        self._record = record

    def fire(self, event: Event, reason: str) -> State:
        """Take the transition ``event`` names from the current state; publish and record it."""
        target = TRANSITIONS[self.state].get(event)
        if target is None:
            allowed = ", ".join(TRANSITIONS[self.state])
            raise IllegalTransition(f"{event} is not allowed in state {self.state} "
                                    f"(allowed: {allowed})")
        source, self.state, self.reason, self.since = self.state, target, reason, time.time()
        self._record(self.since, self.name, source, target, f"{event}: {reason}")
        self._publish("soliton.state", {"state": target, "previous": source, "event": event,
                                        "reason": reason})
        return target

    def allows(self, event: Event) -> bool:
        return event in TRANSITIONS[self.state]
