"""ID Quantique ID1000 Time Controller: SCPI-like text over ZeroMQ, a REP socket on TCP 5555.

What the real controller does ([V] read in IDQ's example scripts, in the Time Controller Series
user manual, or in public drivers used with the hardware; [I] inferred):

- One ZeroMQ frame per message, no terminator; every message gets exactly one reply, setters
  included [V]. Headers are case-insensitive, with short and long forms and numeric suffixes;
  units ``;`` separate, and a unit without a leading ``:`` continues the branch of the one before
  (``INPU1:COUN:INTE 1000;MODE CYCL``) [V]; the replies of the units are joined by ``;`` [V].
- Setters answer ``Value set to <value>`` (ENAB, COUN:INTE, COUN:MODE, THRE [V]; the value
  echoed as stored [I]); ``COUN:RESE`` answers ``Counter value set to 0 `` (trailing space) [V].
  ``ENAB`` alone means ``ENAB ON`` [V]. Queries: ``ENAB?`` ON|OFF [V], ``THRE?`` ``0.999424V``
  [V], ``COUN?`` an integer [V], ``COUN:INTE?`` integer ms [I], ``COUN:MODE?`` CYCLE|ACCUM [I],
  ``LINK?`` a block name or NONE [V], ``INPU#:DELAY?`` ``<ps>TB`` (1 TB = 1 ps) [I], ``*IDN?``
  ``ID Quantique,ID1000,<serial>,<firmware>`` [I].
- No error queue: an error is the reply itself, the name of the firmware's SCPI parser error
  (JPA-SCPI names). ``SCPI_ERR_INVALID_CMD`` (unknown header) and ``SCPI_ERR_PARAM_TYPE``
  (unparsable argument) are seen in a public driver [V]; ``SCPI_ERR_PARAM_COUNT``,
  ``SCPI_ERR_PARAM_UNITS``, ``SCPI_ERR_INVALID_VALUE`` (out of range), ``SCPI_ERR_NUM_SUF_INVALID``
  and ``SCPI_ERR_NO_COMMAND`` are that parser's codes for the other cases [I].
- Thresholds take V or mV [V] and are truncated to 1.024 mV steps (1 V reads back 0.999424 V on a
  controller of the same series) [V]; range -2 to +3 V [I]. Integration time 1 to 65535 ms [V];
  a counter reports the count of its last completed window (CYCLE) [V], so counts appear one
  window after a reset or a new integration time (the new window starts then) [I].
- Combiners ``TSCO1`` to ``TSCO12`` [I]; here a combiner wired in ``gated`` counts the clicks of
  its detector inputs inside the marker windows of its gate classes: one (input, class) pair, or
  several ORed (a two-SPD receiver's sifted errors are detector 0 in some classes' gates and
  detector 1 in others'; see ``sim_backends.world.counters`` and ``qkd_feed.sifted_gates``).

Not emulated: histograms (HIST#), timestamps (RAW#, RECord), generators, outputs, DELAy blocks,
and link setters (the combiners' links are the testbed's wiring table); they answer
``SCPI_ERR_INVALID_CMD``. Faults: ``drop_connection`` closes the socket at the next message and
listens again once cleared; ``stall`` holds the reply until cleared (a REP socket answers in order,
so a hung controller answers late, usually to a client that has given up).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import zmq
import zmq.asyncio

from sim_backends.faults import GARBAGE, Faults
from sim_backends.scpi import Call, ScpiError, compile_pattern
from sim_backends.world.counters import Counter, CounterMode, CountingSystem, DetectorInput

INPUTS = (1, 2, 3, 4)
COMBINERS = tuple(range(1, 13))
_THRESHOLD_STEP_V = 1.024e-3
_THRESHOLD_RANGE_V = (-2.0, 3.0)
_INTEGRATION_RANGE_MS = (1, 65535)
_DELAY_RANGE_PS = (0, 10**12)
_POLL_S = 0.01  # how often a stalled or unplugged controller looks at its fault knobs

# SCPI errors raised by the shared parser helpers, by the name this firmware replies with
_PARSER_ERRORS = {-104: "SCPI_ERR_PARAM_TYPE", -109: "SCPI_ERR_PARAM_COUNT",
                  -131: "SCPI_ERR_PARAM_UNITS", -222: "SCPI_ERR_INVALID_VALUE",
                  -224: "SCPI_ERR_PARAM_TYPE"}
_MODES = {"CYCLe": CounterMode.CYCLE, "ACCUm": CounterMode.ACCUMULATE}
_MODE_NAMES = {CounterMode.CYCLE: "CYCLE", CounterMode.ACCUMULATE: "ACCUM"}


class Refused(Exception):
    """The controller rejects a program message unit; the reply is the parser error's name."""


