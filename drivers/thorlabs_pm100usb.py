"""Thorlabs PM100USB power meter on the through port, SCPI over USB-TMC (LF terminated).

pymeasure's own ``ThorlabsPM100USB`` does the talking (sensor identification at connect, the
correction wavelength, ``MEAS:POW?``); this module adds the three sense settings pymeasure 0.16
lacks (power unit, averaging, auto range), makes instrument errors raise, and adapts it to the
``PowerMeter`` role: power in mW, correction wavelength in nm.
"""

from __future__ import annotations

from pymeasure.instruments import Instrument
from pymeasure.instruments.thorlabs.thorlabspm100usb import ThorlabsPM100USB
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from drivers.errors import InstrumentError, RaiseQueuedErrors, talking
from drivers.visa import low_latency


class PM100USB(RaiseQueuedErrors, ThorlabsPM100USB):
    """pymeasure's PM100USB with unit, averaging and range control, and errors that raise."""

    power_unit = Instrument.control(
        "SENS:POW:UNIT?", "SENS:POW:UNIT %s",
        """Control the unit ``MEAS:POW?`` answers in (``W`` or ``DBM``).""",
        validator=strict_discrete_set, values=("W", "DBM"), check_set_errors=True,
    )

    averaging_count = Instrument.control(
        "SENS:AVER:COUN?", "SENS:AVER:COUN %d",
        """Control how many ~3 ms samples one reading averages (int).""",
        validator=strict_range, values=(1, 10_000), cast=int, check_set_errors=True,
    )

    auto_range = Instrument.control(
        "SENS:POW:RANG:AUTO?", "SENS:POW:RANG:AUTO %d",
        """Control whether the meter picks its power range itself (bool).""",
        validator=strict_discrete_set, values={True: 1, False: 0}, map_values=True,
        check_set_errors=True,
    )



class PM100Meter:
    """The ``PowerMeter`` role on a PM100USB: through-port power in mW, correction wavelength."""

    def __init__(self, resource: str, name: str, timeout_s: float = 2.0) -> None:
        self.name = name
        with talking(name, "connect"):
            self.device = PM100USB(
                resource,
                name=name,
                visa_library="@py",
                read_termination="\n",
                write_termination="\n",
                timeout=int(timeout_s * 1000),
            )
            low_latency(self.device.adapter)
            self.wavelength_range_nm = (float(self.device.wavelength_min),
                                        float(self.device.wavelength_max))
            self.device.power_unit = "W"
            self.device.auto_range = True

    @property
    def wavelength_nm(self) -> float:
        with talking(self.name, "SENS:CORR:WAV?"):
            return float(self.device.wavelength)

    @wavelength_nm.setter
    def wavelength_nm(self, value: float) -> None:
        """Set the correction wavelength; pymeasure would clamp a value outside the head's range
        silently, so such a value is refused here instead."""
        low, high = self.wavelength_range_nm
        if not low <= value <= high:
            raise InstrumentError(self.name, f"{value} nm is outside the head's range "
                                  f"{low:g} to {high:g} nm", "SENS:CORR:WAV")
        with talking(self.name, "SENS:CORR:WAV"):
            self.device.wavelength = value
            self.device.check_set_errors()

    @property
    def power_mw(self) -> float:
        with talking(self.name, "MEAS:POW?"):
            return float(self.device.power) * 1e3

    @property
    def averaging_count(self) -> int:
        """Samples per reading (about 3 ms each): more is slower and quieter."""
        with talking(self.name, "SENS:AVER:COUN?"):
            return int(self.device.averaging_count)

    @averaging_count.setter
    def averaging_count(self, value: int) -> None:
        with talking(self.name, "SENS:AVER:COUN"):
            self.device.averaging_count = value

    def safe_state(self) -> None:
        """Nothing to do: a power meter emits no light."""

    def close(self) -> None:
        self.device.adapter.close()
