"""Santec TSL-570 tunable laser (pump and auxiliary laser), SCPI mode, over a raw socket.

pymeasure's own ``TSL570`` does the talking; this module only adapts it to the ``Laser`` role:
SCPI command set (wavelength in m), power in mW, wavelength written with enough digits for the
laser's 0.1 pm resolution (pymeasure's ``%g`` keeps six, i.e. 10 pm at 1556 nm), and instrument
errors raised instead of logged.
"""

from __future__ import annotations

from pymeasure.instruments import Instrument
from pymeasure.instruments.santec.tsl570 import TSL570, SweepMode, SweepStatus

from drivers.errors import InstrumentError, RaiseQueuedErrors, talking
from drivers.visa import low_latency

_DIGITS_NM = 5  # 0.01 pm: below the laser's 0.1 pm resolution, above float noise


class PreciseTSL570(RaiseQueuedErrors, TSL570):
    """pymeasure's TSL570 with a 0.1 pm wavelength format and errors that raise."""

    wavelength_setpoint = Instrument.control(
        ":WAVelength?",
        ":WAVelength %.8e",
        """Control the output wavelength (m in SCPI mode), to 0.1 pm.""",
        check_set_errors=True,
    )

    wavelength_start = Instrument.control(
        ":WAVelength:SWEep:STARt?", ":WAVelength:SWEep:STARt %.8e",
        """Control the sweep start wavelength (m in SCPI mode), to 0.1 pm.""",
        check_set_errors=True,
    )

    wavelength_stop = Instrument.control(
        ":WAVelength:SWEep:STOP?", ":WAVelength:SWEep:STOP %.8e",
        """Control the sweep stop wavelength (m in SCPI mode), to 0.1 pm.""",
        check_set_errors=True,
    )



class TSL570Laser:
    """The ``Laser`` role on a TSL-570: wavelength in nm, power in mW, diode on/off."""

    def __init__(self, resource: str, name: str, timeout_s: float = 2.0) -> None:
        self.name = name
        with talking(name, "connect"):
            self.device = PreciseTSL570(
                resource,
                name=name,
                visa_library="@py",
                read_termination="\r",
                write_termination="\r",
                timeout=int(timeout_s * 1000),
            )
            low_latency(self.device.adapter)
        with talking(name, "*IDN?"):  # a laser that does not answer is not connected
            identity = str(self.device.id)
        if "TSL-570" not in identity:
            raise InstrumentError(name, f"not a Santec TSL-570: {identity!r}", "*IDN?")
        with talking(name, "connect"):
            self.device.command_set = "SCPI"
            self.device.power_unit = "mW"

    @property
    def wavelength_nm(self) -> float:
        with talking(self.name, ":WAV?"):
            return round(float(self.device.wavelength_setpoint) * 1e9, _DIGITS_NM)

    @wavelength_nm.setter
    def wavelength_nm(self, value: float) -> None:
        with talking(self.name, ":WAV"):
            self.device.wavelength_setpoint = value * 1e-9

    @property
    def power_mw(self) -> float:
        with talking(self.name, ":POW?"):
            return float(self.device.power_setpoint)

    @power_mw.setter
    def power_mw(self, value: float) -> None:
        with talking(self.name, ":POW"):
            self.device.power_setpoint = value

    @property
    def output_enabled(self) -> bool:
        with talking(self.name, ":POW:STAT?"):
            return bool(self.device.output_enabled)

    @output_enabled.setter
    def output_enabled(self, value: bool) -> None:
        with talking(self.name, ":POW:STAT"):
            self.device.output_enabled = value

    def sweep(self, start_nm: float, stop_nm: float, speed_nm_per_s: float) -> None:
        """One continuous one-way sweep at a hardware speed (1 to 200 nm/s)."""
        with talking(self.name, ":WAV:SWE"):
            self.device.sweep_mode = SweepMode.CONTINUOUS_ONE_WAY
            self.device.wavelength_start = start_nm * 1e-9
            self.device.wavelength_stop = stop_nm * 1e-9
            self.device.sweep_speed = int(speed_nm_per_s)
            self.device.start_sweep()

    @property
    def sweeping(self) -> bool:
        with talking(self.name, ":WAV:SWE?"):
            return bool(self.device.sweep_status == SweepStatus.RUNNING)

    def safe_state(self) -> None:
        """Switch the diode off."""
        self.output_enabled = False

    def close(self) -> None:
        self.device.adapter.close()
