"""Amonics AEDFA erbium-doped fibre amplifier over RS-232 (directly or through a terminal server).

pymeasure has no driver for it. The protocol (AEDFA programming manual, as public drivers use
it): 19200 8N1, ``:``-headed commands ended by CR+LF, replies ended by CR+LF, set commands never
answered, at least 50 ms between commands. The APC output set-point goes through
``:DRIV:APC:CUR:CH1`` (mW), currents are in mA, states 0 OFF, 1 ON, 2 BUSY, 4 LOCK.

The unit reports no errors: a command it cannot carry out, or one sent too soon, is dropped
silently (a query then times out). So this driver paces every command and reads back what it
sets; a set-point or switch-on the unit did not take is raised as ``InstrumentReportedError``
naming what the unit shows instead (interlock, missing seed, range). Some models take the APC
set-point in W: the unit is read (``:READ:DRIV:UNIT:APC:CH1?``) on connecting.
"""

from __future__ import annotations

import time
from enum import IntEnum
from typing import Any

from pymeasure.instruments import Channel, Instrument
from pymeasure.instruments.validators import strict_discrete_set
from pyvisa.constants import ControlFlow, Parity, StopBits

from drivers.errors import InstrumentReportedError, talking
from drivers.visa import low_latency

MIN_INTERVAL_S = 0.05  # the manual's minimum delay between successive commands
BAUD_RATE = 19200
_BITS_PER_CHARACTER = 10  # start + 8 data + stop
_SETPOINT_TOLERANCE_MW = 0.5
_MW_PER_UNIT = {"MW": 1.0, "W": 1000.0}  # the APC set-point is in mW or W, depending on model

SERIAL_SETTINGS = {"baud_rate": BAUD_RATE, "data_bits": 8, "parity": Parity.none,
                   "stop_bits": StopBits.one, "flow_control": ControlFlow.none}


class DriveStatus(IntEnum):
    """State of the master switch or of a pump channel."""

    OFF = 0
    ON = 1
    BUSY = 2  # switching on
    LOCK = 4  # locked out by the interlock or by missing seed


def _flag(value: Any) -> bool:
    """A 0/1 reply as a bool; anything else is unreadable."""
    if value not in (0, 1):
        raise ValueError(f"expected 0 or 1, got {value!r}")
    return bool(value)


class PumpChannel(Channel):
    """One pump driver of the amplifier (ACC mode: its current is set directly)."""

    acc_current_setpoint_ma = Channel.control(
        ":DRIV:ACC:CUR:CH{ch}?", ":DRIV:ACC:CUR:CH{ch} %.1f",
        """Control the pump current set-point in ACC mode (mA).""")
    acc_status = Channel.control(
        ":DRIV:ACC:STAT:CH{ch}?", ":DRIV:ACC:STAT:CH{ch} %d",
        """Control whether the channel is enabled in ACC mode (reads a ``DriveStatus``).""",
        cast=int, get_process=DriveStatus, set_process=int)
    current_ma = Channel.measurement(
        ":SENS:CUR:CH{ch}?", """Measure the pump current (mA).""")
    max_acc_current_ma = Channel.measurement(
        ":READ:DRIV:MAX:ACC:CH{ch}?", """Get the largest ACC current set-point (mA).""")


