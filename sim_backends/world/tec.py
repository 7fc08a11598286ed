"""The microresonator chip on its Peltier mount, and the TEC controller's loop that holds it.

Plant: one thermal node (chip, submount and copper block) of heat capacity C, tied to the heat sink
(the room, ``ambient_c``) by a conductance G through the Peltier module and its standoffs, so that
with the output off it relaxes to ambient with tau = C / G. The module pumps heat out of the mount:

    C dT/dt = G (T_amb - T) - S (T + 273.15) I + R I^2 / 2 + P_load

(Seebeck coefficient S, electrical resistance R, half the Joule heat on the mount side; positive
current cools). ``heat_load_w`` is what the chip absorbs (pump and auxiliary light), set by the
Testbed. The controller samples its sensor every ``loop_period_s`` (white readout noise per
sample), runs a PID on the reading (gains in the controller's units: A/K, A/(K s), A s/K), clamps
the current to ``current_limit_a`` with conditional integration (no wind-up) and holds the current
until the next sample; the plant is integrated exactly between samples.

Ambient is the disturbance: a linear drift plus an Ornstein-Uhlenbeck fluctuation. Defaults give
a reading standard deviation of ~0.002 K over a minute in regulation (the seed's stability
figure): the readout noise dominates, because the loop rejects the slow ambient disturbance; the
true mount temperature (what the resonator sees) wanders ~10x less.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

KELVIN_AT_0C = 273.15
_DERIVATIVE_FILTER_PERIODS = 10  # the D term sees the reading low-passed over 10 loop periods
_NOISE_BLOCK = 4096  # normal deviates drawn at once (as Python floats: the loop runs in Python)


@dataclass
class TecMount:
    """Chip mount temperature under a TEC controller (Thorlabs TED4015 class), in degC and A."""

    rng: np.random.Generator
    heat_capacity_j_per_k: float = 5.0  # chip + submount + ~13 g copper block (assumed)
    conductance_w_per_k: float = 0.25  # to the heat sink: tau = C / G = 20 s (assumed)
    seebeck_v_per_k: float = 0.025  # Peltier module, ~60 couples (assumed)
    resistance_ohm: float = 2.0
    current_limit_a: float = 1.5  # the module's limit, set on the controller
    ambient_c: float = 22.0  # heat-sink temperature at t = 0
    ambient_drift_k_per_h: float = 0.2
    ambient_sigma_k: float = 0.05  # OU fluctuation of the room around the drift
    ambient_correlation_s: float = 300.0
    sensor_noise_k: float = 0.002  # thermistor readout noise per sample
    loop_period_s: float = 0.01
    setpoint_c: float = 25.0
    setpoint_range_c: tuple[float, float] = (-45.0, 145.0)
    setpoint_resolution_k: float = 0.01
    gain_a_per_k: float = 1.0
    integral_a_per_k_s: float = 0.1
    derivative_a_s_per_k: float = 0.0
    period_s: float = 1.0  # the controller's "thermal load period": stored, not used by the loop
    output_on: bool = False
    heat_load_w: float = 0.0
    temperature_c: float = 22.0  # true mount temperature
    measured_c: float = field(init=False)  # the controller's latest sensor reading
    current_a: float = field(init=False, default=0.0)  # TEC current, positive cooling
    elapsed_s: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.measured_c = self.temperature_c
        self._integral_a = 0.0
        self._derivative_k_per_s = 0.0
        self._ambient_offset_k = 0.0
        self._until_sample_s = self.loop_period_s
        self._normals: list[float] = []

    @property
    def ambient_now_c(self) -> float:
        """Heat-sink temperature now: start value, drift and fluctuation."""
        drift = self.ambient_drift_k_per_h * self.elapsed_s / 3600.0
        return self.ambient_c + drift + self._ambient_offset_k

    @property
    def time_constant_s(self) -> float:
        """Open-loop (output off) relaxation time of the mount."""
        return self.heat_capacity_j_per_k / self.conductance_w_per_k

    def set_setpoint(self, value_c: float) -> None:
        """Take a new set-point, quantised to the controller's resolution."""
        steps = round(value_c / self.setpoint_resolution_k)
        self.setpoint_c = round(steps * self.setpoint_resolution_k, 9)

    def set_output(self, on: bool) -> None:
        """Switch the loop on (starting from a clean integrator) or off (zero current)."""
        if on and not self.output_on:
            self._integral_a = 0.0
            self._derivative_k_per_s = 0.0
        self.output_on = on
        if not on:
            self.current_a = 0.0

    def advance(self, dt_s: float) -> None:
        """Integrate ``dt_s`` seconds: the plant exactly between loop samples, the PID at each."""
        while dt_s > 0.0:
            step_s = min(dt_s, self._until_sample_s)
            self._integrate(step_s)
            dt_s -= step_s
            self._until_sample_s -= step_s
            if self._until_sample_s <= 1e-12:
                self._sample()
                self._until_sample_s = self.loop_period_s

    def _integrate(self, h_s: float) -> None:
        """Exact solution of the linear plant over ``h_s`` with the current held."""
        current = self.current_a
        rate_per_s = (self.conductance_w_per_k + self.seebeck_v_per_k * current) \
            / self.heat_capacity_j_per_k
        source_k_per_s = (self.conductance_w_per_k * self.ambient_now_c
                          - self.seebeck_v_per_k * KELVIN_AT_0C * current
                          + 0.5 * self.resistance_ohm * current**2
                          + self.heat_load_w) / self.heat_capacity_j_per_k
        growth_s = h_s if rate_per_s == 0.0 else -math.expm1(-rate_per_s * h_s) / rate_per_s
        self.temperature_c += (source_k_per_s - rate_per_s * self.temperature_c) * growth_s
        self.elapsed_s += h_s

    def _sample(self) -> None:
        """One controller period: ambient fluctuation, sensor reading, PID update."""
        if not self._normals:
            self._normals = self.rng.standard_normal(_NOISE_BLOCK).tolist()
        sensor_noise, ambient_noise = self._normals.pop(), self._normals.pop()
        decay = math.exp(-self.loop_period_s / self.ambient_correlation_s)
        self._ambient_offset_k = (self._ambient_offset_k * decay
                                  + self.ambient_sigma_k * math.sqrt(1 - decay**2) * ambient_noise)
        previous_c = self.measured_c
        self.measured_c = self.temperature_c + self.sensor_noise_k * sensor_noise
        if self.output_on:
            self.current_a = self._pid(previous_c)

    def _pid(self, previous_c: float) -> float:
        """The controller's current for the latest reading (positive cools)."""
        period_s = self.loop_period_s
        error_k = self.measured_c - self.setpoint_c
        slope_k_per_s = (self.measured_c - previous_c) / period_s
        self._derivative_k_per_s += (slope_k_per_s - self._derivative_k_per_s) \
            / (_DERIVATIVE_FILTER_PERIODS + 1)
        without_integral_a = self.gain_a_per_k * error_k \
            + self.derivative_a_s_per_k * self._derivative_k_per_s
        integral_a = self._integral_a + self.integral_a_per_k_s * error_k * period_s
        wanted_a = without_integral_a + integral_a
        saturated = abs(wanted_a) > self.current_limit_a and wanted_a * error_k > 0
        if not saturated:  # conditional integration: no wind-up against the current limit
            self._integral_a = integral_a
        wanted_a = without_integral_a + self._integral_a
        return max(-self.current_limit_a, min(self.current_limit_a, wanted_a))
