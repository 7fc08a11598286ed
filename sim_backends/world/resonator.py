"""Reduced real-time model of the Kerr microresonator, calibrated against the LLE core.

The LLE (lle.py) is far too slow for thermal time scales (design/physics.md, section 2), so the
world integrates only the slow variables: the ring's temperature rise Delta T above the TEC mount
(one thermal pole, thermal.py), which CW branch the intracavity field sits on, and the list of
solitons (their number N, fixed random positions, and their individual existence edges). The fast
optical state is slaved to the effective detuning

    zeta_eff = 2 (omega_res(T_mount + disturbance + Delta T) - omega_pump) / kappa,

taken to the nearest resonance, and to the pump F^2 from the on-chip power:

* lower CW branch / cold: <|psi|^2> = lowest root of F^2 = Y ((zeta - Y)^2 + 1);
* upper CW branch (the thermal triangle): the highest root; above the MI threshold (Y > 1) and
  from zeta_eff > `mi_onset_zeta` the field is a chaotic MI comb whose mean power is
  r(zeta) times the upper root, r from LLE runs (bench/bench_reduced_model.py --calibrate);
* N solitons: <|psi|^2> = P_cw(zeta) + N E1(zeta), E1 from `lle.tabulate_soliton_steps`.

Transitions are events found to within a fraction of a zeta unit inside each sub-step: the
upper branch ends at the MI collapse (zeta_decay + spread + margin, or the upper fold if lower),
where N ~ Binomial(M, p) solitons are born, M the number of MI pulses on the ring; soliton i is lost
when zeta_eff leaves [zeta_decay + spread_low u_i, zeta_fold - spread_high v_i]; the lower branch
ends at its fold (a jump up into the triangle). See docs/physics-model.md for the calibration.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections import deque
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np

from sim_backends.world import lle
from sim_backends.world.laser import C_M_PER_S
from sim_backends.world.light import FloatArray, Light
from sim_backends.world.thermal import (
    AuxResonanceParams,
    Disturbance,
    DisturbanceParams,
    ThermalParams,
    exponential_step,
    lorentzian_absorbed_w,
    phi1,
)

HBAR_J_S = 1.054571817e-34
#: Below this F^2 the CW response is single valued (no bistability, no folds).
F2_BISTABLE = 8.0 / (3.0 * math.sqrt(3.0))
_SQRT3 = math.sqrt(3.0)
#: Sub-step control: largest accepted estimated error of zeta_eff per step.
_ZETA_TOLERANCE = 0.01
#: Largest change of zeta_eff (pump) or zeta_aux per sub-step near a resonance.
_ZETA_TRUST = 0.5
_MAX_EVENTS = 2000


class Branch(StrEnum):
    LOWER = "lower"
    UPPER = "upper"


class Regime(StrEnum):
    """What the pumped resonance is doing, in the lab's words."""

    CW_LOWER = "cw_lower"  # cold or lower branch: no comb
    CW_UPPER = "cw_upper"  # upper branch, ordered (CW or primary comb): the rising triangle
    MI = "mi"  # chaotic modulation-instability comb
    SOLITON = "soliton"


# --- parameters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResonatorParams:
    """The ring, its coupling and the calibration of the reduced model.

    Seed values: radius, loaded Q (and the ~49 GHz FSR the group index reproduces). Fitted:
    D2 and kappa_ex (3.2 THz single soliton; F^2 = 36 from 3.5 W after 2.25 dB of facet loss).
    Everything else is *assumed* or calibrated against the LLE, as marked.
    """

    ring_radius_m: float = 592.1e-6  # seed
    group_index: float = 1.645  # seed (from FSR ~ 49 GHz)
    loaded_q: float = 1.7e6  # seed
    #: Cold pumped resonance at the reference mount temperature (assumed).
    resonance_wavelength_m: float = 1556.10e-9
    reference_mount_c: float = 25.0
    #: kappa_ex / kappa (fitted: critical coupling, with the facet loss giving F^2 = 36 at 3.5 W).
    coupling_ratio: float = 0.5
    #: D2 / 2 pi (fitted to the 3.2 THz single soliton near the lower edge of existence).
    dispersion_d2_hz: float = 0.4e6
    #: Kerr constants for g0 (assumed): n2, effective mode area, refractive index.
    n2_m2_per_w: float = 1.15e-19
    effective_area_m2: float = 2.0e-12
    refractive_index: float = 1.60
    #: Fibre-to-chip and chip-to-fibre losses (assumed, 1.5 to 3 dB).
    input_facet_loss_db: float = 2.25
    output_facet_loss_db: float = 2.25
    #: Through port to the power meter and OSA: PBS, tap coupler (assumed).
    monitor_loss_db: float = 20.0
    thermal: ThermalParams = field(default_factory=ThermalParams)
    aux: AuxResonanceParams = field(default_factory=AuxResonanceParams)
    disturbance: DisturbanceParams = field(default_factory=DisturbanceParams)
    # --- calibration against the LLE (bench/bench_reduced_model.py --calibrate) ---
    #: F^2 at which the soliton table is computed (the operating point; others are scaled).
    table_f2: float = 36.0
    #: Lines of the ring the spectra are computed on, and of the coarse ring of the table.
    n_modes: int = lle.DEVICE_N_MODES
    table_n_modes: int = 256
    #: Hopf (breathing) edge ~ F^(2 x exponent) and adiabatic breather-decay edge / Hopf edge:
    #: LLE continuation at F^2 = 16 ... 64, down-sweeps at F^2 = 25, 36, 49.
    hopf_exponent: float = 0.46
    decay_fraction: float = 0.88
    #: Upper-branch MI: onset (zeta) and mean power / upper CW root against zeta (LLE sweeps at
    #: F^2 = 25, 36, 49; linear beyond the last point, floored) and its relative rms noise.
    mi_onset_zeta: float = 0.0
    mi_power_ratio: tuple[tuple[float, float], ...] = (
        (-1.5, 1.0), (0.0, 0.92), (2.0, 0.82), (4.0, 0.74), (6.0, 0.655), (8.0, 0.53))
    mi_ratio_floor: float = 0.2
    mi_power_noise_rms: float = 0.08
    #: MI spectrum: fraction of the MI power in comb lines (rest in the pump mode), e-folding
    #: width in units of the MI period, and share of the comb power in a smooth background.
    mi_comb_fraction: float = 0.68
    mi_envelope_periods: float = 0.43
    mi_background_fraction: float = 0.1  # assumed
    #: The MI state collapses this far (zeta) above the highest decay edge a new soliton can have
    #: (assumed: the chaotic state persists until its pulses can survive; see the docs).
    mi_collapse_margin: float = 0.3
    #: Each MI pulse becomes a soliton with this probability (LLE sweeps: N / M ~ 0.105).
    soliton_survival_probability: float = 0.105
    #: Spread of the individual existence edges (interactions, mode crossings): assumed, zeta.
    soliton_edge_spread_low: float = 2.0
    soliton_edge_spread_high: float = 6.0
    #: Smallest separation of soliton positions on the ring (many pulse widths), rad.
    soliton_min_separation_rad: float = 0.1