class AEDFA(Instrument):
    """Amonics AEDFA: paced, LF-framed RS-232 ASCII commands, 19200 8N1 on a serial port."""

    pumps = Instrument.MultiChannelCreator(PumpChannel, (1, 2), prefix="pump_")
    min_interval_s = MIN_INTERVAL_S
    margin_s = 0.02  # what a terminal server's network path or a busy host may take off a gap

    mode = Instrument.control(
        ":MODE:SW:CH1?", ":MODE:SW:CH1 %s",
        """Control the control mode: ``ACC`` (pump currents) or ``APC`` (output power).""",
        cast=str, validator=strict_discrete_set, values=("ACC", "APC"))
    master = Instrument.control(
        ":DRIV:MCTRL?", ":DRIV:MCTRL %d",
        """Control the master switch of the pumps (reads a ``DriveStatus``).""",
        cast=int, get_process=DriveStatus, set_process=int)
    apc_output_setpoint = Instrument.control(
        ":DRIV:APC:CUR:CH1?", ":DRIV:APC:CUR:CH1 %.6g",
        """Control the output power set-point in APC mode (in ``apc_unit``).""")
    apc_unit = Instrument.measurement(
        ":READ:DRIV:UNIT:APC:CH1?", """Get the unit of the APC set-point: ``mW`` or ``W``.""",
        cast=str)
    apc_status = Instrument.control(
        ":DRIV:APC:STAT:CH1?", ":DRIV:APC:STAT:CH1 %d",
        """Control whether the APC loop is enabled (reads a ``DriveStatus``).""",
        cast=int, get_process=DriveStatus, set_process=int)
    max_apc_output = Instrument.measurement(
        ":READ:DRIV:MAX:APC:CH1?", """Get the largest APC output set-point (in ``apc_unit``).""")
    input_power_mw = Instrument.measurement(
        ":SENS:POW:IN:CH1?", """Measure the seed power at the input (mW).""")
    output_power_mw = Instrument.measurement(
        ":SENS:POW:OUT:CH1?", """Measure the output power (mW).""")
    box_temperature_c = Instrument.measurement(
        ":SENS:TEMP:BOX?", """Measure the case temperature (degC).""")
    interlock_locked = Instrument.measurement(
        ":DRIV:INTERLOCK?", """Get whether the interlock has locked the pumps out.""",
        cast=int, get_process=_flag)
    seed_lost = Instrument.measurement(
        ":SENS:THRES:ALARM:POW:IN:LOS:CH1?",
        """Get whether the input power is below the loss-of-seed threshold now.""",
        cast=int, get_process=_flag)
    seed_lost_latched = Instrument.measurement(
        ":SENS:THRES:ALARM:POW:IN:LOS:CH1:LATCH?",
        """Get whether the seed was lost since the pumps were last switched on.""",
        cast=int, get_process=_flag)
    seed_threshold_dbm = Instrument.measurement(
        ":THRES:POW:IN:LEV:SET1?", """Get the loss-of-seed threshold (dBm).""")

    def __init__(self, adapter: Any, name: str = "Amonics AEDFA", **kwargs: Any) -> None:
        kwargs.setdefault("read_termination", "\r\n")
        kwargs.setdefault("write_termination", "\r\n")
        super().__init__(adapter, name, includeSCPI=False, asrl=SERIAL_SETTINGS, **kwargs)
        self._next_command_s = 0.0

    def unlock_interlock(self) -> None:
        """Release the interlock lock-out (the unit refuses while the loop is open)."""
        self.write(":THRES:INTERLOCK:UNLOCK 1")

    def write(self, command: str, **kwargs: Any) -> None:
        """Send a command no sooner than ``min_interval_s`` (and a margin) after the last one."""
        time.sleep(max(self._next_command_s - time.monotonic(), 0.0))
        try:
            super().write(command, **kwargs)
        finally:
            line_s = (len(command) + 2) * _BITS_PER_CHARACTER / BAUD_RATE
            self._next_command_s = time.monotonic() + line_s + self._gap_s()

    def read(self, **kwargs: Any) -> str:
        """Read a reply; the next command waits the gap after it, too."""
        try:
            return str(super().read(**kwargs))
        finally:
            self._next_command_s = max(self._next_command_s, time.monotonic() + self._gap_s())

    def _gap_s(self) -> float:
        return self.min_interval_s + self.margin_s


