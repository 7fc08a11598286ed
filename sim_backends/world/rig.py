"""The optical chain without instruments, for tests and benchmarks of the resonator model.

Pump laser -> EDFA (a fixed output) -> chip; aux laser -> its booster -> chip: wired and advanced
as the Testbed wires and advances them, with no emulators or wall clock in the way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sim_backends.world.laser import TunableLaser, linear_segments
from sim_backends.world.light import Light
from sim_backends.world.resonator import Microresonator, ResonatorParams
from sim_backends.world.thermal import AuxAmplifier

EDFA_MW = 3500.0  # seed: EDFA output
AUX_START_M = 1549.00e-9  # blue of the aux resonance (1549.05 nm cold)
AUX_PARK_M = 1549.42e-9  # swept red into it: the ring runs ~ 38 K hot, aux on its blue side


@dataclass
class Rig:
    """Lasers, amplifiers and the ring; ``poll_power_meter`` reads the monitor power after each
    sync, as the power meter's emulator does when polled (it costs a benchmark time)."""

    ring: Microresonator
    pump: TunableLaser = field(default_factory=lambda: TunableLaser(
        wavelength_m=1555.95e-9, diode_on=True, power_setpoint_mw=10.0))
    aux: TunableLaser = field(default_factory=lambda: TunableLaser(
        wavelength_m=AUX_START_M, diode_on=False, power_setpoint_mw=10.0))
    aux_amp: AuxAmplifier = field(default_factory=AuxAmplifier)
    pump_fibre_mw: float = EDFA_MW
    poll_power_meter: bool = False
    syncs: int = 0

    def inputs(self) -> None:
        """Hand the lasers' present light to the ring."""
        self.ring.pump = Light.line(self.pump.frequency_hz,
                                    self.pump_fibre_mw if self.pump.emitted_power_mw else 0.0)
        self.ring.pump_sweep_m_per_s = self.pump.sweep_rate_m_per_s
        self.ring.aux = self.aux_amp.output(
            Light.line(self.aux.frequency_hz, self.aux.emitted_power_mw))
        self.ring.aux_sweep_m_per_s = self.aux.sweep_rate_m_per_s

    def advance(self, dt_s: float) -> None:
        """One sync: ``dt_s`` of world time, in pieces over which the lasers tune linearly."""
        for piece in linear_segments(dt_s, self.pump, self.aux):
            self.inputs()
            self.ring.advance(piece)
            self.pump.advance(piece)
            self.aux.advance(piece)
        self.inputs()
        self.syncs += 1
        if self.poll_power_meter:
            self.ring.monitor_power_mw()

    def run(self, duration_s: float, sync_s: float,
            until: Callable[[Rig], bool] | None = None) -> float:
        """Sync every sync_s for duration_s, or until ``until(self)`` holds after a sync; the
        world time that passed."""
        elapsed = 0.0
        while elapsed < duration_s - 1e-12:
            step = min(sync_s, duration_s - elapsed)
            self.advance(step)
            elapsed += step
            if until is not None and until(self):
                break
        return elapsed

    def sweep(self, laser: TunableLaser, stop_m: float, speed_nm_per_s: float) -> None:
        laser.sweep_start_m = laser.emitted_wavelength_m - laser.fine_tuning_pm * 1e-12
        laser.sweep_stop_m = stop_m
        laser.sweep_speed_nm_per_s = speed_nm_per_s
        laser.start_sweep()
        self.inputs()

    def lock_aux(self) -> float:
        """Aux on, swept from the blue into its resonance and parked (thermal lock)."""
        self.aux.diode_on = True
        self.sweep(self.aux, AUX_PARK_M, 1.0)
        return self.run(0.45, 0.01)

    def sweep_into_solitons(self, speed_nm_per_s: float = 0.5, zeta_stop: float = 22.0,
                            sync_s: float = 1e-3) -> float:
        """Pump swept blue to red until a soliton state sits at zeta_eff >= zeta_stop; stop."""
        self.sweep(self.pump, self.pump.emitted_wavelength_m + 0.3e-9, speed_nm_per_s)
        elapsed = self.run(0.3 / speed_nm_per_s, sync_s,
                           until=lambda r: r.ring.soliton_number > 0
                           and r.ring.zeta_eff >= zeta_stop)
        self.pump.stop_sweep()
        self.inputs()
        return elapsed


def rig(seed: int = 1, **params: object) -> Rig:
    """A rig around a ring of the seed's design (``params`` override ResonatorParams)."""
    return Rig(Microresonator(ResonatorParams(**params),  # type: ignore[arg-type]
                              rng=np.random.default_rng(seed)))