@dataclass(frozen=True)
class DeviceSpread:
    """How chips of the seed's design differ from one another (fabrication, assembly): all
    *assumed*. Relative spreads are lognormal sigmas; absolute ones normal sigmas. Resonances
    move together with the ring's size (``common_shift_m``, which the aux laser's thermal lock
    takes out) and apart between the pump's and the aux's mode families (``differential``)."""

    loaded_q: float = 0.08
    coupling_ratio: float = 0.03  # absolute, clipped to [0.35, 0.65]
    dispersion_d2_hz: float = 0.05
    common_shift_m: float = 50e-12
    differential_shift_m: float = 1.5e-12
    facet_loss_db: float = 0.25  # absolute, each facet
    thermal_resistance: float = 0.15
    thermal_tau: float = 0.3
    absorbed_fraction: float = 0.04  # absolute


def draw_device(rng: np.random.Generator, nominal: ResonatorParams | None = None,
                spread: DeviceSpread | None = None) -> ResonatorParams:
    """One chip from the population around ``nominal`` (the seed's device)."""
    p, d = nominal or ResonatorParams(), spread or DeviceSpread()

    def scaled(value: float, sigma: float) -> float:
        return value * float(np.exp(sigma * rng.standard_normal()))

    def shifted(value: float, sigma: float) -> float:
        return value + sigma * float(rng.standard_normal())

    common = shifted(0.0, d.common_shift_m)
    thermal = replace(p.thermal, resistance_k_per_w=scaled(p.thermal.resistance_k_per_w,
                                                           d.thermal_resistance),
                      tau_s=scaled(p.thermal.tau_s, d.thermal_tau),
                      absorbed_fraction=shifted(p.thermal.absorbed_fraction,
                                                d.absorbed_fraction))
    aux = replace(p.aux, wavelength_m=p.aux.wavelength_m + common)
    return replace(
        p, loaded_q=scaled(p.loaded_q, d.loaded_q),
        coupling_ratio=min(max(shifted(p.coupling_ratio, d.coupling_ratio), 0.35), 0.65),
        dispersion_d2_hz=scaled(p.dispersion_d2_hz, d.dispersion_d2_hz),
        resonance_wavelength_m=shifted(p.resonance_wavelength_m + common,
                                       d.differential_shift_m),
        input_facet_loss_db=shifted(p.input_facet_loss_db, d.facet_loss_db),
        output_facet_loss_db=shifted(p.output_facet_loss_db, d.facet_loss_db),
        thermal=thermal, aux=aux)


@dataclass(frozen=True)
class RingConstants:
    """Quantities derived once from ResonatorParams."""

    resonance_hz: float
    kappa_rad_s: float
    fsr_hz: float
    zeta_per_hz: float  # zeta per Hz of (resonance - laser)
    zeta_per_fsr: float
    zeta_per_k: float  # thermal shift in zeta per kelvin
    g0_rad_s: float
    threshold_w: float  # on-chip pump power for F^2 = 1
    d2: float  # D2 / kappa
    heat_per_y_w: float  # absorbed pump power per unit of <|psi|^2>
    comb_per_y_w: float  # out-coupled power of a comb line per unit |psi_mu|^2
    input_transmission: float
    output_transmission: float
    monitor_transmission: float  # through-port fibre to power meter / OSA
    aux_resonance_hz: float
    aux_zeta_per_hz: float
    aux_zeta_per_fsr: float
    aux_zeta_per_k: float

    @staticmethod
    def of(p: ResonatorParams) -> RingConstants:
        omega = 2.0 * math.pi * C_M_PER_S / p.resonance_wavelength_m
        kappa = omega / p.loaded_q
        kappa_ex = p.coupling_ratio * kappa
        length = 2.0 * math.pi * p.ring_radius_m
        fsr = C_M_PER_S / (p.group_index * length)
        g0 = (HBAR_J_S * omega**2 * C_M_PER_S * p.n2_m2_per_w
              / (p.refractive_index**2 * p.effective_area_m2 * length))
        threshold = kappa**3 * HBAR_J_S * omega / (8.0 * g0 * kappa_ex)
        eta, t = p.coupling_ratio, p.thermal
        zeta_per_hz = 4.0 * math.pi / kappa
        aux_hz = C_M_PER_S / p.aux.wavelength_m
        aux_zeta_per_hz = 4.0 * math.pi * p.aux.loaded_q / (2.0 * math.pi * aux_hz)
        return RingConstants(
            resonance_hz=omega / (2.0 * math.pi),
            kappa_rad_s=kappa,
            fsr_hz=fsr,
            zeta_per_hz=zeta_per_hz,
            zeta_per_fsr=zeta_per_hz * fsr,
            zeta_per_k=zeta_per_hz * t.shift_hz_per_k,
            g0_rad_s=g0,
            threshold_w=threshold,
            d2=2.0 * math.pi * p.dispersion_d2_hz / kappa,
            heat_per_y_w=t.absorbed_fraction * 4.0 * eta * (1.0 - eta) * threshold,
            comb_per_y_w=4.0 * eta * eta * threshold,
            input_transmission=10.0 ** (-p.input_facet_loss_db / 10.0),
            output_transmission=10.0 ** (-p.output_facet_loss_db / 10.0),
            monitor_transmission=10.0 ** (-p.monitor_loss_db / 10.0),
            aux_resonance_hz=aux_hz,
            aux_zeta_per_hz=aux_zeta_per_hz,
            aux_zeta_per_fsr=aux_zeta_per_hz * fsr,
            aux_zeta_per_k=aux_zeta_per_hz * t.shift_hz_per_k,
        )


# --- CW branches --------------------------------------------------------------------------------


def _cubic_residual(y: float, zeta: float, f2: float) -> tuple[float, float]:
    u = zeta - y
    return y * (u * u + 1.0) - f2, u * u + 1.0 - 2.0 * y * u