class AmonicsEdfa:
    """The ``Edfa`` role on an AEDFA: APC mode, output in W, pumps on/off, seed and interlock."""

    def __init__(self, resource: str, name: str, timeout_s: float = 2.0) -> None:
        self.name = name
        with talking(name, "connect"):
            self.device = AEDFA(resource, name=name, visa_library="@py",
                                timeout=int(timeout_s * 1000))
            low_latency(self.device.adapter)
        with talking(name, ":MODE:SW:CH1"):
            self.mode = self._take_apc_mode()
        with talking(name, ":READ:DRIV:UNIT:APC:CH1?"):
            unit = str(self.device.apc_unit)
            if unit.upper() not in _MW_PER_UNIT:
                raise ValueError(f"APC set-point unit {unit!r}")
            self._mw_per_unit = _MW_PER_UNIT[unit.upper()]

    def _take_apc_mode(self) -> str:
        """Switch to APC unless the pumps run in ACC (then leave the unit as it is)."""
        mode = str(self.device.mode)
        if mode != "APC" and self.device.master is DriveStatus.OFF:
            self.device.mode = "APC"
            mode = str(self.device.mode)
        return mode

    def _require_apc(self) -> None:
        if self.mode != "APC":
            raise InstrumentReportedError(
                self.name, f"unit runs in {self.mode} mode; switch it off to take APC control")

    @property
    def enabled(self) -> bool:
        with talking(self.name, ":DRIV:MCTRL?"):
            return self.device.master in (DriveStatus.ON, DriveStatus.BUSY)

    @enabled.setter
    def enabled(self, value: bool) -> None:
        with talking(self.name, ":DRIV:MCTRL"):
            if value:
                self._switch_on()
            else:
                self._switch_off()

    def _switch_on(self) -> None:
        self._require_apc()
        self.device.apc_status = 1
        self.device.master = 1
        if self.device.master not in (DriveStatus.ON, DriveStatus.BUSY):
            raise InstrumentReportedError(self.name, f"pumps not switched on: {self._lockout()}")

    def _lockout(self) -> str:
        """What keeps the pumps off, as the unit shows it."""
        if self.device.interlock_locked:
            return "interlock locked (close the loop, then reset it)"
        if self.device.seed_lost:
            return (f"no seed: {self.device.input_power_mw:.3g} mW at the input, below "
                    f"{self.device.seed_threshold_dbm:.1f} dBm")
        return "the unit refused"

    def _switch_off(self) -> None:
        self.device.master = 0
        self._disable_channels()

    def _disable_channels(self) -> None:
        if self.mode == "APC":
            self.device.apc_status = 0
        else:
            for pump in self.device.pumps.values():
                pump.acc_status = 0

    @property
    def output_w(self) -> float:
        with talking(self.name, ":DRIV:APC:CUR:CH1?"):
            return self._setpoint_mw() / 1000

    @output_w.setter
    def output_w(self, value: float) -> None:
        with talking(self.name, ":DRIV:APC:CUR:CH1"):
            self._require_apc()
            setpoint_mw = round(value * 1000, 1)
            self.device.apc_output_setpoint = setpoint_mw / self._mw_per_unit
            held_mw = self._setpoint_mw()
            if abs(held_mw - setpoint_mw) > _SETPOINT_TOLERANCE_MW:
                largest_mw = float(self.device.max_apc_output) * self._mw_per_unit
                raise InstrumentReportedError(
                    self.name, f"set-point {setpoint_mw:.1f} mW not taken: the unit holds "
                    f"{held_mw:.1f} mW (it accepts 0 to {largest_mw:.1f} mW)")

    def _setpoint_mw(self) -> float:
        return float(self.device.apc_output_setpoint) * self._mw_per_unit

    @property
    def measured_output_w(self) -> float:
        with talking(self.name, ":SENS:POW:OUT:CH1?"):
            return float(self.device.output_power_mw) / 1000

    @property
    def input_mw(self) -> float:
        with talking(self.name, ":SENS:POW:IN:CH1?"):
            return float(self.device.input_power_mw)

    @property
    def seed_ok(self) -> bool:
        with talking(self.name, ":SENS:THRES:ALARM:POW:IN:LOS:CH1?"):
            return not self.device.seed_lost

    @property
    def interlock_ok(self) -> bool:
        with talking(self.name, ":DRIV:INTERLOCK?"):
            return not self.device.interlock_locked

    def reset_interlock(self) -> None:
        """Release the interlock lock-out once the loop is closed again."""
        with talking(self.name, ":THRES:INTERLOCK:UNLOCK"):
            self.device.unlock_interlock()
            if self.device.interlock_locked:
                raise InstrumentReportedError(self.name, "interlock still locked: loop open")

    def safe_state(self) -> None:
        """Pumps off at once, set-point to zero, channel disabled; check the pumps are off."""
        with talking(self.name, ":DRIV:MCTRL 0"):
            self.device.master = 0
            self.device.apc_output_setpoint = 0
            self._disable_channels()
            if self.device.master is not DriveStatus.OFF:
                raise InstrumentReportedError(self.name, "pumps still on after switch-off")

    def close(self) -> None:
        self.device.adapter.close()
