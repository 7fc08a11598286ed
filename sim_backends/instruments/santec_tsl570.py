"""Santec TSL-570 tunable laser: SCPI and Legacy command sets over a raw socket, CR terminated.

SCPI mode (``:SYST:COMM:CODE 1``) takes wavelength in m; Legacy (``0``) in nm. Power is in dBm or
mW after ``:POW:UNIT 0|1``. The set wavelength is rounded to the laser's 0.1 pm resolution.
Continuous sweeps (``:WAV:SWE:STAR/STOP/SPE``, ``:WAV:SWE 1|0``, state ``:WAV:SWE?``) run at the
hardware speeds 1 to 200 nm/s; slower tuning is done by stepping the set wavelength. Fine tuning
``:WAV:FIN -100..100`` offsets the wavelength by that many fine steps (0.1 pm each, assumed [I]).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from sim_backends.faults import Faults
from sim_backends.scpi import Call, Command, ScpiParser, data_out_of_range, illegal_value
from sim_backends.world.laser import LaserDrift, TunableLaser

_RESOLUTION_M = 1e-13
_SWEEP_SPEEDS_NM_PER_S = (1, 2, 5, 10, 20, 50, 100, 200)
_FINE_STEP_PM = 0.1  # per fine-tuning unit [I]: the drivers do not state it


class TSL570Emulator:
    """One TSL-570 driving a laser of the simulated world."""

    read_terminator = b"\r"
    write_terminator = b"\r"

    def __init__(self, laser: TunableLaser, sync: Callable[[], float] = lambda: 0.0,
                 serial: str = "21010001") -> None:
        self.laser = laser
        self.sync = sync
        self.serial = serial
        self.scpi_mode = False  # the laser powers up in Legacy mode
        self.power_in_mw = False  # and in dBm
        self.parser = ScpiParser(self._commands())
        self.faults = Faults()
        self._back_on_at: float | None = None

    def new_session(self) -> TSL570Emulator:
        return self

    def handle(self, message: str) -> str | bytes | None:
        now = self.sync()  # a sweep in progress has moved on
        if self._back_on_at is not None and now >= self._back_on_at:
            self.laser.diode_on, self._back_on_at = True, None
        return self.parser.handle(message)

    def drop_out(self, seconds: float) -> None:
        """Fault injection: the emission stops for at least ``seconds`` of world time (until
        the first message after that), as a diode or fibre glitch would."""
        if self.laser.diode_on:
            self.laser.diode_on = False
            self._back_on_at = self.sync() + seconds

    def set_drift(self, rate_pm_per_h: float, wander_pm_per_sqrt_h: float, seed: int = 0) -> None:
        """Fault injection: the emitted wavelength drifts and wanders from now on (the readout
        still shows the set wavelength, as a real laser's does)."""
        self.sync()
        self.laser.drift = LaserDrift(np.random.default_rng(seed), rate_pm_per_h,
                                      wander_pm_per_sqrt_h)

    def _commands(self) -> list[Command]:
        return [
            Command("*IDN", lambda _: f"SANTEC,TSL-570,{self.serial},0003.0008.0004"),
            Command(":SYSTem:COMMunicate:CODe", lambda _: str(int(self.scpi_mode)),
                    self._set_code),
            Command(":SYSTem:LOCK", lambda _: "0"),
            Command(":WAVelength[:CW]", self._wavelength, self._set_wavelength),
            Command(":POWer[:LEVel][:IMMediate][:AMPLitude]",
                    lambda _: self._power_out(self.laser.power_setpoint_mw), self._set_power),
            Command(":POWer:ACTual[:LEVel]",
                    lambda _: self._power_out(self.laser.emitted_power_mw)),
            Command(":POWer:UNIT", lambda _: str(int(self.power_in_mw)), self._set_unit),
            Command(":POWer:STATe", lambda _: str(int(self.laser.diode_on)), self._set_state),
            Command(":POWer:SHUTter", lambda _: str(int(not self.laser.shutter_open)),
                    self._set_shutter),
            Command(":WAVelength:SWEep:STARt", lambda _: self._out(self.laser.sweep_start_m),
                    lambda call: setattr(self.laser, "sweep_start_m", self._in_range(call))),
            Command(":WAVelength:SWEep:STOP", lambda _: self._out(self.laser.sweep_stop_m),
                    lambda call: setattr(self.laser, "sweep_stop_m", self._in_range(call))),
            Command(":WAVelength:SWEep:SPEed", lambda _: f"{self.laser.sweep_speed_nm_per_s:g}",
                    self._set_speed),
            Command(":WAVelength:SWEep:MODe", lambda _: "1", self._set_mode),
            Command(":WAVelength:SWEep[:STATe]", lambda _: str(int(self.laser.sweeping)),
                    self._set_sweep),
            Command(":WAVelength:FINetuning",
                    lambda _: f"{self.laser.fine_tuning_pm / _FINE_STEP_PM:.2f}", self._set_fine),
            Command(":WAVelength:FINetuning:DISable", write=self._disable_fine),
        ]

    def _wavelength_unit_m(self) -> float:
        return 1.0 if self.scpi_mode else 1e-9

    def _wavelength(self, call: Call) -> str:
        low, high = self.laser.wavelength_range_m
        which = call.args[0].upper() if call.args else ""
        laser = self.laser
        now = laser.sweep_position_m if laser.sweeping else laser.wavelength_m
        return self._out({"MIN": low, "MAX": high}.get(which, now))

    def _out(self, value_m: float) -> str:
        value = value_m / self._wavelength_unit_m()
        return f"{value:.10e}" if self.scpi_mode else f"{value:.4f}"

    def _in_range(self, call: Call) -> float:
        value_m = call.number(0, {"M": 1.0, "NM": 1e-9}) * self._wavelength_unit_m()
        low, high = self.laser.wavelength_range_m
        if not low <= value_m <= high:
            raise data_out_of_range()
        return round(value_m / _RESOLUTION_M) * _RESOLUTION_M

    def _set_wavelength(self, call: Call) -> None:
        self.laser.wavelength_m = self._in_range(call)

    def _set_speed(self, call: Call) -> None:
        speed = call.number()
        if speed not in _SWEEP_SPEEDS_NM_PER_S:
            raise illegal_value()
        self.laser.sweep_speed_nm_per_s = speed

    def _set_mode(self, call: Call) -> None:
        """Only the continuous one-way sweep (mode 1) is emulated; the others are refused."""
        if call.arg().strip() != "1":
            raise illegal_value()

    def _set_sweep(self, call: Call) -> None:
        if call.boolean():
            self.laser.start_sweep()
        else:
            self.laser.stop_sweep()

    def _set_fine(self, call: Call) -> None:
        steps = call.number()
        if not -100 <= steps <= 100:
            raise data_out_of_range()
        self.laser.fine_tuning_pm = steps * _FINE_STEP_PM

    def _disable_fine(self, _: Call) -> None:
        self.laser.fine_tuning_pm = 0.0

    def _power_out(self, power_mw: float) -> str:
        if self.power_in_mw:
            return f"{power_mw:.4f}"
        return f"{10 * math.log10(power_mw):.3f}" if power_mw > 0 else "-40.000"

    def _set_power(self, call: Call) -> None:
        value = call.number(0, {"MW": 1.0, "DBM": 1.0})
        power_mw = value if self.power_in_mw else 10 ** (value / 10)
        low, high = self.laser.power_range_mw
        if not low <= power_mw <= high:
            raise data_out_of_range()
        self.laser.power_setpoint_mw = power_mw

    def _set_code(self, call: Call) -> None:
        code = call.arg().strip()
        if code not in ("0", "1"):
            raise illegal_value()
        self.scpi_mode = code == "1"

    def _set_unit(self, call: Call) -> None:
        unit = call.arg().strip()
        if unit not in ("0", "1"):
            raise illegal_value()
        self.power_in_mw = unit == "1"

    def _set_state(self, call: Call) -> None:
        self.laser.diode_on = call.boolean()

    def _set_shutter(self, call: Call) -> None:
        self.laser.shutter_open = not call.boolean()