def _polish(y: float, zeta: float, f2: float) -> float:
    """Two Newton steps on the cubic, kept only while they reduce the residual."""
    for _ in range(2):
        r, dr = _cubic_residual(y, zeta, f2)
        if dr == 0.0:
            break
        candidate = y - r / dr
        if abs(_cubic_residual(candidate, zeta, f2)[0]) >= abs(r):
            break
        y = candidate
    return y


def cw_branch_powers(zeta: float, f2: float) -> tuple[float, float]:
    """(lowest, highest) real root Y of F^2 = Y ((zeta - Y)^2 + 1); equal if only one.

    Closed form (Cardano / trigonometric) with Newton polish: ~ 100x faster than np.roots, which
    the sub-stepper needs (lle.cw_powers gives the same roots).
    """
    if f2 <= 0.0:
        return 0.0, 0.0
    p = 1.0 - zeta * zeta / 3.0
    q = (2.0 * zeta**3 + 18.0 * zeta) / 27.0 - f2
    shift = 2.0 * zeta / 3.0
    disc = q * q / 4.0 + p**3 / 27.0
    if disc >= 0.0:  # one real root: Cardano, polished (the sum of cube roots may cancel)
        s = math.sqrt(disc)
        y = _polish(math.cbrt(-q / 2.0 + s) + math.cbrt(-q / 2.0 - s) + shift, zeta, f2)
        return y, y
    r = math.sqrt(-p / 3.0)
    phi = math.acos(max(-1.0, min(1.0, -q / (2.0 * r**3))))
    # phi in [0, pi]: cos(phi / 3) gives the largest root, cos((phi + 2 pi) / 3) the smallest
    return (2.0 * r * math.cos((phi + 2.0 * math.pi) / 3.0) + shift,
            2.0 * r * math.cos(phi / 3.0) + shift)


def _fold_function(zeta: float, sign: float) -> float:
    return (2.0 * zeta**3 + 18.0 * zeta) / 27.0 + sign * 2.0 * ((zeta * zeta - 3.0) / 9.0) ** 1.5


@functools.lru_cache(maxsize=256)
def fold_detunings(f2: float) -> tuple[float, float] | None:
    """(lower fold, upper fold) of the bistable CW response, or None below F^2 = 8 / 3^1.5.

    The lower branch exists for zeta > lower fold, the upper for zeta < upper fold
    (~ 6.1 and ~ 36.0 at F^2 = 36).
    """
    if f2 <= F2_BISTABLE:
        return None
    folds = []
    for sign, high in ((1.0, (27.0 * f2 / 4.0) ** (1 / 3) + 2.0), (-1.0, f2 + 2.0)):
        low = _SQRT3
        for _ in range(60):
            mid = 0.5 * (low + high)
            if _fold_function(mid, sign) < f2:
                low = mid
            else:
                high = mid
        folds.append(0.5 * (low + high))
    return folds[0], folds[1]


# --- soliton calibration from the LLE -----------------------------------------------------------


@dataclass(frozen=True)
class SolitonCalibration:
    """Existence range and E1 of the stationary soliton, from one LLE table, scaled in F^2.

    The table is computed at F^2 = f2_ref on a coarse ring (lle.py: d2' = d2 (n / n')^2) and
    E1 is stored as the ratio to (2/pi) sqrt(zeta d2), which scales out d2. For another F^2 the
    fold scales as F^2 (pi^2 F^2 / 8), the Hopf edge as F^(2 hopf_exponent), and the ratio is
    read at the same relative position inside the range.
    """

    f2_ref: float
    zeta: tuple[float, ...]
    e1_ratio: tuple[float, ...]
    hopf_exponent: float
    decay_fraction: float

    def zeta_fold(self, f2: float) -> float:
        return self.zeta[-1] * f2 / self.f2_ref

    def zeta_hopf(self, f2: float) -> float:
        return self.zeta[0] * (f2 / self.f2_ref) ** self.hopf_exponent

    def zeta_decay(self, f2: float) -> float:
        return self.decay_fraction * self.zeta_hopf(f2)

    def e1(self, zeta: float, f2: float, d2: float) -> float:
        """Mean intracavity power one soliton adds, <|psi|^2> units (extrapolated flat)."""
        low, high = self.zeta_hopf(f2), self.zeta_fold(f2)
        if high <= low:
            return lle.analytic_soliton_energy(max(zeta, 0.0), d2) * self.e1_ratio[0]
        ref = self.zeta[0] + (zeta - low) / (high - low) * (self.zeta[-1] - self.zeta[0])
        i = bisect.bisect_left(self.zeta, ref)
        if i <= 0:
            ratio = self.e1_ratio[0]
        elif i >= len(self.zeta):
            ratio = self.e1_ratio[-1]
        else:
            z0, z1 = self.zeta[i - 1], self.zeta[i]
            w = (ref - z0) / (z1 - z0)
            ratio = (1.0 - w) * self.e1_ratio[i - 1] + w * self.e1_ratio[i]
        return ratio * lle.analytic_soliton_energy(max(zeta, 0.0), d2)


@functools.lru_cache(maxsize=8)
def soliton_calibration(
    f2_ref: float, d2: float, n_modes: int, table_n_modes: int,
    hopf_exponent: float, decay_fraction: float,
) -> SolitonCalibration:
    """Tabulate the LLE once (~ 1.5 s single-threaded at 256 modes) and cache it."""
    d2_table = d2 * (n_modes / table_n_modes) ** 2
    table = lle.tabulate_soliton_steps(
        f=math.sqrt(f2_ref), d2=d2_table, n_modes=table_n_modes, n_points=48)
    ratio = [e / lle.analytic_soliton_energy(z, d2_table)
             for z, e in zip(table.zeta, table.e1, strict=True)]
    return SolitonCalibration(f2_ref, tuple(float(z) for z in table.zeta), tuple(ratio),
                              hopf_exponent, decay_fraction)


# --- state --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Soliton:
    """One soliton: where it sits on the ring and where, inside the spread, its edges are."""

    position_rad: float
    low_edge_offset: float  # u in [0, 1): decays at zeta_decay + spread_low u
    high_edge_offset: float  # v in [0, 1): lost at zeta_fold - spread_high v


@dataclass(frozen=True)
class ResonatorEvent:
    """A transition, for traces and tests: when, what, and the state right after it."""

    time_s: float
    kind: str  # "collapse", "soliton_lost", "to_upper", "to_lower"
    soliton_number: int
    zeta_eff: float
    pump_wavelength_m: float


