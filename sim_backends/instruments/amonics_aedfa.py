"""Amonics AEDFA (3.5 W booster): its RS-232 ASCII protocol, as a terminal server carries it.

Wire format (AEDFA programming manual, as public drivers use it): 19200 8N1; commands start with
``:`` and end with LF (CR+LF accepted); queries end in ``?`` and are answered with one line ending
CR+LF; set commands are never answered. Numbers are answered as ``%e`` (``3.060000e+02``) in the
unit's units (mA, mW, degC), states as integers: 0 OFF, 1 ON, 2 BUSY, 4 LOCK.

The unit has no error queue and no error reply. What it cannot carry out it does not carry out:
an unknown header, a malformed or out-of-range value, a set it refuses (mode switch while the
pumps run, pumps on without seed) leave the state as it was, and a query it does not know gets no
answer. A command arriving less than ``min_interval_s`` (the manual's 50 ms) after the last one it
executed is lost the same way. The controller's latches (loss of seed, interlock) live in the
world's ``Edfa``.

Inferred, not found in any public source: that unknown or refused commands are silent (one public
driver treats a missing reply as "not supported"), that a too-early command is lost rather than
queued, that channels read LOCK while the seed is missing, and that ``:DRIV:SEED_ST?`` answers 1
until the seed has been present for ``Edfa.seed_settle_s``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

from sim_backends.faults import Faults
from sim_backends.scpi import Call, Command, Reply, ScpiError, compile_pattern, illegal_value
from sim_backends.world.edfa import Edfa, Mode, Status

_MODES = tuple(Mode)


def _number(value: float) -> str:
    return f"{value:e}"


class AedfaEmulator:
    """One AEDFA driving the world's amplifier; ``sync`` advances the world to now."""

    read_terminator = b"\n"
    write_terminator = b"\r\n"

    def __init__(self, edfa: Edfa, sync: Callable[[], float], model: str = "AEDFA-PA-35-B-FA",
                 serial: str = "23051201", min_interval_s: float = 0.05) -> None:
        self.edfa = edfa
        self.sync = sync
        self.model = model
        self.serial = serial
        self.min_interval_s = min_interval_s
        self.faults = Faults()
        self._last_command_s = -math.inf
        self._commands = [(compile_pattern(c.pattern), c) for c in self._table()]

    def new_session(self) -> AedfaEmulator:
        return self  # one serial line, one command interpreter

    def open_interlock(self, is_open: bool = True) -> None:
        """The interlock knob: open (or close again) the unit's interlock loop, as a door would."""
        self.sync()
        self.edfa.interlock_closed = not is_open

    def handle(self, message: str) -> Reply | None:
        """Execute one command line; None when there is nothing to answer (or it was lost)."""
        now = self.sync()
        if now - self._last_command_s < self.min_interval_s:
            return None  # still busy with the previous command: this one is lost
        self._last_command_s = now
        header, _, argument = message.partition(" ")
        for regex, command in self._commands:
            match = regex.fullmatch(header.rstrip("?"))
            if match:
                call = Call((argument.strip(),), tuple(int(g or 1) for g in match.groups()))
                try:
                    return self._run(command, call, header.endswith("?"))
                except ScpiError:
                    return None
        return None

    @staticmethod
    def _run(command: Command, call: Call, is_query: bool) -> Reply | None:
        if is_query:
            return command.query(call) if command.query is not None else None
        if command.write is not None:
            command.write(call)
        return None

    def _table(self) -> list[Command]:
        edfa = self.edfa
        commands = [
            Command(":CAL:SYS:MODEL", lambda _: self.model),
            Command(":CAL:SYS:SERIAL", lambda _: self.serial),
            Command(":READ:MODE:NAMES", lambda _: " ".join(_MODES)),
            Command(":MODE:SW:CH#", self._mode, self._set_mode),
            Command(":DRIV:MCTRL", lambda _: str(int(edfa.master)), self._set_master),
            Command(":SENS:POW:IN:CH#", self._input_mw),
            Command(":SENS:POW:OUT:CH#", self._output_mw),
            Command(":SENS:CUR:CH#", self._pump_current_ma),
            Command(":SENS:TEMP:BOX", lambda _: _number(edfa.box_temperature_c)),
            Command(":DRIV:INTERLOCK", lambda _: str(int(edfa.interlock_locked))),
            Command(":THRES:INTERLOCK:UNLOCK", write=self._unlock),
            Command(":DRIV:SEED_ST", lambda _: str(int(not edfa.seed_stable))),
            Command(":SENS:THRES:ALARM:POW:IN:LOS:CH#", self._seed_loss),
            Command(":SENS:THRES:ALARM:POW:IN:LOS:CH#:LATCH", self._seed_loss_latched),
            Command(":THRES:POW:IN:LEV:SET1", lambda _: _number(edfa.seed_threshold_dbm),
                    self._set_seed_threshold),
        ]
        for mode in _MODES:
            commands += [
                Command(f":DRIV:{mode}:CUR:CH#", partial(self._setpoint, mode),
                        partial(self._set_setpoint, mode)),
                Command(f":DRIV:{mode}:STAT:CH#", partial(self._status, mode),
                        partial(self._set_status, mode)),
                Command(f":READ:DRIV:MAX:{mode}:CH#", partial(self._limit, mode, True)),
                Command(f":READ:DRIV:MIN:{mode}:CH#", partial(self._limit, mode, False)),
                Command(f":READ:DRIV:UNIT:{mode}:CH#", partial(self._unit, mode)),
            ]
        return commands

    # --- helpers: channel numbers, values ---

    def _channel(self, mode: Mode, call: Call) -> int:
        """0-based pump channel of the header's suffix; APC has one channel (all pumps)."""
        channels = len(self.edfa.pump_max_current_ma) if mode is Mode.ACC else 1
        channel = call.suffixes[0]
        if not 1 <= channel <= channels:
            raise illegal_value()
        return channel - 1

    def _max(self, mode: Mode, channel: int) -> float:
        if mode is Mode.ACC:
            return self.edfa.pump_max_current_ma[channel]
        return self.edfa.max_output_w * 1000

    def _value(self, call: Call, low: float, high: float) -> float:
        value = call.number()
        if not low <= value <= high:
            raise illegal_value()
        return value

    # --- queries ---

    def _mode(self, call: Call) -> str:
        self._channel(Mode.APC, call)
        return str(self.edfa.mode)

    def _input_mw(self, call: Call) -> str:
        self._channel(Mode.APC, call)
        return _number(self.edfa.input_power_mw)

    def _output_mw(self, call: Call) -> str:
        self._channel(Mode.APC, call)
        return _number(self.edfa.output_power_mw)

    def _pump_current_ma(self, call: Call) -> str:
        return _number(self.edfa.pump_current_ma[self._channel(Mode.ACC, call)])

    def _seed_loss(self, call: Call) -> str:
        self._channel(Mode.APC, call)
        return str(int(not self.edfa.seed_present))

    def _seed_loss_latched(self, call: Call) -> str:
        self._channel(Mode.APC, call)
        return str(int(self.edfa.seed_alarm_latched or not self.edfa.seed_present))

    def _setpoint(self, mode: Mode, call: Call) -> str:
        channel = self._channel(mode, call)
        if mode is Mode.ACC:
            return _number(self.edfa.acc_setpoint_ma[channel])
        return _number(self.edfa.apc_setpoint_mw)

    def _status(self, mode: Mode, call: Call) -> str:
        return str(int(self.edfa.channel_status(self._channel(mode, call))))

    def _limit(self, mode: Mode, maximum: bool, call: Call) -> str:
        return _number(self._max(mode, self._channel(mode, call)) if maximum else 0.0)

    def _unit(self, mode: Mode, call: Call) -> str:
        self._channel(mode, call)
        return "mA" if mode is Mode.ACC else "mW"

    # --- settings ---

    def _set_mode(self, call: Call) -> None:
        self._channel(Mode.APC, call)
        text = call.arg().upper()
        if text not in _MODES:
            raise illegal_value()
        self.edfa.set_mode(Mode(text))

    def _set_master(self, call: Call) -> None:
        if call.boolean():
            self.edfa.switch_on()
        else:
            self.edfa.switch_off()

    def _set_setpoint(self, mode: Mode, call: Call) -> None:
        channel = self._channel(mode, call)
        value = self._value(call, 0.0, self._max(mode, channel))
        if mode is Mode.ACC:
            self.edfa.acc_setpoint_ma[channel] = value
        else:
            self.edfa.apc_setpoint_mw = value

    def _set_status(self, mode: Mode, call: Call) -> None:
        channel = self._channel(mode, call)
        on = call.boolean()
        if on and self.edfa.channel_status(channel) is Status.LOCK:
            return  # a locked channel cannot be enabled
        self.edfa.set_channel(channel, on)

    def _unlock(self, call: Call) -> None:
        if call.boolean():
            self.edfa.unlock_interlock()

    def _set_seed_threshold(self, call: Call) -> None:
        self.edfa.seed_threshold_dbm = self._value(call, -40.0, 10.0)
