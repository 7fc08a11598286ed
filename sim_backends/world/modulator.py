"""A Mach-Zehnder intensity modulator, and the MBX bias controller that holds its operating point.

Modulator: T(V) = IL [cos^2(phi / 2) + sin^2(phi / 2) / ER] with phi = pi (V - V_0) / V_pi, where
V_0, the bias of peak transmission, walks randomly (charge and temperature drift of LiNbO3).

Controller (a Thorlabs MBX as the world sees it): it adds a small sinusoidal dither to the bias,
samples the modulator's output on a tap photodiode, and demodulates the first and second dither
harmonics (a digital lock-in). For a dither of amplitude a the harmonics are
h1 = -S J1(b) sin(phi) and h2 = S J2(b) cos(phi), b = pi a / V_pi, S the peak-to-null swing, so
atan2(-h1 b / 4, h2) estimates the operating phase whatever the optical power; an integrator moves
the bias to the phase the mode asks for. V_pi, the phase and the peak and null powers come from a
calibration sweep of the bias over its whole range, fitted by least squares. The controller never
reads V_0: it only sees tap power, like the instrument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from sim_backends.world.light import Light

FloatArray = NDArray[np.float64]

_DITHER_SAMPLES = 16  # tap samples per dither period, for the lock-in
_DITHER_PHASE = 2 * np.pi * np.arange(_DITHER_SAMPLES) / _DITHER_SAMPLES
_DITHER_SIN = np.sin(_DITHER_PHASE)
_DITHER_COS2 = np.cos(2 * _DITHER_PHASE)
_DETECTION_SNR = 5.0  # below this dither-signal to noise ratio the loop holds (loss of signal)
_V_PI_GRID_V = np.linspace(1.0, 10.0, 451)  # V_pi candidates the calibration fit tries


class BiasMode(IntEnum):
    """The MBX's bias modes, numbered as on its remote interface."""

    OFF = 0  # bias output at 0 V
    AUTO_PEAK = 1
    AUTO_NULL = 2
    AUTO_QUAD_POS = 3  # quadrature on the rising slope
    AUTO_QUAD_NEG = 4
    HOLD_QUAD_POS = 5  # jump to the calibrated quadrature bias and hold it, without dither
    HOLD_QUAD_NEG = 6
    MANUAL = 7  # hold the user's voltage
    AUTO_POWER_POS = 8  # lock output power to a fraction of the peak, on the rising slope
    AUTO_POWER_NEG = 9


_TARGET_PHASE_RAD = {
    BiasMode.AUTO_PEAK: 0.0, BiasMode.AUTO_NULL: math.pi,
    BiasMode.AUTO_QUAD_POS: -math.pi / 2, BiasMode.AUTO_QUAD_NEG: math.pi / 2,
    BiasMode.HOLD_QUAD_POS: -math.pi / 2, BiasMode.HOLD_QUAD_NEG: math.pi / 2,
}
_LOCKING = frozenset({BiasMode.AUTO_PEAK, BiasMode.AUTO_NULL, BiasMode.AUTO_QUAD_POS,
                      BiasMode.AUTO_QUAD_NEG, BiasMode.AUTO_POWER_POS, BiasMode.AUTO_POWER_NEG})
_HOLDING = frozenset({BiasMode.HOLD_QUAD_POS, BiasMode.HOLD_QUAD_NEG})