@dataclass(frozen=True)
class _Drive:
    """Inputs over one advance: values at its start and linear rates (wavelengths linear)."""

    pump_m: float
    pump_m_per_s: float
    pump_chip_w: float
    pump_chip_w_per_s: float
    aux_m: float
    aux_m_per_s: float
    aux_chip_w: float
    mount_c: float
    mount_c_per_s: float


def _strongest_line(light: Light) -> tuple[float, float]:
    """(frequency Hz, power mW) of the strongest line, (0, 0) if dark."""
    size = light.line_power_mw.size
    if size == 0:
        return 0.0, 0.0
    i = 0 if size == 1 else int(np.argmax(light.line_power_mw))
    return float(light.line_frequency_hz[i]), float(light.line_power_mw[i])


def _wrap(zeta: float, period: float) -> float:
    """Detuning from the nearest resonance: into [-period/2, period/2)."""
    return (zeta + 0.5 * period) % period - 0.5 * period


@dataclass
class Microresonator:
    """The pumped microring: inputs set by the Testbed, slow state advanced by ``advance``.

    Inputs (set before each ``advance``; rates describe how they move during it): ``pump`` (light
    after the EDFA, in the fibre), ``pump_sweep_m_per_s`` (the pump laser's sweep),
    ``pump_ramp_mw_per_s`` (EDFA ramps), ``aux`` (light after the aux amplifier),
    ``aux_sweep_m_per_s``, ``mount_c`` and ``mount_rate_c_per_s`` (TEC mount temperature).
    """

    params: ResonatorParams = field(default_factory=ResonatorParams)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    pump: Light = field(default_factory=Light.dark)
    pump_sweep_m_per_s: float = 0.0
    pump_ramp_mw_per_s: float = 0.0
    aux: Light = field(default_factory=Light.dark)
    aux_sweep_m_per_s: float = 0.0
    mount_c: float = 25.0
    mount_rate_c_per_s: float = 0.0
    # slow state
    delta_t_k: float = 0.0
    branch: Branch = Branch.LOWER
    solitons: list[Soliton] = field(default_factory=list)
    time_s: float = 0.0
    events: deque[ResonatorEvent] = field(default_factory=lambda: deque(maxlen=_MAX_EVENTS))

    def __post_init__(self) -> None:
        self.constants = RingConstants.of(self.params)
        self.disturbance = Disturbance(self.params.disturbance)
        # Independent streams, so that soliton numbers do not depend on how often the world syncs.
        self._birth_rng, self._noise_rng, self._display_rng = self.rng.spawn(3)
        self._calibration: SolitonCalibration | None = None
        self._edges_memo: tuple[tuple[float, tuple[Soliton, ...]],
                                tuple[float, int, float, int]] | None = None
        self._step_s = self.params.thermal.tau_s
        self._settled = False  # at a thermally stable equilibrium after the last sub-step
        self._mi_noise = 0.0  # this sync's MI power fluctuation (standard normal)
        self._mi_seed = 0  # this sync's MI line pattern
        self.substeps = 0  # accepted sub-steps so far (for the benchmark)

    # --- calibration ------------------------------------------------------------------------

    @property
    def calibration(self) -> SolitonCalibration:
        """The LLE soliton table (computed on first use, ~ 1.5 s, then cached per process)."""
        if self._calibration is None:
            p = self.params
            self._calibration = soliton_calibration(
                p.table_f2, self.constants.d2, p.n_modes, p.table_n_modes,
                p.hopf_exponent, p.decay_fraction)
        return self._calibration

    def zeta_collapse(self, f2: float) -> float:
        """Where the chaotic MI state collapses (releasing solitons)."""
        p = self.params
        return (self.calibration.zeta_decay(f2) + p.soliton_edge_spread_low
                + p.mi_collapse_margin)

    def existence_edges(self, soliton: Soliton, f2: float) -> tuple[float, float]:
        """(low, high) zeta_eff between which this soliton survives."""
        cal, p = self.calibration, self.params
        return (cal.zeta_decay(f2) + p.soliton_edge_spread_low * soliton.low_edge_offset,
                cal.zeta_fold(f2) - p.soliton_edge_spread_high * soliton.high_edge_offset)

    def _outer_edges(self, f2: float) -> tuple[float, int, float, int]:
        """(highest low edge, its soliton, lowest high edge, its soliton): memoised."""
        key = (f2, tuple(self.solitons))
        if self._edges_memo is None or self._edges_memo[0] != key:
            p = self.params
            low = max(range(len(self.solitons)), key=lambda i: self.solitons[i].low_edge_offset)
            high = max(range(len(self.solitons)),
                       key=lambda i: self.solitons[i].high_edge_offset)
            cal = self.calibration
            edges = (cal.zeta_decay(f2) + p.soliton_edge_spread_low
                     * self.solitons[low].low_edge_offset, low,
                     cal.zeta_fold(f2) - p.soliton_edge_spread_high
                     * self.solitons[high].high_edge_offset, high)
            self._edges_memo = (key, edges)
        return self._edges_memo[1]

    # --- inputs -------------------------------------------------------------------------------

    def _drive(self, offset_k: float | None = None, offset_rate_k_per_s: float = 0.0) -> _Drive:
        """The inputs as a drive; the disturbance adds to the mount temperature."""
        k = self.constants
        offset = self.disturbance.offset_k if offset_k is None else offset_k
        pump_hz, pump_mw = _strongest_line(self.pump)
        aux_hz, aux_mw = _strongest_line(self.aux)
        return _Drive(
            pump_m=C_M_PER_S / pump_hz if pump_hz > 0 else self.params.resonance_wavelength_m,
            pump_m_per_s=self.pump_sweep_m_per_s,
            pump_chip_w=pump_mw * 1e-3 * k.input_transmission,
            pump_chip_w_per_s=self.pump_ramp_mw_per_s * 1e-3 * k.input_transmission,
            aux_m=C_M_PER_S / aux_hz if aux_hz > 0 else self.params.aux.wavelength_m,
            aux_m_per_s=self.aux_sweep_m_per_s,
            aux_chip_w=aux_mw * 1e-3 * k.input_transmission,
            mount_c=self.mount_c + offset,
            mount_c_per_s=self.mount_rate_c_per_s + offset_rate_k_per_s,
        )

    def _cold(self, d: _Drive, t: float) -> tuple[float, float, float, float]:
        """(pump zeta, F^2, aux zeta, aux on-chip W) at time t with Delta T = 0, unwrapped."""
        k, p = self.constants, self.params
        mount_shift_hz = p.thermal.shift_hz_per_k * (d.mount_c + d.mount_c_per_s * t
                                                     - p.reference_mount_c)
        pump_hz = C_M_PER_S / (d.pump_m + d.pump_m_per_s * t)
        aux_hz = C_M_PER_S / (d.aux_m + d.aux_m_per_s * t)
        zeta = k.zeta_per_hz * (k.resonance_hz - mount_shift_hz - pump_hz)
        zeta_aux = k.aux_zeta_per_hz * (k.aux_resonance_hz - mount_shift_hz - aux_hz)
        f2 = max(0.0, d.pump_chip_w + d.pump_chip_w_per_s * t) / k.threshold_w
        return zeta, f2, zeta_aux, d.aux_chip_w

    def _detunings(self, d: _Drive, x: float, t: float) -> tuple[float, float, float, float]:
        """(zeta_eff unwrapped, F^2, aux zeta unwrapped, aux W) with Delta T = x."""
        zeta, f2, zeta_aux, aux_w = self._cold(d, t)
        return zeta - self.constants.zeta_per_k * x, f2, \
            zeta_aux - self.constants.aux_zeta_per_k * x, aux_w

    # --- intracavity power and heat -----------------------------------------------------------

    def _mi_ratio(self, zeta: float) -> float:
        points = self.params.mi_power_ratio
        if zeta <= points[0][0]:
            return points[0][1]
        for (z0, r0), (z1, r1) in itertools.pairwise(points):
            if zeta <= z1:
                return r0 + (r1 - r0) * (zeta - z0) / (z1 - z0)
        (z0, r0), (z1, r1) = points[-2], points[-1]
        return max(self.params.mi_ratio_floor, r1 + (r1 - r0) / (z1 - z0) * (zeta - z1))

    def _is_chaotic(self, zeta: float, y_upper: float) -> bool:
        return y_upper > 1.0 and zeta >= self.params.mi_onset_zeta

    def _mean_power(self, zeta: float, f2: float) -> float:
        """<|psi|^2> of the present state at wrapped detuning zeta (mean over MI noise)."""
        low, high = cw_branch_powers(zeta, f2)
        if self.solitons:
            return low + len(self.solitons) * self.calibration.e1(zeta, f2, self.constants.d2)
        if self.branch is Branch.LOWER:
            return low
        # Upper branch: MI lowers the mean power; blended in over 1 < Y < 2 for continuity.
        blend = min(1.0, max(0.0, high - 1.0))
        return high * (1.0 - blend * (1.0 - self._mi_ratio(zeta)))

    def _heat_w(self, d: _Drive, x: float, t: float) -> float:
        """Absorbed pump plus aux power with Delta T = x at time t (present state)."""
        k = self.constants
        zeta, f2, zeta_aux, aux_w = self._detunings(d, x, t)
        zeta = _wrap(zeta, k.zeta_per_fsr)
        pump_heat = k.heat_per_y_w * self._mean_power(zeta, f2)
        aux_heat = lorentzian_absorbed_w(
            aux_w, _wrap(zeta_aux, k.aux_zeta_per_fsr),
            self.params.aux.coupling_ratio, self.params.thermal.absorbed_fraction)
        return pump_heat + aux_heat

    # --- events ---------------------------------------------------------------------------------

    def _upper_end(self, f2: float) -> tuple[float, bool]:
        """(zeta where the upper branch ends, whether that end is the MI collapse)."""
        folds = fold_detunings(f2)
        if folds is None:
            return math.inf, False
        collapse = self.zeta_collapse(f2)
        if collapse < folds[1] and collapse < self.calibration.zeta_fold(f2):
            return collapse, True
        return folds[1], False

    def _margin(self, zeta: float, f2: float) -> float:
        """> 0 while the present state persists at wrapped detuning zeta; an event at <= 0."""
        if self.solitons:
            low, _, high, _ = self._outer_edges(f2)
            return min(zeta - low, high - zeta)
        folds = fold_detunings(f2)
        if folds is None:
            return math.inf
        if self.branch is Branch.UPPER:
            return self._upper_end(f2)[0] - zeta
        return zeta - folds[0]

    def _transition(self, zeta: float, f2: float, pump_m: float) -> None:
        """Leave the present state at wrapped detuning zeta (its margin is <= 0)."""
        if self.solitons:
            low, low_i, high, high_i = self._outer_edges(f2)
            del self.solitons[low_i if zeta - low <= high - zeta else high_i]
            if not self.solitons:
                self._settle_branch(zeta, f2)
            self._log("soliton_lost", zeta, pump_m)
        elif self.branch is Branch.UPPER:
            end, is_collapse = self._upper_end(f2)
            folds = fold_detunings(f2)
            if is_collapse and folds is not None and zeta < folds[1] and zeta - end < 1.0:
                self._collapse(zeta, f2)
                self._log("collapse", zeta, pump_m)
            else:
                self.branch = Branch.LOWER
                self._log("to_lower", zeta, pump_m)
        else:
            self.branch = Branch.UPPER
            self._log("to_upper", zeta, pump_m)

    def _settle_branch(self, zeta: float, f2: float) -> None:
        """Without solitons: the lower branch where it exists, else the upper."""
        folds = fold_detunings(f2)
        self.branch = Branch.UPPER if folds is not None and zeta <= folds[0] else Branch.LOWER

    def _collapse(self, zeta: float, f2: float) -> None:
        """The chaotic state collapses: each of the M MI pulses survives with probability p."""
        p, k = self.params, self.constants
        _, y_upper = cw_branch_powers(zeta, f2)
        pulses = max(1, round(math.sqrt(max(2.0 * y_upper - zeta, 1.0) / k.d2)))
        n = int(self._birth_rng.binomial(pulses, p.soliton_survival_probability))
        self.solitons = [s for s in self._new_solitons(n)
                         if self.existence_edges(s, f2)[0] < zeta < self.existence_edges(s, f2)[1]]
        if not self.solitons:
            self._settle_branch(zeta, f2)

    def _new_solitons(self, n: int) -> list[Soliton]:
        """n solitons at random positions at least soliton_min_separation_rad apart."""
        spacing = self.params.soliton_min_separation_rad
        n = min(n, int(2.0 * math.pi / spacing))
        # Random gaps above the minimum: uniform spacings of the remaining free length.
        free = 2.0 * math.pi - n * spacing
        rng = self._birth_rng
        cuts = np.sort(rng.uniform(0.0, free, n))
        start = rng.uniform(-math.pi, math.pi)
        positions = [float((start + c + i * spacing + math.pi) % (2 * math.pi) - math.pi)
                     for i, c in enumerate(cuts)]
        return [Soliton(pos, float(rng.uniform()), float(rng.uniform())) for pos in positions]

    def _log(self, kind: str, zeta: float, pump_m: float) -> None:
        self.events.append(ResonatorEvent(self.time_s, kind, len(self.solitons), zeta, pump_m))

    # --- integration --------------------------------------------------------------------------

    def advance(self, dt_s: float) -> None:
        """Integrate the slow state over dt_s with the present inputs and their rates.

        Adaptive sub-steps: exponential update of the thermal pole (exact for the linearised
        right-hand side, so stable for any step), error and trust-region control, and event
        location by bisection for every transition.
        """
        if dt_s <= 0.0:
            return
        start_offset = self.disturbance.offset_k
        self.disturbance.advance(dt_s, self._noise_rng)
        d = self._drive(start_offset, (self.disturbance.offset_k - start_offset) / dt_s)
        t = 0.0
        h = max(self._step_s, 1e-12)
        while t < dt_s:
            t_done = self._substep(d, t, min(h, dt_s - t), dt_s - t)
            self.time_s += t_done
            t += t_done
            h = self._step_s
        self._draw_sync_noise()

    def _substep(self, d: _Drive, t: float, h: float, remaining: float) -> float:
        """Advance by at most h from t; return the time actually advanced (sets _step_s).

        A constant drive with the ring at a stable thermal equilibrium (to 1e-9 K) skips to the
        end of the interval.
        """
        k = self.constants
        self._settle_events(d, t)
        x0 = self.delta_t_k
        tau, r_th = self.params.thermal.tau_s, self.params.thermal.resistance_k_per_w
        heat0 = self._heat_w(d, x0, t)
        rate_t = self._rate_scale(d, t)
        if self._settled and rate_t == 0.0 and abs(r_th * heat0 - x0) <= 1e-9:
            self.substeps += 1
            return remaining
        dx = 1e-7
        heat_x = (self._heat_w(d, x0 + dx, t) - heat0) / dx
        dt = 1e-6 / rate_t if rate_t > 0 else 0.0
        heat_t = (self._heat_w(d, x0, t + dt) - heat0) / dt if dt > 0 else 0.0
        rate0 = (-x0 + r_th * heat0) / tau
        jac = (-1.0 + r_th * heat_x) / tau
        rate_tt = r_th * heat_t / tau
        z0, f20, za0, aux_w = self._detunings(d, x0, t)
        while True:
            x1 = exponential_step(x0, rate0, jac, rate_tt, h)
            z1, f21, za1, _ = self._detunings(d, x1, t + h)
            if not self._within_trust(z0, z1, za0 if aux_w > 0 else None, za1, f20, f21):
                h *= 0.5
                continue
            zeta1 = _wrap(z1, k.zeta_per_fsr)
            if self._margin(zeta1, f21) <= 0.0:
                return self._to_event(d, t, h, x0, (rate0, jac, rate_tt))
            heat1 = self._heat_w(d, x1, t + h)
            linear = heat0 + heat_x * (x1 - x0) + heat_t * h
            weight = math.inf if h * jac > 50.0 else phi1(h * jac)  # runaway: reject
            err = r_th * abs(heat1 - linear) / tau * h * weight * 0.5 * k.zeta_per_k
            if err > _ZETA_TOLERANCE and h > 1e-12:
                h *= max(0.2, 0.9 * math.sqrt(_ZETA_TOLERANCE / err))
                continue
            self.delta_t_k = x1
            self.substeps += 1
            self._settled = jac < 0.0
            grow = 4.0 if err == 0.0 else min(4.0, 0.9 * math.sqrt(_ZETA_TOLERANCE / err))
            self._step_s = max(h * max(grow, 0.5), 1e-12)
            return h

    def _rate_scale(self, d: _Drive, t: float) -> float:
        """|d zeta / dt| of the drive (pump or aux detuning, or relative F^2 change), per s."""
        k, p = self.constants, self.params
        mount_hz = p.thermal.shift_hz_per_k * d.mount_c_per_s
        pump_m = d.pump_m + d.pump_m_per_s * t
        aux_m = d.aux_m + d.aux_m_per_s * t
        pump = k.zeta_per_hz * (C_M_PER_S / pump_m**2 * d.pump_m_per_s - mount_hz)
        aux = k.aux_zeta_per_hz * (C_M_PER_S / aux_m**2 * d.aux_m_per_s - mount_hz)
        chip_w = d.pump_chip_w + d.pump_chip_w_per_s * t
        power = abs(d.pump_chip_w_per_s) / max(chip_w, 1e-3 * k.threshold_w)
        return max(abs(pump), abs(aux), power)

    def _within_trust(self, z0: float, z1: float, za0: float | None, za1: float,
                      f20: float, f21: float) -> bool:
        """Small steps near the resonances (never jump one), larger far from them; a dark
        pump (F^2 = 0) or aux (za0 None) sets no limit."""
        k = self.constants
        if max(f20, f21) > 0.0:
            zeta = _wrap(z0, k.zeta_per_fsr)
            fold = math.pi**2 * max(f20, f21) / 8.0 + 5.0
            far = max(0.0, -10.0 - zeta, zeta - fold)
            if abs(z1 - z0) > _ZETA_TRUST + 0.2 * far:
                return False
        if za0 is not None:
            far_aux = max(0.0, abs(_wrap(za0, k.aux_zeta_per_fsr)) - 3.0)
            if abs(za1 - za0) > _ZETA_TRUST + 0.2 * far_aux:
                return False
        return abs(f21 - f20) <= 0.05 * max(f20, f21) + 0.05

    def _to_event(self, d: _Drive, t: float, h: float, x0: float,
                  lin: tuple[float, float, float]) -> float:
        """Bisect [0, h] for the first point where the state's margin is <= 0; go there."""
        k = self.constants
        lo, hi = 0.0, h
        for _ in range(60):
            if hi - lo <= 1e-9 * h + 1e-15:
                break
            mid = 0.5 * (lo + hi)
            z, f2, _, _ = self._detunings(d, exponential_step(x0, *lin, mid), t + mid)
            if self._margin(_wrap(z, k.zeta_per_fsr), f2) <= 0.0:
                hi = mid
            else:
                lo = mid
        self.delta_t_k = exponential_step(x0, *lin, hi)
        self.substeps += 1
        self._settled = False
        self._step_s = max(min(h, self.params.thermal.tau_s) * 1e-3, 1e-12)
        return hi

    def _settle_events(self, d: _Drive, t: float) -> None:
        """Apply every transition whose margin is already <= 0 at (Delta T, t)."""
        k = self.constants
        for _ in range(4 * len(self.solitons) + 8):
            z, f2, _, _ = self._detunings(d, self.delta_t_k, t)
            zeta = _wrap(z, k.zeta_per_fsr)
            if not self.solitons and fold_detunings(f2) is None:
                self.branch = Branch.UPPER if zeta < _SQRT3 else Branch.LOWER
                return
            if self._margin(zeta, f2) > 0.0:
                return
            self._transition(zeta, f2, d.pump_m + d.pump_m_per_s * t)

    def _draw_sync_noise(self) -> None:
        """Fresh MI fluctuations once per sync (readers within a sync see the same light)."""
        if not self.solitons and self.branch is Branch.UPPER and self.regime is Regime.MI:
            self._mi_noise = float(self._display_rng.standard_normal())
            self._mi_seed = int(self._display_rng.integers(2**62))

    # --- observables --------------------------------------------------------------------------

    def _now(self) -> tuple[float, float]:
        """(wrapped zeta_eff, F^2) at the present inputs."""
        z, f2, _, _ = self._detunings(self._drive(), self.delta_t_k, 0.0)
        return _wrap(z, self.constants.zeta_per_fsr), f2

    @property
    def zeta_eff(self) -> float:
        """Effective pump detuning from the nearest (hot) resonance, units of kappa / 2."""
        return self._now()[0]

    @property
    def f2(self) -> float:
        """Normalised pump power F^2 on the chip."""
        return self._now()[1]

    @property
    def soliton_number(self) -> int:
        return len(self.solitons)

    @property
    def regime(self) -> Regime:
        return self._regime_at(*self._now())

    def _regime_at(self, zeta: float, f2: float) -> Regime:
        if self.solitons:
            return Regime.SOLITON
        if self.branch is Branch.LOWER:
            return Regime.CW_LOWER
        y_upper = cw_branch_powers(zeta, f2)[1]
        if y_upper <= 1.0:
            return Regime.CW_LOWER
        return Regime.MI if self._is_chaotic(zeta, y_upper) else Regime.CW_UPPER

    @property
    def intracavity_power(self) -> float:
        """<|psi|^2> now, normalised (MI: this sync's fluctuating value)."""
        return self._intracavity_at(*self._now())

    def _intracavity_at(self, zeta: float, f2: float) -> float:
        y = self._mean_power(zeta, f2)
        if self._regime_at(zeta, f2) is Regime.MI:
            y *= max(0.0, 1.0 + self.params.mi_power_noise_rms * self._mi_noise)
        return y

    @property
    def pump_heat_w(self) -> float:
        zeta, f2 = self._now()
        return self.constants.heat_per_y_w * self._mean_power(zeta, f2)

    @property
    def heat_load_w(self) -> float:
        """Optical power the chip absorbs (pump and aux): the TEC mount's heat load."""
        return self._heat_w(self._drive(), self.delta_t_k, 0.0)

    @property
    def aux_heat_w(self) -> float:
        return self.heat_load_w - self.pump_heat_w

    def through_port_power_mw(self) -> float:
        """Total power in the through-port fibre (pump line, comb, background), cheaply."""
        k = self.constants
        zeta, f2 = self._now()
        chip_in_w = f2 * k.threshold_w
        dissipated_w = k.heat_per_y_w / self.params.thermal.absorbed_fraction * \
            self._intracavity_at(zeta, f2)
        return (max(0.0, chip_in_w - dissipated_w) * 1e3 * k.output_transmission
                + self._passing_mw() * k.input_transmission * k.output_transmission)

    def _passing_mw(self) -> float:
        """Pump-side power that is not the pump line (ASE, other lines), in the input fibre."""
        if self.pump.line_power_mw.size > 1 or self.pump.background_frequency_hz.size > 1:
            return self.pump.total_power_mw - _strongest_line(self.pump)[1]
        return 0.0

    def monitor_power_mw(self) -> float:
        """What the power meter reads: the through port after the PBS and the monitor tap."""
        return self.through_port_power_mw() * self.constants.monitor_transmission

    def monitor_light(self) -> Light:
        """The light at the power meter and OSA."""
        return self.through_port().scaled(self.constants.monitor_transmission)

    def through_port(self, resolve_comb: bool = True) -> Light:
        """Light in the through-port fibre: pump line, comb lines at the FSR, backgrounds.

        Line powers: comb line mu out-coupled as 4 eta^2 P_th |psi_mu|^2, the pump line by energy
        balance (input minus dissipated minus comb), then the output facet. The aux light runs
        the other way and is not here. ``resolve_comb=False`` lumps the comb into the pump line
        (same total, no LLE spectrum to compute: for broadband detectors polled often).
        """
        k = self.constants
        pump_hz, _ = _strongest_line(self.pump)
        if pump_hz <= 0.0:
            return self._passing_light(Light.dark())
        if not resolve_comb:
            chip_out_mw = self.through_port_power_mw() / k.output_transmission - \
                self._passing_mw() * k.input_transmission
            pump_hz_now = C_M_PER_S / self._drive().pump_m
            return self._passing_light(Light.line(pump_hz_now,
                                                  chip_out_mw * k.output_transmission))
        zeta, f2 = self._now()
        y = self._intracavity_at(zeta, f2)
        chip_in_w = f2 * k.threshold_w
        dissipated_w = k.heat_per_y_w / self.params.thermal.absorbed_fraction * y
        mu, comb_y, background = self._comb(zeta, f2, y)
        comb_w = k.comb_per_y_w * comb_y
        out_mw = 1e3 * k.output_transmission
        pump_hz_now = C_M_PER_S / self._drive().pump_m
        bg_f, bg_w = np.zeros(0), np.zeros(0)
        if background is not None:
            bg_f, bg_w = pump_hz_now + background[0] * k.fsr_hz, k.comb_per_y_w * background[1]
        bg_total_w = float(np.trapezoid(bg_w, bg_f)) if bg_f.size > 1 else 0.0
        pump_line_w = max(0.0, chip_in_w - dissipated_w - float(comb_w.sum()) - bg_total_w)
        freqs = np.concatenate([[pump_hz_now], pump_hz_now + mu * k.fsr_hz])
        powers_mw = np.concatenate([[pump_line_w], comb_w]) * out_mw
        return self._passing_light(Light(freqs, powers_mw, bg_f, bg_w * out_mw))

    def _passing_light(self, comb: Light) -> Light:
        """Add what of the pump Light passes the chip untouched (ASE, other lines)."""
        k = self.constants
        factor = k.input_transmission * k.output_transmission
        others = self.pump.line_power_mw.copy()
        if others.size:
            others[int(np.argmax(others))] = 0.0
        keep = others > 0
        lines_f = np.concatenate([comb.line_frequency_hz, self.pump.line_frequency_hz[keep]])
        lines_p = np.concatenate([comb.line_power_mw, others[keep] * factor])
        bg_f, bg_p = _sum_backgrounds(
            (comb.background_frequency_hz, comb.background_mw_per_hz),
            (self.pump.background_frequency_hz, self.pump.background_mw_per_hz * factor))
        order = np.argsort(lines_f)
        return Light(lines_f[order], lines_p[order], bg_f, bg_p)

    def _comb(self, zeta: float, f2: float, y: float
              ) -> tuple[FloatArray, FloatArray, tuple[FloatArray, FloatArray] | None]:
        """Mode numbers != 0, their |psi_mu|^2, and an optional background: (mode number
        grid, |psi|^2 per Hz), all normalised (through_port converts to watts)."""
        if self.solitons:
            mu, power = self._soliton_lines(zeta, f2)
            return mu, power, None
        if self._regime_at(zeta, f2) is Regime.MI:
            return self._mi_lines(zeta, f2, y)
        empty = np.zeros(0)
        return empty, empty, None

    def _soliton_lines(self, zeta: float, f2: float) -> tuple[FloatArray, FloatArray]:
        """|psi_mu|^2 (mu != 0) of the solitons: |pulse_mu|^2 |sum_k exp(-i mu theta_k)|^2.

        The single-pulse spectrum comes from lle.comb_line_powers on the device ring at the two
        integer detunings around zeta (F^2 quantised to 1 %), each stretched in mu by
        sqrt(zeta_grid / zeta) (the sech width law) and interpolated linearly: within 0.5 % of
        Newton at zeta itself over 20 dB, 1.2 % over 40 dB. Below the Hopf edge (breathing) the
        edge spectrum is used, stretched to zeta.
        """
        cal, n = self.calibration, self.params.n_modes
        low = math.ceil(cal.zeta_hopf(f2))
        high = max(low, math.floor(cal.zeta_fold(f2) - 0.5))
        clamped = min(max(zeta, low), high)
        grid = min(math.floor(clamped), high - 1) if high > low else low
        weight = clamped - grid if high > low else 0.0
        f_q = math.exp(round(math.log(max(f2, 1e-6)) / 0.01) * 0.005)
        mu = np.arange(-(n // 2), n // 2, dtype=float)
        pulse = np.zeros(n)
        for g, w in ((grid, 1.0 - weight), (grid + 1, weight)):
            if w > 0.0:
                log_power = self._pulse_log_spectrum(g, f_q)
                pulse += w * np.exp(np.interp(mu * math.sqrt(g / max(zeta, 1.0)), mu, log_power))
        positions = np.array([s.position_rad for s in self.solitons])
        interference = np.abs(np.exp(-1j * np.outer(positions, mu)).sum(axis=0)) ** 2
        comb = mu != 0
        return mu[comb], (pulse * interference)[comb]

    def _pulse_log_spectrum(self, zeta: int, f: float) -> FloatArray:
        """ln |pulse_mu|^2 at an integer zeta, stepping into the range if Newton misses there."""
        d2, n = self.constants.d2, self.params.n_modes
        for attempt in range(3):
            try:
                return _pulse_log_spectrum(float(zeta + attempt), f, d2, n)
            except lle.SolitonNotFoundError:
                continue
        return _pulse_log_spectrum(float(zeta + 3), f, d2, n)

    def _mi_lines(self, zeta: float, f2: float, y: float
                  ) -> tuple[FloatArray, FloatArray, tuple[FloatArray, FloatArray]]:
        """Chaotic comb: exponential envelope, speckle-like line powers, smooth background."""
        p, k = self.params, self.constants
        y_upper = cw_branch_powers(zeta, f2)[1]
        width = p.mi_envelope_periods * math.sqrt(max(2.0 * y_upper - zeta, 1.0) / k.d2)
        half = p.n_modes // 2
        mu = np.arange(-half, half, dtype=float)
        mu = mu[mu != 0]
        envelope = np.exp(-np.abs(mu) / width)
        envelope /= envelope.sum()
        comb_y = p.mi_comb_fraction * y
        speckle = np.random.default_rng(self._mi_seed).exponential(1.0, mu.size)
        lines = (1.0 - p.mi_background_fraction) * comb_y * envelope * speckle
        grid = np.linspace(-half, half, 257)
        density = np.exp(-np.abs(grid) / width)
        density *= p.mi_background_fraction * comb_y / (np.trapezoid(density, grid) * k.fsr_hz)
        return mu, lines, (grid, density)


@functools.lru_cache(maxsize=128)
def _pulse_log_spectrum(zeta: float, f: float, d2: float, n_modes: int) -> FloatArray:
    """ln |psi_mu|^2 of one stationary soliton, mu = -n/2 ... n/2 - 1 (Newton, ~ 0.3 s once).

    The pump mode holds the CW background too: its neighbour's value stands in for it, so that
    the spectrum can be interpolated in mu.
    """
    spectrum = lle.comb_line_powers(lle.LLEParams(zeta=zeta, f=f, d2=d2, n_modes=n_modes), [0.0])
    power = spectrum.line_power.copy()
    centre = n_modes // 2
    power[centre] = power[centre + 1]
    log_power = np.log(np.maximum(power, 1e-300))
    log_power.setflags(write=False)
    return log_power


def _sum_backgrounds(*parts: tuple[FloatArray, FloatArray]) -> tuple[FloatArray, FloatArray]:
    """Sum of linearly interpolated PSDs (each zero outside its samples) on the union grid."""
    present = [(f, p) for f, p in parts if f.size > 1]
    if not present:
        return np.zeros(0), np.zeros(0)
    if len(present) == 1:
        return present[0]
    grid = np.unique(np.concatenate([f for f, _ in present]))
    total = np.zeros_like(grid)
    for f, p in present:
        total += np.interp(grid, f, p, left=0.0, right=0.0)
    return grid, total
