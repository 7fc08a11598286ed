"""Thorlabs PM100USB power meter with an InGaAs photodiode head, SCPI over USB-TMC (LF terminated).

A loopback socket stands in for USB-TMC. The head is a photodiode: it measures photocurrent, and
the meter divides by the head's responsivity at the *correction wavelength the user set*, so light
at another wavelength reads off by the responsivity ratio, as on the bench. Every sample carries
the head's noise-equivalent power; ``SENS:AVER:COUN n`` averages n samples of about 3 ms each, so
the noise falls as 1/sqrt(n) and a measurement occupies the meter for n x 3 ms of world time.

The reply is not held back by that time: every emulator shares one event loop, and ``handle`` may
not block it. The measurement window is kept in world time instead (``measurement_end_s``), so
back-to-back measurements follow one another as on the instrument; the light in the window is the
world's present light, the only light the world knows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sim_backends.faults import Faults
from sim_backends.scpi import (
    Call,
    Command,
    ScpiError,
    ScpiParser,
    data_out_of_range,
    illegal_value,
)
from sim_backends.world.laser import C_M_PER_S
from sim_backends.world.light import Light

FloatArray = NDArray[np.float64]

SAMPLE_S = 3e-3  # one sample of the PM100's ADC, as the manual states for SENS:AVER:COUN
_HC_OVER_E_NM_V = 1239.841984  # h c / e in nm V: responsivity = QE x wavelength_nm / 1239.84
_MAX_AVERAGES = 10_000  # [I] manual states no limit; 30 s per reading is already past any use
_POWER_RANGES_W = tuple(10.0 ** k for k in range(-6, 1))  # decade ranges, 1 uW to 1 W
_DBM_FLOOR = -120.0  # what a non-positive reading shows in dBm (below any photodiode's floor)


def _logistic(x: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class PhotodiodeHead:
    """A Thorlabs photodiode sensor head: identity, ranges, InGaAs responsivity and noise.

    Quantum efficiency is ``peak_qe`` between a smooth cut-on (InP window absorption below
    ~900 nm) and the InGaAs band-edge cut-off (~1.68 um at room temperature); responsivity is
    QE x lambda e / (h c), about 1.0 A/W at 1550 nm and 0.85 A/W at 1310 nm.
    """

    name: str = "S144C"  # integrating sphere, InGaAs, 800-1700 nm, 1 uW to 500 mW
    serial: str = "190613301"
    calibration_date: str = "13-JUN-2019"
    sensor_type: int = 1  # photodiode
    sensor_subtype: int = 18  # 0x12: photodiode with temperature sensor
    flags: int = 305  # power sensor (1), responsivity (16) and wavelength (32) settable, temp (256)
    wavelength_range_nm: tuple[float, float] = (800.0, 1700.0)
    peak_qe: float = 0.80
    cut_on_nm: float = 870.0
    cut_on_width_nm: float = 40.0
    cutoff_nm: float = 1680.0
    cutoff_width_nm: float = 22.0
    nep_w: float = 1e-9  # noise-equivalent power of one 3 ms sample (rms)

    def responsivity_a_per_w(self, wavelength_nm: FloatArray) -> FloatArray:
        """Photocurrent per optical power at each wavelength."""
        qe = (self.peak_qe
              * _logistic((wavelength_nm - self.cut_on_nm) / self.cut_on_width_nm)
              * _logistic((self.cutoff_nm - wavelength_nm) / self.cutoff_width_nm))
        return qe * wavelength_nm / _HC_OVER_E_NM_V

    def photocurrent_a(self, light: Light) -> float:
        """Photocurrent of the whole spectrum: every line and the background, each at its colour."""
        lines = float(np.sum(self.responsivity_a_per_w(light.line_wavelength_nm)
                             * light.line_power_mw)) * 1e-3 if light.line_power_mw.size else 0.0
        if light.background_frequency_hz.size < 2:
            return lines
        wavelength_nm = C_M_PER_S / light.background_frequency_hz * 1e9
        density = self.responsivity_a_per_w(wavelength_nm) * light.background_mw_per_hz * 1e-3
        return lines + float(np.trapezoid(density, light.background_frequency_hz))


S144C = PhotodiodeHead()


class PM100USBEmulator:
    """One PM100USB with a photodiode head looking at the light ``light()`` returns."""

    read_terminator = b"\n"
    write_terminator = b"\n"

    def __init__(self, light: Callable[[], Light], sync: Callable[[], float],
                 rng: np.random.Generator, head: PhotodiodeHead = S144C,
                 serial: str = "P2004564") -> None:
        self.light = light
        self.sync = sync
        self.rng = rng
        self.head = head
        self.serial = serial
        self.correction_nm = 1550.0
        self.unit_dbm = False  # the meter powers up in W here [I]
        self.averages = 1
        self.auto_range = True
        self.range_w = _POWER_RANGES_W[-1]
        self.measurement_end_s = sync()
        self.parser = ScpiParser(self._commands())
        self.faults = Faults()

    def new_session(self) -> ScpiParser:
        return self.parser

    def inject_error(self, code: int, message: str) -> None:
        """Queue an instrument error, as a fault the instrument itself reports."""
        self.parser.push(ScpiError(code, message))

    def _commands(self) -> list[Command]:
        head = self.head
        return [
            Command("*IDN", lambda _: f"Thorlabs,PM100USB,{self.serial},1.6.0"),
            Command(":SYSTem:SENSor:IDN", lambda _: ",".join(map(str, (
                head.name, head.serial, head.calibration_date, head.sensor_type,
                head.sensor_subtype, head.flags)))),
            Command(":SENSe:CORRection:WAVelength", self._wavelength, self._set_wavelength),
            Command(":SENSe:POWer[:DC]:UNIT", lambda _: "DBM" if self.unit_dbm else "W",
                    self._set_unit),
            Command(":SENSe:AVERage[:COUNt]", lambda _: str(self.averages), self._set_averages),
            Command(":SENSe:POWer[:DC]:RANGe:AUTO", lambda _: str(int(self.auto_range)),
                    self._set_auto_range),
            Command(":SENSe:POWer[:DC]:RANGe[:UPPer]", lambda _: f"{self.range_w:.6E}",
                    self._set_range),
            Command(":MEASure[:SCALar]:POWer", self._measure_power),
        ]

    def _wavelength(self, call: Call) -> str:
        low, high = self.head.wavelength_range_nm
        which = call.args[0].upper() if call.args else ""
        value_nm = {"MIN": low, "MAX": high}.get(which, self.correction_nm)
        return f"{value_nm:.6E}"

    def _set_wavelength(self, call: Call) -> None:
        value_nm = call.number(0, {"NM": 1.0})
        low, high = self.head.wavelength_range_nm
        if not low <= value_nm <= high:
            raise data_out_of_range()
        self.correction_nm = value_nm

    def _set_unit(self, call: Call) -> None:
        unit = call.arg().strip().upper()
        if unit not in ("W", "DBM"):
            raise illegal_value()
        self.unit_dbm = unit == "DBM"

    def _set_averages(self, call: Call) -> None:
        count = call.number()
        if count != int(count):
            raise illegal_value()
        if not 1 <= count <= _MAX_AVERAGES:
            raise data_out_of_range()
        self.averages = int(count)

    def _set_auto_range(self, call: Call) -> None:
        self.auto_range = call.boolean()

    def _set_range(self, call: Call) -> None:
        upper_w = call.number(0, {"W": 1.0, "MW": 1e-3, "UW": 1e-6})
        if not 0 < upper_w <= _POWER_RANGES_W[-1]:
            raise data_out_of_range()
        self.range_w = next(r for r in _POWER_RANGES_W if r >= upper_w * (1 - 1e-9))
        self.auto_range = False

    def _measure_power(self, _: Call) -> str:
        power_w = self._measure_w()
        if not self.unit_dbm:
            return f"{power_w:.6E}"
        return f"{10 * math.log10(power_w * 1e3) if power_w > 0 else _DBM_FLOOR:.6E}"

    def _measure_w(self) -> float:
        """One reading: the mean of ``averages`` samples, in W at the correction wavelength."""
        now = self.sync()
        start_s = max(now, self.measurement_end_s)  # the meter finishes one reading at a time
        self.measurement_end_s = start_s + self.averages * SAMPLE_S
        responsivity = float(self.head.responsivity_a_per_w(np.array([self.correction_nm]))[0])
        power_w = self.head.photocurrent_a(self.light()) / responsivity
        power_w += self.rng.normal(0.0, self.head.nep_w / math.sqrt(self.averages))
        if self.auto_range:
            self.range_w = next((r for r in _POWER_RANGES_W if r >= abs(power_w)),
                                _POWER_RANGES_W[-1])
        return min(power_w, self.range_w)  # a saturated transimpedance stage reads full scale
