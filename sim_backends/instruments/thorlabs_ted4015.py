"""Thorlabs TED4015 TEC controller: Series 4000 SCPI over USB-TMC, here a loopback socket, LF.

Commands (long and short forms; ``[SOURce[1]]`` may be omitted, SOURce2 belongs to the ITC4000):
``[SOUR]:TEMP[:SPO] <v>[C|K|F]`` / ``?`` (also ``? MIN|MAX``), ``MEAS[:SCAL]:TEMP?``,
``OUTP[1][:STAT] ON|OFF|1|0`` / ``?`` (``0``/``1``), ``[SOUR]:TEMP:LCON:GAIN|INT|DER|PER`` and
queries, ``UNIT:TEMP C|CEL|K|F|FAR`` / ``?`` (``CEL``, ``K``, ``FAR``), ``*IDN?``, ``*OPC?``,
``*CLS``, ``SYST:ERR?``. A compound message resolves headers against the previous
unit's path (IEEE 488.2), so ``SOUR:TEMP:LCON:GAIN 1;INT 0.1`` sets both constants. Numbers are
answered in NR3 (``2.500000E+01``), temperatures in the selected unit. Errors go to a 10-deep
queue read by ``SYST:ERR?``, empty reply ``+0,"No error"``; a set-point outside the hardware range
is -222, an unknown header -113.

Sources: the Series 4000 SCPI reference (LF terminator, ``*IDN?`` format, 10-deep queue, the
``+0,"No error"`` reply), public drivers (SweepMe, pyvisa scripts: the commands, ``OUTP?`` as
0/1, the loop constants' units and the ``*IDN?`` retry). Inferred, to check against a unit: NR3
with six decimals, the -45 to 145 degC range, the loop-constant limits, ``CEL``/``FAR`` (as the
sister CLD101x answers), which errors a bad suffix or unit gives.

First-command quirk: the real unit sometimes ignores the first message after a connection. Here it
is deterministic: the first ``lost_after_connect`` messages of every connection (default 1) are
dropped unexecuted and unanswered, so a client must probe with ``*IDN?`` until it is answered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from sim_backends.faults import Faults
from sim_backends.scpi import (
    Call,
    Command,
    ScpiError,
    ScpiParser,
    data_out_of_range,
    illegal_value,
    undefined_header,
)
from sim_backends.world.tec import KELVIN_AT_0C, TecMount

_QUEUE_LENGTH = 10  # Series 4000 manual: "a record of up to 10 errors"
_TO_CELSIUS: dict[str, Callable[[float], float]] = {
    "C": lambda v: v,
    "K": lambda v: v - KELVIN_AT_0C,
    "F": lambda v: (v - 32.0) * 5.0 / 9.0,
}
_FROM_CELSIUS: dict[str, Callable[[float], float]] = {
    "C": lambda v: v,
    "K": lambda v: v + KELVIN_AT_0C,
    "F": lambda v: v * 9.0 / 5.0 + 32.0,
}
_UNIT_NAMES = {"C": "C", "CEL": "C", "K": "K", "F": "F", "FAR": "F"}
_UNIT_REPLY = {"C": "CEL", "K": "K", "F": "FAR"}
_PID_RANGE = (0.0, 1000.0)  # accepted loop constants (the manual's limits are not known here)


class _Series4000Parser(ScpiParser):
    """The SCPI interpreter with the Series 4000's empty-queue reply."""

    def _next(self, _: Call) -> str:
        return str(self.errors.popleft()) if self.errors else '+0,"No error"'


class TED4015Session:
    """One USB-TMC connection: loses its first messages, then runs the instrument's parser."""

    def __init__(self, emulator: TED4015Emulator) -> None:
        self.emulator = emulator
        self.messages_to_lose = emulator.lost_after_connect

    def handle(self, message: str) -> str | bytes | None:
        if self.messages_to_lose > 0:
            self.messages_to_lose -= 1
            return None
        self.emulator.sync()
        return self.emulator.parser.handle(message)


