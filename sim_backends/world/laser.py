"""A tunable external-cavity laser as the world sees it: what it emits, and its hardware range.

Besides a fixed wavelength the laser can sweep continuously (linear in wavelength, at a set speed
in nm/s, from a start to a stop wavelength, either direction) and carries a fine-tuning offset in
pm on top of either. Devices that depend on the frequency during an interval (the resonator) are
advanced in segments over which the wavelength is linear in time: ``time_to_next_change_s`` says
how long the present segment lasts and ``sweep_rate_m_per_s`` its slope.

An external-cavity laser's frequency is not perfectly stable: ``LaserDrift`` adds a linear drift
and a random walk (the cavity's slow thermal and mechanical creep; a Santec TSL-570 holds its
wavelength to about +-1 pm over an hour). It moves in steps at each ``advance``, which the world
calls at least once per sync: far below a resonance linewidth per step at realistic rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

C_M_PER_S = 299_792_458.0


@dataclass
class LaserDrift:
    """Slow wandering of the emitted wavelength: linear drift plus a random walk, in pm."""

    rng: np.random.Generator
    rate_pm_per_h: float = 0.0
    wander_pm_per_sqrt_h: float = 0.0
    offset_pm: float = 0.0

    def advance(self, dt_s: float) -> None:
        hours = dt_s / 3600.0
        self.offset_pm += self.rate_pm_per_h * hours
        if self.wander_pm_per_sqrt_h > 0.0:
            self.offset_pm += self.wander_pm_per_sqrt_h * math.sqrt(hours) * float(
                self.rng.standard_normal())


@dataclass
class TunableLaser:
    """Emission state of a tunable laser (Santec TSL-570 class: 1480-1640 nm, up to 20 mW)."""

    wavelength_m: float = 1556.09e-9
    power_setpoint_mw: float = 1.0
    diode_on: bool = False
    shutter_open: bool = True
    wavelength_range_m: tuple[float, float] = (1480e-9, 1640e-9)
    power_range_mw: tuple[float, float] = (0.01, 20.0)
    #: Offset added to the emitted wavelength (piezo fine tuning), pm.
    fine_tuning_pm: float = 0.0
    #: Continuous sweep: start and stop wavelength, speed (> 0), and whether one is running.
    sweep_start_m: float = 1550.0e-9
    sweep_stop_m: float = 1560.0e-9
    sweep_speed_nm_per_s: float = 10.0
    sweeping: bool = False
    #: Where a running sweep has got to (the emitted wavelength while sweeping, before fine tuning).
    sweep_position_m: float = 1550.0e-9
    #: The frequency's slow wandering (None: a perfectly stable laser).
    drift: LaserDrift | None = field(default=None, repr=False)

    @property
    def emitted_power_mw(self) -> float:
        """Optical power leaving the laser."""
        return self.power_setpoint_mw if self.diode_on and self.shutter_open else 0.0

    @property
    def emitted_wavelength_m(self) -> float:
        """Wavelength leaving the laser now: sweep position or set wavelength, plus fine tuning
        and drift."""
        base = self.sweep_position_m if self.sweeping else self.wavelength_m
        drift_pm = 0.0 if self.drift is None else self.drift.offset_pm
        return base + (self.fine_tuning_pm + drift_pm) * 1e-12

    @property
    def frequency_hz(self) -> float:
        return C_M_PER_S / self.emitted_wavelength_m

    @property
    def sweep_rate_m_per_s(self) -> float:
        """d(wavelength)/dt now: signed sweep speed while sweeping, else 0."""
        if not self.sweeping:
            return 0.0
        direction = 1.0 if self.sweep_stop_m >= self.sweep_start_m else -1.0
        return direction * self.sweep_speed_nm_per_s * 1e-9

    def start_sweep(self) -> None:
        """Jump to the start wavelength and sweep towards the stop at the set speed."""
        if self.sweep_speed_nm_per_s <= 0.0:
            raise ValueError(f"sweep speed must be > 0 nm/s, got {self.sweep_speed_nm_per_s}")
        self.sweep_position_m = self.sweep_start_m
        self.sweeping = self.sweep_stop_m != self.sweep_start_m
        if not self.sweeping:
            self.wavelength_m = self.sweep_stop_m

    def stop_sweep(self) -> None:
        """Stop where the sweep is: the laser stays at that wavelength."""
        if self.sweeping:
            self.wavelength_m = self.sweep_position_m
            self.sweeping = False

    def time_to_next_change_s(self) -> float:
        """Time until the wavelength stops changing linearly (end of sweep), inf if it will not."""
        if not self.sweeping:
            return math.inf
        return abs(self.sweep_stop_m - self.sweep_position_m) / abs(self.sweep_rate_m_per_s)

    def advance(self, dt_s: float) -> None:
        """Move a running sweep on by dt_s (at the stop wavelength the laser stays there), and the
        drift."""
        if self.drift is not None:
            self.drift.advance(dt_s)
        if not self.sweeping:
            return
        if dt_s >= self.time_to_next_change_s():
            self.sweep_position_m = self.sweep_stop_m
            self.stop_sweep()
        else:
            self.sweep_position_m += self.sweep_rate_m_per_s * dt_s


def linear_segments(dt_s: float, *lasers: TunableLaser) -> list[float]:
    """Split dt_s where a laser's sweep starts or ends, so each piece is linear in wavelength.

    Advance the lasers by each piece in turn (the breakpoints move as they do).
    """
    pieces = []
    remaining = dt_s
    ends = sorted(t for t in (laser.time_to_next_change_s() for laser in lasers) if t < dt_s)
    elapsed = 0.0
    for end in ends:
        if end > elapsed:
            pieces.append(end - elapsed)
            remaining -= end - elapsed
            elapsed = end
    if remaining > 0.0:
        pieces.append(remaining)
    return pieces
