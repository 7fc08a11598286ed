"""The comb-power lock: a PID with output limits and anti-windup, and loss detection.

The seed held the single soliton for hours by steering the auxiliary laser's frequency (or the
TEC set-point) to keep the comb power constant. The loop here is discrete (one update per comb
power reading), clamps its output, stops integrating while clamped (conditional integration),
and filters the derivative of the measurement, not of the error, so set-point steps do not kick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Pid:
    """A discrete PID on ``measurement`` towards ``setpoint``; output in the actuator's unit."""

    kp: float
    ki: float  # per second
    kd: float  # seconds
    output_min: float
    output_max: float
    setpoint: float
    derivative_tau_s: float = 0.5
    integral: float = field(default=0.0, init=False)
    _last_measurement: float | None = field(default=None, init=False)
    _derivative: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if not self.output_min < self.output_max:
            raise ValueError(f"output limits [{self.output_min}, {self.output_max}] are empty")

    def update(self, measurement: float, dt_s: float) -> float:
        """The actuator output for this reading (``dt_s`` since the last one)."""
        error = self.setpoint - measurement
        if self._last_measurement is not None and dt_s > 0:
            rate = -(measurement - self._last_measurement) / dt_s
            alpha = dt_s / (self.derivative_tau_s + dt_s)
            self._derivative += alpha * (rate - self._derivative)
        self._last_measurement = measurement
        unclamped = self.kp * error + self.integral + self.ki * error * dt_s \
            + self.kd * self._derivative
        output = min(max(unclamped, self.output_min), self.output_max)
        increment = self.ki * error * dt_s
        pushes_out = math.copysign(1, increment) == math.copysign(1, unclamped - output)
        if output == unclamped or not pushes_out:
            self.integral += increment  # integrate unless it would push further out
        return output

    @property
    def saturated(self) -> bool:
        return not self.output_min < self.integral < self.output_max


@dataclass
class LossDetector:
    """Declares the soliton lost when the power leaves a band around the set-point for long
    enough.

    A lost soliton moves the through-port power by one soliton's step (N = 1 -> 0), which the
    step-down measured; half of it is far beyond what the held lock moves. ``hold_s`` rejects
    single noisy readings and bounds the detection time to ``hold_s`` plus one reading interval.
    """

    reference_mw: float
    band_mw: float
    hold_s: float = 0.5
    _away_s: float = field(default=0.0, init=False)

    def update(self, power_mw: float, dt_s: float) -> bool:
        """True once the power has been away from the reference for ``hold_s``."""
        away = abs(power_mw - self.reference_mw) > self.band_mw
        self._away_s = self._away_s + dt_s if away else 0.0
        return self._away_s >= self.hold_s


@dataclass
class PumpRelief:
    """The outer loop over the lock: when the actuator's output passes ``at`` of its range, one
    pump step the way that brings it back (both a redder aux and a warmer chip lower the
    detuning, as does a bluer pump), at most once per ``interval_s``."""

    step_pm: float
    at: float
    interval_s: float
    _since_s: float = field(default=math.inf, init=False)

    def update(self, output: float, output_min: float, output_max: float, dt_s: float) -> float:
        """The pump move in pm now (0.0 for none)."""
        self._since_s += dt_s
        limit = output_max if output > 0 else output_min
        if limit == 0 or output / limit < self.at or self._since_s < self.interval_s:
            return 0.0
        self._since_s = 0.0
        return -math.copysign(self.step_pm, output)