class TED4015Emulator:
    """One TED4015 driving the TEC of the simulated chip mount."""

    read_terminator = b"\n"
    write_terminator = b"\n"

    def __init__(self, tec: TecMount, sync: Callable[[], float], serial: str = "M00412345",
                 lost_after_connect: int = 1) -> None:
        self.tec = tec
        self.sync = sync
        self.serial = serial
        self.lost_after_connect = lost_after_connect
        self.unit = "C"
        self.parser = _Series4000Parser(self._commands(), deque(maxlen=_QUEUE_LENGTH))
        self.faults = Faults()

    def new_session(self) -> TED4015Session:
        return TED4015Session(self)

    def inject_error(self, error: ScpiError) -> None:
        """Queue an instrument error (a sensor or TEC fault), as the unit would report it."""
        self.parser.push(error)

    def _commands(self) -> list[Command]:
        tec = self.tec
        return [
            Command("*IDN", lambda _: f"THORLABS,TED4015,{self.serial},1.2.0/1.0.3/1.5.0"),
            Command("*OPC", lambda _: "1"),
            Command("UNIT:TEMPerature", lambda _: _UNIT_REPLY[self.unit], self._set_unit),
            Command("MEASure[:SCALar]:TEMPerature", lambda c: self._temperature(c, tec.measured_c)),
            Command("OUTPut#[:STATe]", lambda c: self._output(c), self._set_output),
            Command("[SOURce#]:TEMPerature:LCONstants:GAIN",
                    lambda c: self._constant(c, tec.gain_a_per_k),
                    lambda c: self._set_constant(c, "gain_a_per_k")),
            Command("[SOURce#]:TEMPerature:LCONstants:INTegral",
                    lambda c: self._constant(c, tec.integral_a_per_k_s),
                    lambda c: self._set_constant(c, "integral_a_per_k_s")),
            Command("[SOURce#]:TEMPerature:LCONstants:DERivative",
                    lambda c: self._constant(c, tec.derivative_a_s_per_k),
                    lambda c: self._set_constant(c, "derivative_a_s_per_k")),
            Command("[SOURce#]:TEMPerature:LCONstants:PERiod",
                    lambda c: self._constant(c, tec.period_s),
                    lambda c: self._set_constant(c, "period_s")),
            Command("[SOURce#]:TEMPerature[:SPOint]", self._setpoint, self._set_setpoint),
        ]

    def _number(self, value: float) -> str:
        return f"{value:.6E}"

    def _temperature(self, call: Call, value_c: float) -> str:
        _one_channel(call)
        return self._number(_FROM_CELSIUS[self.unit](value_c))

    def _setpoint(self, call: Call) -> str:
        low, high = self.tec.setpoint_range_c
        which = call.args[0].upper()[:3] if call.args else ""
        return self._temperature(call, {"MIN": low, "MAX": high}.get(which, self.tec.setpoint_c))

    def _set_setpoint(self, call: Call) -> None:
        _one_channel(call)
        value = call.number(0, dict.fromkeys(_UNIT_NAMES, 1.0))  # checks number and suffix
        suffix = call.arg().strip().lstrip("+-.0123456789eE ").upper()  # what follows the number
        value_c = _TO_CELSIUS[_UNIT_NAMES.get(suffix, self.unit)](value)
        low, high = self.tec.setpoint_range_c
        if not low <= value_c <= high:
            raise data_out_of_range()
        self.tec.set_setpoint(value_c)

    def _output(self, call: Call) -> str:
        _one_channel(call)
        return str(int(self.tec.output_on))

    def _set_output(self, call: Call) -> None:
        _one_channel(call)
        self.tec.set_output(call.boolean())

    def _constant(self, call: Call, value: float) -> str:
        _one_channel(call)
        return self._number(value)

    def _set_constant(self, call: Call, name: str) -> None:
        _one_channel(call)
        value = call.number()
        if not _PID_RANGE[0] <= value <= _PID_RANGE[1]:
            raise data_out_of_range()
        setattr(self.tec, name, value)

    def _set_unit(self, call: Call) -> None:
        unit = _UNIT_NAMES.get(call.arg().strip().upper())
        if unit is None:
            raise illegal_value()
        self.unit = unit


def _one_channel(call: Call) -> None:
    """The TED4015 has one TEC channel: SOURce1 / OUTPut1 (or no suffix) only."""
    if any(suffix != 1 for suffix in call.suffixes):
        raise undefined_header()
