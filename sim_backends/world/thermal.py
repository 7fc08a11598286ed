"""Heat in the microring: the thermal pole, the auxiliary laser's heating, slow disturbances.

The ring's temperature rise Delta T above the TEC mount follows one thermal pole
(design/physics.md, section 4):

    tau_T d(Delta T)/dt = -Delta T + R_th (P_abs,pump + P_abs,aux)

and shifts every resonance of the ring red by G_T per kelvin. The absorbed powers depend on
Delta T through the detunings, so the pole is stiff and nonlinear (the loop gain reaches ~ 1e3 with
the auxiliary laser locked). `exponential_step` advances it exactly for the linearised right-hand
side, which is stable for any step and reduces to a Newton step onto the quasi-static equilibrium
when the step is long compared with the closed-loop time constant.

The auxiliary laser (counter-propagating, orthogonal polarisation) drives its own resonance
linearly: its absorbed power is a thermally shifted Lorentzian. Its booster amplifier is a fixed
world component (`AuxAmplifier`): saturated, so its output does not follow the seed power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim_backends.world.light import Light


@dataclass(frozen=True)
class ThermalParams:
    """The thermal pole of the ring. All values *assumed* (not in the seed)."""

    #: Thermal time constant tau_T of the mode volume relative to the chip, s (us to ms).
    tau_s: float = 50e-6
    #: Thermal resistance R_th from the mode volume to the TEC mount, K/W.
    resistance_k_per_w: float = 100.0
    #: Fraction of the intrinsic loss kappa0 that is absorption (heats); the rest is scattering.
    absorbed_fraction: float = 0.4
    #: Red shift of every resonance per kelvin, G_T (doped silica, ~ 1.2 GHz/K), Hz/K.
    shift_hz_per_k: float = 1.2e9


@dataclass(frozen=True)
class AuxResonanceParams:
    """The resonance the auxiliary laser drives (other polarisation family). *Assumed* values."""

    #: Its cold wavelength at the reference mount temperature, m.
    wavelength_m: float = 1549.05e-9
    loaded_q: float = 1.7e6
    #: kappa_ex / kappa of that resonance (0.5 = critical coupling).
    coupling_ratio: float = 0.5


@dataclass(frozen=True)
class DisturbanceParams:
    """Slow disturbances of the ring temperature (ambient, glue creep): *assumed*, default off.

    A linear drift plus an Ornstein-Uhlenbeck process (rms amplitude, correlation time). Both
    add to the mount temperature the resonances see.
    """

    drift_k_per_s: float = 0.0
    noise_rms_k: float = 0.0
    noise_correlation_s: float = 1.0


def phi1(z: float) -> float:
    """(e^z - 1) / z, accurate near 0 and finite for large negative z."""
    if abs(z) < 1e-5:
        return 1.0 + z / 2.0 + z * z / 6.0
    return math.expm1(z) / z


def phi2(z: float) -> float:
    """(e^z - 1 - z) / z^2, accurate near 0."""
    if abs(z) < 1e-3:
        return 0.5 + z / 6.0 + z * z / 24.0
    return (math.expm1(z) - z) / (z * z)


def exponential_step(x0: float, rate0: float, jacobian: float, rate_t: float, h: float) -> float:
    """Exact solution at h of x' = rate0 + jacobian (x - x0) + rate_t t, x(0) = x0.

    Exponential Rosenbrock-Euler: exact for a linear ODE with a linearly varying drive, A-stable
    for any h, and for h * |jacobian| >> 1 a Newton step onto the moving equilibrium.
    """
    z = h * jacobian
    if z > 700.0:  # runaway far beyond any accepted step: let the caller reject it
        return math.copysign(math.inf, rate0 if rate0 != 0.0 else 1.0)
    return x0 + h * phi1(z) * rate0 + h * h * phi2(z) * rate_t


def lorentzian_absorbed_w(
    power_w: float, zeta: float, coupling_ratio: float, absorbed_fraction: float
) -> float:
    """Heat from a linear resonance driven with power_w at normalised detuning zeta.

    The intrinsic loss takes 4 eta (1 - eta) / (1 + zeta^2) of the input (eta = kappa_ex / kappa,
    zeta = 2 (omega_res - omega) / kappa); absorbed_fraction of that heats the ring.
    """
    eta = coupling_ratio
    return absorbed_fraction * power_w * 4.0 * eta * (1.0 - eta) / (1.0 + zeta * zeta)


@dataclass
class Disturbance:
    """State of the slow disturbances: the drift so far plus the Ornstein-Uhlenbeck noise, K."""

    params: DisturbanceParams
    drift_k: float = 0.0
    noise_k: float = 0.0

    @property
    def offset_k(self) -> float:
        return self.drift_k + self.noise_k

    def advance(self, dt_s: float, rng: np.random.Generator) -> None:
        """Move on by dt_s: linear drift, exact Ornstein-Uhlenbeck step (no draw if it is off)."""
        p = self.params
        self.drift_k += p.drift_k_per_s * dt_s
        if p.noise_rms_k > 0.0:
            decay = math.exp(-dt_s / p.noise_correlation_s)
            spread = p.noise_rms_k * math.sqrt(-math.expm1(-2.0 * dt_s / p.noise_correlation_s))
            self.noise_k = self.noise_k * decay + spread * float(rng.standard_normal())


@dataclass
class AuxAmplifier:
    """The auxiliary laser's booster: saturated, a fixed output while seeded (seed: 3.2 W)."""

    output_w: float = 3.2
    enabled: bool = True
    #: Below this seed power the amplifier is not saturated and its output is switched off.
    min_seed_mw: float = 0.1

    def output(self, seed: Light) -> Light:
        """The amplified aux line (the seed's strongest line at output_w), or dark."""
        if not self.enabled or seed.line_power_mw.size == 0:
            return Light.dark()
        strongest = int(np.argmax(seed.line_power_mw))
        if seed.line_power_mw[strongest] < self.min_seed_mw:
            return Light.dark()
        return Light.line(float(seed.line_frequency_hz[strongest]), self.output_w * 1e3)