@dataclass(frozen=True)
class GatedCounterWiring:
    """A combiner counting detector clicks in marker windows: per (detector input, gate class)
    pair, that input's clicks in that class's gates, all pairs summed."""

    gates: tuple[tuple[int, str], ...]
    marker_link: str  # the block carrying the AWG marker, e.g. "INPU3"

    def __post_init__(self) -> None:
        if not self.gates:
            raise ValueError("a gated combiner needs at least one (input, gate class) pair")


@dataclass
class _CounterGroup:
    """Counters that a combiner reads, sets and resets as one (their windows in step)."""

    members: list[Counter]

    @property
    def value(self) -> int:
        return sum(c.value for c in self.members)

    @property
    def integration_time_s(self) -> float:
        return self.members[0].integration_time_s

    @integration_time_s.setter
    def integration_time_s(self, seconds: float) -> None:
        for counter in self.members:
            counter.integration_time_s = seconds

    @property
    def mode(self) -> CounterMode:
        return self.members[0].mode

    @mode.setter
    def mode(self, mode: CounterMode) -> None:
        for counter in self.members:
            counter.mode = mode

    def restart(self, now_s: float) -> None:
        for counter in self.members:
            counter.restart(now_s)


@dataclass
class _Combiner:
    counter: _CounterGroup
    wiring: GatedCounterWiring | None


@dataclass(frozen=True)
class _Node:
    pattern: str
    query: Callable[[Call], str] | None = None
    write: Callable[[Call], str] | None = None  # returns the acknowledgement
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", compile_pattern(self.pattern))