def _wrap_rad(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _db(loss_db: float) -> float:
    return float(10 ** (-loss_db / 10))


@dataclass
class MachZehnderModulator:
    """A LiNbO3 intensity modulator: bias-dependent transmission whose operating point drifts."""

    rng: np.random.Generator
    v_pi_v: float = 4.5
    insertion_loss_db: float = 4.0
    extinction_ratio_db: float = 25.0
    peak_bias_v: float = 1.3  # V_0: the bias of maximum transmission now
    drift_v_per_sqrt_s: float = 2e-3  # random walk of V_0
    input_light: Light = field(default_factory=Light.dark)
    bias_v: float = 0.0  # applied by the controller
    dither_v: float = 0.0  # amplitude of the controller's sinusoidal dither

    def transmission(self, bias_v: FloatArray) -> FloatArray:
        """Power transmission at each bias voltage."""
        phase = np.pi * (bias_v - self.peak_bias_v) / self.v_pi_v
        leak = _db(self.extinction_ratio_db)  # cos^2 + leak sin^2 of the half phase, rewritten
        return _db(self.insertion_loss_db) * ((1 + leak) + (1 - leak) * np.cos(phase)) / 2

    def dithered_transmission(self) -> FloatArray:
        """Transmission at each sample of one dither period."""
        return self.transmission(self.bias_v + self.dither_v * _DITHER_SIN)

    @property
    def mean_transmission(self) -> float:
        """Transmission averaged over the dither: what any slow detector downstream sees."""
        return float(np.mean(self.dithered_transmission()))

    @property
    def output_light(self) -> Light:
        return self.input_light.scaled(self.mean_transmission)

    def advance(self, dt_s: float) -> None:
        self.peak_bias_v += (self.drift_v_per_sqrt_s * math.sqrt(dt_s)
                             * float(self.rng.standard_normal()))


@dataclass
class VariableAttenuator:
    """The MBX's output VOA: constant attenuation or constant output power, settling smoothly."""

    enabled: bool = False
    constant_power: bool = False
    attenuation_setpoint_db: float = 3.0
    power_setpoint_mw: float = 1.0
    insertion_loss_db: float = 0.5  # with the VOA off (0 V): the least it attenuates
    max_attenuation_db: float = 25.0
    settle_s: float = 0.05
    attenuation_db: float = 0.5

    def target_db(self, input_mw: float) -> float:
        """Where the VOA's own loop drives the attenuation for this input power."""
        if not self.enabled:
            return self.insertion_loss_db
        if not self.constant_power:
            wanted_db = self.attenuation_setpoint_db
        elif input_mw > 0:
            wanted_db = 10 * math.log10(input_mw / self.power_setpoint_mw)
        else:
            wanted_db = self.insertion_loss_db  # no light: the loop opens the VOA fully
        return min(max(wanted_db, self.insertion_loss_db), self.max_attenuation_db)

    def advance(self, dt_s: float, input_mw: float) -> None:
        settled = 1 - math.exp(-dt_s / self.settle_s)
        self.attenuation_db += (self.target_db(input_mw) - self.attenuation_db) * settled


@dataclass(frozen=True)
class Calibration:
    """What a bias sweep taught the controller: V_pi, where the peak sits, peak and null power."""

    v_pi_v: float
    peak_bias_v: float
    peak_mw: float
    null_mw: float

    @staticmethod
    def fit(bias_v: FloatArray, power_mw: FloatArray) -> Calibration:
        """Least-squares fit of P = A + B cos(pi V / V_pi) + C sin(pi V / V_pi) over a V_pi grid."""
        best: tuple[float, float, FloatArray] | None = None
        for v_pi in _V_PI_GRID_V:
            design = np.column_stack([np.ones_like(bias_v), np.cos(np.pi * bias_v / v_pi),
                                      np.sin(np.pi * bias_v / v_pi)])
            coefficients, residual, *_ = np.linalg.lstsq(design, power_mw, rcond=None)
            error = float(residual[0]) if residual.size else math.inf
            if best is None or error < best[1]:
                best = (float(v_pi), error, coefficients)
        assert best is not None
        v_pi, _, (mean, cos_part, sin_part) = best
        amplitude = math.hypot(cos_part, sin_part)
        peak_bias_v = math.atan2(sin_part, cos_part) * v_pi / math.pi
        return Calibration(v_pi, peak_bias_v, float(mean + amplitude), float(mean - amplitude))

    def bias_for_phase(self, phase_rad: float) -> float:
        """The bias nearest 0 V where the operating phase is ``phase_rad``."""
        bias_v = self.peak_bias_v + phase_rad * self.v_pi_v / math.pi
        period_v = 2 * self.v_pi_v
        return bias_v - period_v * round(bias_v / period_v)


@dataclass
class MbxBiasController:
    """The MBX's bias loop, tap photodiode, calibration sweep and VOA, in the world's time."""

    modulator: MachZehnderModulator
    rng: np.random.Generator
    voa: VariableAttenuator = field(default_factory=VariableAttenuator)
    hold_v: float = 0.0  # MANUAL mode's voltage
    power_ratio: float = 0.5  # AUTO_POWER modes: output power as a fraction of the peak
    dither_vpp: float = 0.1
    tap_noise_mw: float = 1e-5  # rms noise of one tap sample, referred to the modulator output
    cycle_s: float = 0.01  # one lock-in integration and one integrator step
    loop_gain: float = 0.1  # fraction of the phase error corrected per cycle
    calibration_s: float = 2.0
    bias_limit_v: float = 10.0
    lock_tolerance_rad: float = 0.05
    mode: BiasMode = field(default=BiasMode.OFF, init=False)
    calibration: Calibration | None = field(default=None, init=False)
    sweep_left_s: float = field(default=0.0, init=False)
    phase_error_rad: float = field(default=math.inf, init=False)  # low-passed lock error
    _sweep: list[tuple[float, float]] = field(default_factory=list, init=False)
    _pending_s: float = field(default=0.0, init=False)

    @property
    def calibrating(self) -> bool:
        return self.sweep_left_s > 0

    @property
    def locked(self) -> bool:
        """At its set-point: locked within tolerance in AUTO modes, at the voltage otherwise."""
        if self.calibrating or self.mode is BiasMode.OFF:
            return False
        if self.mode in _LOCKING:
            return abs(self.phase_error_rad) < self.lock_tolerance_rad
        return True

    @property
    def output_light(self) -> Light:
        """The light leaving the MBX: the modulator's output through the VOA."""
        return self.modulator.output_light.scaled(_db(self.voa.attenuation_db))

    def set_mode(self, mode: BiasMode) -> None:
        """Switch mode; AUTO and HOLD modes first sweep the bias to calibrate."""
        self.mode = mode
        if mode in _LOCKING or mode in _HOLDING:
            self.start_calibration()
        else:
            self._apply_mode()

    def set_hold_v(self, volts: float) -> None:
        self.hold_v = volts
        if self.mode is BiasMode.MANUAL and not self.calibrating:
            self.modulator.bias_v = volts

    def start_calibration(self) -> None:
        """Sweep the bias from -limit to +limit, without dither, recording tap power."""
        self.sweep_left_s = self.calibration_s
        self._sweep.clear()
        self.modulator.dither_v = 0.0
        self.modulator.bias_v = -self.bias_limit_v
        self.phase_error_rad = math.inf

    def tap_power_mw(self) -> float:
        """One reading of the tap photodiode, as power at the modulator's output."""
        signal = self.modulator.input_light.total_power_mw * self.modulator.mean_transmission
        return signal + float(self.rng.normal(0.0, self.tap_noise_mw))

    def advance(self, dt_s: float) -> None:
        """Run the controller (and the modulator's drift under it) cycle by cycle."""
        self._pending_s += dt_s
        input_mw = self.modulator.input_light.total_power_mw  # inputs are set before advancing
        while self._pending_s >= self.cycle_s:
            self._pending_s -= self.cycle_s
            self.modulator.advance(self.cycle_s)
            output_mw = input_mw * self.modulator.dithered_transmission()
            if self.calibrating:
                self._sweep_step(self._with_tap_noise(output_mw))
            elif self.mode in _LOCKING:
                self._lock_step(self._with_tap_noise(output_mw))
            self.voa.advance(self.cycle_s, float(np.mean(output_mw)))

    def _apply_mode(self) -> None:
        """Put the bias where the mode wants it once any sweep is over."""
        modulator = self.modulator
        modulator.dither_v = 0.0
        if self.mode is BiasMode.OFF:
            modulator.bias_v = 0.0
        elif self.mode is BiasMode.MANUAL:
            modulator.bias_v = self.hold_v
        elif self.calibration is not None:
            modulator.bias_v = self.calibration.bias_for_phase(self._target_phase_rad())
            if self.mode in _LOCKING:
                modulator.dither_v = self.dither_vpp / 2

    def _target_phase_rad(self) -> float:
        if self.mode in _TARGET_PHASE_RAD:
            return _TARGET_PHASE_RAD[self.mode]
        assert self.calibration is not None
        peak, null = self.calibration.peak_mw, self.calibration.null_mw
        if peak <= null:  # a sweep in the dark: no curve to place the ratio on
            return math.pi / 2
        cos_phase = 2 * (self.power_ratio * peak - null) / (peak - null) - 1
        phase = math.acos(min(max(cos_phase, -1.0), 1.0))
        return -phase if self.mode is BiasMode.AUTO_POWER_POS else phase

    def _with_tap_noise(self, output_mw: FloatArray) -> FloatArray:
        """What the tap photodiode reads of the output power samples of one dither period."""
        return output_mw + self.rng.normal(0.0, self.tap_noise_mw, _DITHER_SAMPLES)

    def _sweep_step(self, samples_mw: FloatArray) -> None:
        self._sweep.append((self.modulator.bias_v, float(np.mean(samples_mw))))
        self.sweep_left_s = max(self.sweep_left_s - self.cycle_s, 0.0)
        done = 1 - self.sweep_left_s / self.calibration_s
        self.modulator.bias_v = self.bias_limit_v * (2 * done - 1)
        if not self.calibrating:
            bias_v, power_mw = (np.array(column) for column in zip(*self._sweep, strict=True))
            self.calibration = Calibration.fit(bias_v, power_mw)
            self._apply_mode()

    def _lock_step(self, samples_mw: FloatArray) -> None:
        """One lock-in period: estimate the phase, step the integrator towards the target."""
        assert self.calibration is not None
        first = 2 * float(samples_mw @ _DITHER_SIN) / _DITHER_SAMPLES
        second = 2 * float(samples_mw @ _DITHER_COS2) / _DITHER_SAMPLES
        b = math.pi * self.modulator.dither_v / self.calibration.v_pi_v
        noise = self.tap_noise_mw * math.sqrt(2 / _DITHER_SAMPLES)
        if math.hypot(first * b / 4, second) < _DETECTION_SNR * noise:
            self.phase_error_rad = math.inf  # no modulation seen: hold the bias
            return
        error = _wrap_rad(math.atan2(-first * b / 4, second) - self._target_phase_rad())
        if not math.isfinite(self.phase_error_rad):
            self.phase_error_rad = error
        self.phase_error_rad += self.loop_gain * (error - self.phase_error_rad)
        self._step_bias(-self.loop_gain * error * self.calibration.v_pi_v / math.pi)

    def _step_bias(self, step_v: float) -> None:
        """Move the bias; near a rail, jump a whole period (2 V_pi) back towards 0 V."""
        assert self.calibration is not None
        bias_v = self.modulator.bias_v + step_v
        if abs(bias_v) > self.bias_limit_v:
            bias_v -= math.copysign(2 * self.calibration.v_pi_v, bias_v)
        self.modulator.bias_v = bias_v
