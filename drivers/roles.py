"""Roles of the testbed, the parameters each role exposes, and the interfaces drivers implement.

A role is what an instrument does on the bench (``pump_laser``, ``edfa``, ...); a model is what it
is (``santec.TSL570``). The parameter table is data: the daemon validates limits, serves
``station.get``/``station.set`` and polls telemetry from it without knowing any model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray


class Role(StrEnum):
    """What an instrument does on the testbed."""

    PUMP_LASER = "pump_laser"
    AUX_LASER = "aux_laser"
    EDFA = "edfa"
    TEC = "tec"
    OSA = "osa"
    POWER_METER = "power_meter"
    AWG = "awg"
    BIAS = "bias"
    SPD_COUNTER = "spd_counter"


@dataclass(frozen=True)
class Parameter:
    """One named quantity of a role, as served by ``station.get``/``station.set``."""

    name: str
    type: type[float] | type[bool]
    writable: bool
    unit: str
    doc: str

    @property
    def limitable(self) -> bool:
        """Whether a ``[min, max]`` limit from the config can apply to it."""
        return self.writable and self.type is float


def _rw(name: str, unit: str, doc: str, type_: type[float] | type[bool] = float) -> Parameter:
    return Parameter(name, type_, True, unit, doc)


def _ro(name: str, unit: str, doc: str) -> Parameter:
    return Parameter(name, float, False, unit, doc)


_LASER = (
    _rw("wavelength_nm", "nm", "emission wavelength (vacuum)"),
    _rw("power_mw", "mW", "output power set-point"),
    _rw("output_enabled", "", "laser diode emitting", bool),
)

ROLE_PARAMETERS: dict[Role, tuple[Parameter, ...]] = {
    Role.PUMP_LASER: _LASER,
    Role.AUX_LASER: _LASER,
    Role.EDFA: (
        _rw("enabled", "", "pumps on", bool),
        _rw("output_w", "W", "output power set-point"),
        _ro("measured_output_w", "W", "measured output power"),
        _ro("input_mw", "mW", "measured seed power at the input"),
    ),
    Role.TEC: (
        _rw("setpoint_c", "degC", "temperature set-point"),
        _ro("temperature_c", "degC", "measured temperature"),
        _rw("output_enabled", "", "control loop driving the TEC", bool),
    ),
    Role.OSA: (
        _rw("center_nm", "nm", "sweep centre wavelength"),
        _rw("span_nm", "nm", "sweep span"),
        _rw("resolution_nm", "nm", "resolution bandwidth"),
        _rw("points", "", "samples per sweep (lines need several each to be resolved)"),
    ),
    Role.POWER_METER: (
        _ro("power_mw", "mW", "measured optical power"),
        _rw("wavelength_nm", "nm", "wavelength for the responsivity correction"),
    ),
    Role.AWG: (
        _rw("output_enabled", "", "outputs driving the modulators", bool),
        _ro("sample_rate_hz", "Hz", "DAC sample rate"),
    ),
    Role.BIAS: (
        _rw("bias_v", "V", "held bias voltage of the intensity modulator"),
        _ro("measured_bias_v", "V", "bias voltage applied now"),
        _ro("tap_power_mw", "mW", "optical power at the controller's tap"),
    ),
    Role.SPD_COUNTER: (
        _rw("integration_time_s", "s", "counting window"),
    ),
}

# The order in which sources go dark: the amplifier first, then what seeds or heats the ring.
SAFE_STATE_ORDER: tuple[Role, ...] = (Role.EDFA, Role.AUX_LASER, Role.PUMP_LASER, Role.TEC)


def parameter(role: Role, name: str) -> Parameter | None:
    """The parameter ``name`` of ``role``, or None if the role has no such parameter."""
    return next((p for p in ROLE_PARAMETERS[role] if p.name == name), None)


@runtime_checkable
class Instrument(Protocol):
    """What the daemon needs of every driver, whatever its role."""

    def safe_state(self) -> None:
        """Put the instrument where it cannot hurt people or the chip (sources off)."""

    def close(self) -> None:
        """Release the connection."""


@runtime_checkable
class Laser(Instrument, Protocol):
    """Pump and auxiliary lasers. Wavelength must be settable to 0.1 pm."""

    wavelength_nm: float
    power_mw: float
    output_enabled: bool

    def sweep(self, start_nm: float, stop_nm: float, speed_nm_per_s: float) -> None:
        """Start the laser's own continuous sweep (it stays at ``stop_nm`` afterwards)."""

    @property
    def sweeping(self) -> bool:
        """Whether a continuous sweep is running."""


@runtime_checkable
class Edfa(Instrument, Protocol):
    """Erbium-doped fibre amplifier. Its pumps must shut down on loss of seed (input) power."""

    enabled: bool
    output_w: float

    @property
    def measured_output_w(self) -> float: ...

    @property
    def input_mw(self) -> float: ...

    @property
    def seed_ok(self) -> bool:
        """Whether the amplifier sees enough seed at its input to run."""

    @property
    def interlock_ok(self) -> bool:
        """Whether the hardware interlock is closed (False: the pumps cannot run)."""


@runtime_checkable
class Tec(Instrument, Protocol):
    """Temperature controller of the chip."""

    setpoint_c: float
    output_enabled: bool

    @property
    def temperature_c(self) -> float: ...


@runtime_checkable
class PowerMeter(Instrument, Protocol):
    """Optical power meter on the through port."""

    wavelength_nm: float

    @property
    def power_mw(self) -> float: ...


@runtime_checkable
class Osa(Instrument, Protocol):
    """Optical spectrum analyser."""

    center_nm: float
    span_nm: float
    resolution_nm: float
    points: float

    def read_trace(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Run one sweep, wait for it to finish, return (wavelength_nm, power_dbm)."""


@runtime_checkable
class Awg(Instrument, Protocol):
    """Arbitrary waveform generator driving the QKD modulators."""

    output_enabled: bool
    dac_mode: str  # how the DACs are used from the next upload on (M8195A: SING ... FOUR, DCM)

    @property
    def sample_rate_hz(self) -> float: ...

    def upload_pattern(
        self, channel: int, samples: NDArray[np.float64], markers: NDArray[np.bool_] | None = None
    ) -> None:
        """Load a waveform (values in [-1, 1]) and its sync markers on a channel and select it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@runtime_checkable
class BiasController(Instrument, Protocol):
    """Bias controller of an intensity modulator."""

    bias_v: float

    @property
    def measured_bias_v(self) -> float: ...

    @property
    def tap_power_mw(self) -> float: ...


@runtime_checkable
class SpdCounter(Instrument, Protocol):
    """Counter of single-photon-detector clicks."""

    integration_time_s: float

    def read_counts(self) -> dict[str, int]:
        """Counts of every configured counter over the last completed window, by counter name."""

    def reset_counts(self) -> None:
        """Clear every counter and start a new window now."""