class ID1000Emulator:
    """One ID1000 counting the clicks of the testbed's detectors, served on a REP socket."""

    def __init__(self, counting: CountingSystem, sync: Callable[[], float],
                 gated: Mapping[int, GatedCounterWiring] | None = None,
                 serial: str = "ID1000-0001") -> None:
        self.counting = counting
        self.sync = sync
        self.serial = serial
        self.faults = Faults()
        self.inputs = {n: counting.inputs.setdefault(n, DetectorInput()) for n in INPUTS}
        self.input_counters = {n: counting.add_counter(n) for n in INPUTS}
        self.delays_ps = dict.fromkeys(INPUTS, 0)
        wiring = dict(gated or {})
        if not set(wiring) <= set(COMBINERS) or any(
                n not in INPUTS for w in wiring.values() for n, _ in w.gates):
            raise ValueError(f"combiners are TSCO{COMBINERS[0]}..{COMBINERS[-1]} on inputs "
                             f"{INPUTS}: {wiring}")
        self.combiners = {k: self._combiner_block(wiring.get(k)) for k in COMBINERS}
        self._nodes = self._command_tree()
        self._context: zmq.asyncio.Context | None = None
        self._socket: zmq.asyncio.Socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._endpoint = ""

    def _combiner_block(self, wiring: GatedCounterWiring | None) -> _Combiner:
        pairs = [(None, None)] if wiring is None else wiring.gates
        return _Combiner(_CounterGroup([self.counting.add_counter(*pair) for pair in pairs]),
                         wiring)

    # --- the command interpreter -------------------------------------------------------------

    def handle(self, message: str) -> str:
        """Execute one message (units separated by ';') and return its reply."""
        self.sync()
        replies, branch = [], ""
        for unit in filter(None, (u.strip() for u in message.split(";"))):
            header, _, rest = unit.partition(" ")
            if not header.startswith((":", "*")):
                header = branch + header
            if not header.startswith("*"):
                path = header.lstrip(":").rstrip("?")
                branch = path.rpartition(":")[0] + ":" if ":" in path else ""
            replies.append(self._execute(header, rest))
        return ";".join(replies) or "SCPI_ERR_NO_COMMAND"

    def _execute(self, header: str, arguments: str) -> str:
        is_query = header.endswith("?")
        name = header.rstrip("?")
        for node in self._nodes:
            match = node.regex.fullmatch(name)
            if match:
                handler = node.query if is_query else node.write
                if handler is None:
                    return "SCPI_ERR_INVALID_CMD"
                args = tuple(a.strip() for a in arguments.split(",")) if arguments.strip() else ()
                call = Call(args, tuple(int(g or 1) for g in match.groups()))
                try:
                    return handler(call)
                except Refused as exc:
                    return str(exc)
                except ScpiError as exc:
                    return _PARSER_ERRORS.get(exc.code, "SCPI_ERR_PARAM_TYPE")
        return "SCPI_ERR_INVALID_CMD"

    def _command_tree(self) -> list[_Node]:
        return [
            _Node("*IDN", lambda _: f"ID Quantique,ID1000,{self.serial},2.0"),
            _Node("INPUt#:ENABle", self._enabled, self._set_enabled),
            _Node("INPUt#:THREshold", self._threshold, self._set_threshold),
            _Node("INPUt#:DELAy", self._delay, self._set_delay),
            *self._counter_nodes("INPUt#", self._input_counter),
            *self._counter_nodes("TSCO#", lambda c: self._combiner(c).counter),
            _Node("TSCO#:FIRst:LINK", self._first_link),
            _Node("TSCO#:WINDow:ENABle",
                  lambda c: _on_off(self._combiner(c).wiring is not None)),
            _Node("TSCO#:WINDow:BEGIn:LINK", self._window_link),
        ]

    def _counter_nodes(self, block: str,
                       counter: Callable[[Call], Counter | _CounterGroup]) -> list[_Node]:
        """The counter's commands, the same under an input and a combiner."""
        return [
            _Node(f"{block}:COUNter", lambda c: str(counter(c).value)),
            _Node(f"{block}:COUNter:INTEgrationtime", lambda c: _integration(counter(c)),
                  lambda c: _set_integration(counter(c), c, self._now())),
            _Node(f"{block}:COUNter:MODE", lambda c: _MODE_NAMES[counter(c).mode],
                  lambda c: _set_mode(counter(c), c, self._now())),
            _Node(f"{block}:COUNter:RESEt", write=lambda c: _reset(counter(c), self._now())),
        ]

    def _now(self) -> float:
        return self.counting.time_s

    def _input(self, call: Call) -> int:
        if call.suffixes[0] not in INPUTS:
            raise Refused("SCPI_ERR_NUM_SUF_INVALID")
        return call.suffixes[0]

    def _input_counter(self, call: Call) -> Counter:
        return self.input_counters[self._input(call)]

    def _combiner(self, call: Call) -> _Combiner:
        if call.suffixes[0] not in self.combiners:
            raise Refused("SCPI_ERR_NUM_SUF_INVALID")
        return self.combiners[call.suffixes[0]]

    def _enabled(self, call: Call) -> str:
        return _on_off(self.inputs[self._input(call)].enabled)

    def _set_enabled(self, call: Call) -> str:
        self.inputs[self._input(call)].enabled = call.boolean() if call.args else True
        return f"Value set to {self._enabled(call)}"

    def _threshold(self, call: Call) -> str:
        return f"{round(self.inputs[self._input(call)].threshold_v, 6)}V"

    def _set_threshold(self, call: Call) -> str:
        detector_input = self.inputs[self._input(call)]
        volts = call.number(0, {"V": 1.0, "MV": 1e-3})
        if not _THRESHOLD_RANGE_V[0] <= volts <= _THRESHOLD_RANGE_V[1]:
            raise Refused("SCPI_ERR_INVALID_VALUE")
        detector_input.threshold_v = math.trunc(volts / _THRESHOLD_STEP_V) * _THRESHOLD_STEP_V
        return f"Value set to {self._threshold(call)}"

    def _delay(self, call: Call) -> str:
        return f"{self.delays_ps[self._input(call)]}TB"

    def _set_delay(self, call: Call) -> str:
        n = self._input(call)
        picoseconds = round(call.number(0, {"TB": 1.0, "KTB": 1e3, "MTB": 1e6, "GTB": 1e9}))
        if not _DELAY_RANGE_PS[0] <= picoseconds <= _DELAY_RANGE_PS[1]:
            raise Refused("SCPI_ERR_INVALID_VALUE")
        self.delays_ps[n] = picoseconds
        return f"Value set to {self._delay(call)}"

    def _first_link(self, call: Call) -> str:
        wiring = self._combiner(call).wiring
        return f"INPU{wiring.gates[0][0]}" if wiring else "NONE"

    def _window_link(self, call: Call) -> str:
        wiring = self._combiner(call).wiring
        return wiring.marker_link if wiring else "NONE"

    # --- the REP server ----------------------------------------------------------------------

    async def start(self, host: str, port: int) -> None:
        """Listen on ``tcp://host:port`` and answer requests until ``close``."""
        self._endpoint = f"tcp://{host}:{port}"
        self._context = zmq.asyncio.Context()
        self._socket = self._bind()
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def close(self) -> None:
        """Stop answering and close the socket, as a powered-off controller would."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._hang_up()
        if self._context is not None:
            self._context.term()
            self._context = None

    def _bind(self) -> zmq.asyncio.Socket:
        assert self._context is not None
        socket = self._context.socket(zmq.REP)
        socket.setsockopt(zmq.LINGER, 0)
        socket.bind(self._endpoint)
        return socket

    def _hang_up(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    async def _serve(self) -> None:
        while True:
            assert self._socket is not None
            request = await self._socket.recv()
            if self.faults.drop_connection:
                await self._unplugged()
                continue
            reply = self.handle(request.decode("ascii", "replace"))
            while self.faults.stall:
                await asyncio.sleep(_POLL_S)
            await asyncio.sleep(self.faults.reply_delay_s)
            await self._socket.send(GARBAGE if self.faults.garbage_reply else reply.encode())

    async def _unplugged(self) -> None:
        """Hang up, refuse connections while ``drop_connection`` holds, then listen again."""
        self._hang_up()
        while self.faults.drop_connection:
            await asyncio.sleep(_POLL_S)
        while self._socket is None:
            try:
                self._socket = self._bind()
            except zmq.ZMQError:  # the old socket may still hold the port for a moment
                await asyncio.sleep(_POLL_S)


def _on_off(value: bool) -> str:
    return "ON" if value else "OFF"


def _integration(counter: Counter | _CounterGroup) -> str:
    return str(round(counter.integration_time_s * 1000))


def _set_integration(counter: Counter | _CounterGroup, call: Call, now_s: float) -> str:
    milliseconds = round(call.number(0))
    if not _INTEGRATION_RANGE_MS[0] <= milliseconds <= _INTEGRATION_RANGE_MS[1]:
        raise Refused("SCPI_ERR_INVALID_VALUE")
    counter.integration_time_s = milliseconds / 1000
    counter.restart(now_s)
    return f"Value set to {milliseconds}"


def _set_mode(counter: Counter | _CounterGroup, call: Call, now_s: float) -> str:
    word = call.arg().strip()
    mode = next((m for spelling, m in _MODES.items()
                 if compile_pattern(spelling).fullmatch(word)), None)
    if mode is None:
        raise Refused("SCPI_ERR_PARAM_TYPE")
    counter.mode = mode
    counter.restart(now_s)
    return f"Value set to {_MODE_NAMES[mode]}"


def _reset(counter: Counter | _CounterGroup, now_s: float) -> str:
    counter.restart(now_s)
    return "Counter value set to 0 "
