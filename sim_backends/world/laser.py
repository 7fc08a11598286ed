"""A tunable external-cavity laser as the world sees it: what it emits, and its hardware range."""

from __future__ import annotations

from dataclasses import dataclass

C_M_PER_S = 299_792_458.0


@dataclass
class TunableLaser:
    """Emission state of a tunable laser (Santec TSL-570 class: 1480-1640 nm, up to 20 mW)."""

    wavelength_m: float = 1556.09e-9
    power_setpoint_mw: float = 1.0
    diode_on: bool = False
    shutter_open: bool = True
    wavelength_range_m: tuple[float, float] = (1480e-9, 1640e-9)
    power_range_mw: tuple[float, float] = (0.01, 20.0)

    @property
    def emitted_power_mw(self) -> float:
        """Optical power leaving the laser."""
        return self.power_setpoint_mw if self.diode_on and self.shutter_open else 0.0

    @property
    def frequency_hz(self) -> float:
        return C_M_PER_S / self.wavelength_m
