"""Normalised Lugiato-Lefever equation (LLE): stationary solitons, comb spectra, a fast integrator.

Normalisation (design/physics.md, section 2)
--------------------------------------------
One mode family of the ring, in the frame rotating with the pump and moving at the FSR:

    d psi / d tau = -(1 + i zeta) psi + i |psi|^2 psi + i d2 d^2 psi / d theta^2 + F

* tau = kappa t / 2 (one unit = two photon lifetimes); theta in [-pi, pi) is the angle on the ring.
* psi = sqrt(2 g0 / kappa) A, so |psi|^2 is intracavity power in units of the Kerr-threshold level.
* zeta = 2 (omega0 - omega_pump) / kappa, positive red of resonance; d2 = D2 / kappa, > 0 anomalous.
* F^2 = 8 g0 kappa_ex P_in / (kappa^3 hbar omega0): the pump; F^2 = 1 is the MI threshold.
* Comb line mu (mu = 0 is the pump line) has amplitude psi_mu, with
  psi(theta) = sum_mu psi_mu e^{i mu theta}; the line powers |psi_mu|^2 sum to the mean
  intracavity power <|psi|^2> (Parseval).

Fields are arrays sampled on `theta_grid_rad(n_modes)` (n_modes points, one per comb line), with a
single soliton centred at theta = 0. Spectra are ordered by mode number, mu = -n/2 ... n/2 - 1.

What the module provides
------------------------
* CW (homogeneous) states: the roots Y = |psi|^2 of F^2 = Y ((zeta - Y)^2 + 1); the lowest branch is
  the soliton's background.
* The stationary single soliton by Newton iteration on the stationary LLE, seeded with
  psi_cw + sqrt(2 zeta) e^{i phi} sech(theta sqrt(zeta / d2)), cos phi = sqrt(8 zeta) / (pi F).
  Newton works on the even part (psi(theta) = psi(-theta)) with a dense spectral Laplacian: even
  symmetry removes the translation mode (so the Jacobian is regular) and halves the unknowns.
  Results are cached on rounded parameters.
* Linear stability of that soliton: leading eigenvalue of the even-perturbation Jacobian. Breathing
  (Hopf) is an even mode, so this finds where the soliton stops being stationary.
* Comb line powers and fields for N solitons at given angles: CW background plus shifted copies of
  the single-soliton pulse. Exact for well separated solitons (overlap ~ exp(-b * separation)).
  N >= 2 interferes and fringes the sech^2 envelope; N = 1 is smooth.
* Step heights: <|psi|^2> = P_cw + N E1(zeta), E1 from the Newton profile; the analytic
  E1 = (2/pi) sqrt(zeta d2) and zeta_max = pi^2 F^2 / 8 for comparison.
* The range [zeta_low, zeta_high] of the stable stationary soliton, by natural-parameter
  continuation: the upper edge is the fold where the Newton solution disappears (it agrees with
  pi^2 F^2 / 8 to ~ 0.1 %), the lower edge the Hopf point where the soliton starts to breathe
  (zeta ~ 6.0, 9.3, 11.3, 12.3, 13.3 at F^2 = 10, 20, 30, 36, 43) or, if none, a fold.
* A table (zeta, P_cw, E1) over that range for the reduced real-time model to interpolate.
* `integrate_lle`: fourth-order Runge-Kutta in the interaction picture (RK4IP), loss, detuning and
  dispersion exact in Fourier space. At 512 modes and equal error it is 6 to 9x (relative error
  1e-3) and 40 to 70x (1e-4) faster than a first-order numpy split-step (bench/bench_lle.py).

Limits
------
* One mode family, no thermal shift, no Raman, self-steepening, higher-order dispersion or avoided
  mode crossings: the envelope is a clean sech^2 with 3-dB full width 1.122 b, b = sqrt(zeta / d2).
* Stationary states only. Breathers, chaos, MI combs, switching and the thermal triangle need
  `integrate_lle` (~ 7e3 steps/s at 512 modes with dt ~ 2e-3: far too slow for thermal times) or
  the reduced model. Newton also finds unstable states: `soliton_growth_rate` tells them apart.
* Multi-soliton fields are superpositions: no soliton-soliton interaction, bound states or
  collisions; separations must be many pulse widths sqrt(d2 / zeta).
* Resolution: the ring holds n_modes lines, and accuracy is set by n_modes / b. E1 is 1 % low
  at n_modes / b = 8, 0.1 % at 10, 1e-4 at 12 (edge lines 40, 54, 68 dB down). The device ring
  (d2 ~ 0.0035, 1024 modes) has n_modes / b = 17 at zeta = 12 and 9 at zeta_max ~ 44. The Hopf
  eigenvalue is more demanding: n_modes / b > ~ 20 at zeta_low, or the edge moves by ~ 0.2.
* Cost: Newton is a dense solve on n_modes + 2 real unknowns (~ 0.2 s at 1024 modes), stability a
  dense eigenproblem (~ 0.5 s at 1024); the existence range takes ~ 1 s at 256 modes, ~ 30 s at
  1024. P_cw and the range do not depend on d2 and E1 scales as sqrt(d2), up to finite-ring terms
  ~ exp(-pi b): so tabulate on a coarse ring, d2' = d2 (n / n')^2 with n' modes (F^2 = 36:
  n' = 256, d2' = 0.08 reproduces the 1024-mode device range to 0.02), and scale E1 by
  sqrt(d2 / d2').
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

ComplexArray = NDArray[np.complex128]
FloatArray = NDArray[np.float64]
#: What ends the stable soliton range: a Hopf bifurcation (breathing) or a fold (it disappears).
EdgeKind = Literal["hopf", "fold"]

#: Normalised dispersion of the device, D2 / kappa with D2/2pi ~ 0.4 MHz and kappa/2pi ~ 113 MHz:
#: fitted (assumed) so that a single soliton at zeta ~ 12 spans 3.2 THz at 49 GHz FSR (b ~ 58).
DEVICE_D2 = 0.4 / 113.0
#: Pump amplitude of the device, F^2 = 36 (physics.md: 30 to 43 from 3.5 W); assumed. The stable
#: single soliton then spans 12.3 < zeta < 44.4.
DEVICE_F = 6.0
#: Lines on the simulated ring: enough for the broadest soliton below zeta_max at DEVICE_D2.
DEVICE_N_MODES = 1024

_NEWTON_MAX_ITER = 30
_NEWTON_TOL = 1e-10
_SIG_DIGITS = 10


class SolitonNotFoundError(RuntimeError):
    """Newton iteration found no stationary soliton for these parameters."""


@dataclass(frozen=True)
class LLEParams:
    """Parameters of the normalised LLE: detuning zeta, pump F, dispersion d2, number of modes."""

    zeta: float
    f: float = DEVICE_F
    d2: float = DEVICE_D2
    n_modes: int = DEVICE_N_MODES

    def __post_init__(self) -> None:
        if self.n_modes < 16 or self.n_modes % 2:
            raise ValueError(f"n_modes must be even and >= 16, got {self.n_modes}")
        if self.d2 <= 0.0:
            raise ValueError(f"d2 must be > 0 (anomalous dispersion), got {self.d2}")
        if self.f <= 0.0:
            raise ValueError(f"pump amplitude f must be > 0, got {self.f}")


@dataclass(frozen=True)
class CombSpectrum:
    """Comb line powers |psi_mu|^2 (normalised units) against mode number mu (0 = pump line)."""

    mode_number: NDArray[np.int64]
    line_power: FloatArray


@dataclass(frozen=True)
class SolitonRange:
    """Detuning range of the stable stationary single soliton, and what ends it at the low side."""

    zeta_low: float
    zeta_high: float
    low_edge: EdgeKind


@dataclass(frozen=True)
class SolitonStepTable:
    """Soliton steps over the existence range: intracavity power = p_cw + N * e1 at each zeta."""

    zeta: FloatArray
    p_cw: FloatArray
    e1: FloatArray


# --- grids ------------------------------------------------------------------------------------


def theta_grid_rad(n_modes: int) -> FloatArray:
    """Angles round the ring at which fields are sampled: -pi + 2 pi j / n_modes."""
    return -math.pi + 2.0 * math.pi * np.arange(n_modes) / n_modes


def _mode_numbers_fft_order(n_modes: int) -> FloatArray:
    return np.fft.fftfreq(n_modes, 1.0 / n_modes).astype(np.float64)


# --- homogeneous (CW) states --------------------------------------------------------------------


def cw_powers(zeta: float, f: float) -> tuple[float, ...]:
    """CW intracavity powers Y = |psi|^2 solving F^2 = Y ((zeta - Y)^2 + 1), ascending (1 or 3)."""
    roots = np.roots([1.0, -2.0 * zeta, zeta * zeta + 1.0, -f * f])
    real = sorted(float(r.real) for r in roots if abs(r.imag) <= 1e-9 * max(1.0, abs(r)))
    return tuple(real)


def cw_field(zeta: float, f: float, power: float) -> complex:
    """The CW field psi = F / (1 + i (zeta - Y)) on the branch with intracavity power Y."""
    return f / complex(1.0, zeta - power)


def lower_branch_power(zeta: float, f: float) -> float:
    """Intracavity power of the lower CW branch (the soliton background); ValueError if none.

    The lower branch is the smallest root below the fold Y- = (2 zeta - sqrt(zeta^2 - 3)) / 3, so it
    exists only in the bistable or red-detuned region, zeta > sqrt(3).
    """
    if zeta <= math.sqrt(3.0):
        raise ValueError(f"no lower CW branch at zeta = {zeta} <= sqrt(3)")
    y_fold = (2.0 * zeta - math.sqrt(zeta * zeta - 3.0)) / 3.0
    y_low = cw_powers(zeta, f)[0]
    if y_low > y_fold:
        raise ValueError(f"no lower CW branch at zeta = {zeta}, F = {f}: only the upper one")
    return y_low


# --- analytic soliton -----------------------------------------------------------------------


def analytic_soliton_energy(zeta: float, d2: float) -> float:
    """Mean intracavity power added by one sech soliton, E1 = (2/pi) sqrt(zeta d2)."""
    return 2.0 / math.pi * math.sqrt(zeta * d2)


def analytic_zeta_max(f: float) -> float:
    """Upper detuning limit of soliton existence from perturbation theory, pi^2 F^2 / 8."""
    return math.pi**2 * f * f / 8.0


def spectral_width_lines(zeta: float, d2: float) -> float:
    """The sech^2 envelope parameter b = sqrt(zeta / d2): line power ~ sech^2(pi mu / (2 b))."""
    return math.sqrt(zeta / d2)


def sech_ansatz(params: LLEParams) -> ComplexArray:
    """Lower CW background plus sqrt(2 zeta) e^{i phi} sech(theta sqrt(zeta / d2)) at theta = 0."""
    p = params
    background = cw_field(p.zeta, p.f, lower_branch_power(p.zeta, p.f))
    phase = math.acos(min(1.0, math.sqrt(8.0 * p.zeta) / (math.pi * p.f)))
    theta = theta_grid_rad(p.n_modes)
    pulse = math.sqrt(2.0 * p.zeta) / np.cosh(theta * spectral_width_lines(p.zeta, p.d2))
    return (background + np.exp(1j * phase) * pulse).astype(np.complex128)


# --- Newton on the even stationary LLE ------------------------------------------------------------
# Even fields live on the half ring theta_j = 2 pi j / n, j = 0 ... n/2 ("half"), soliton at j = 0.


def _even_to_full(half: ComplexArray, n_modes: int) -> ComplexArray:
    """Half-ring samples -> field on theta_grid_rad (soliton at index n/2)."""
    full_fft_order = np.concatenate([half, half[n_modes // 2 - 1 : 0 : -1]])
    return np.fft.fftshift(full_fft_order)


def _full_to_even(field: ComplexArray) -> ComplexArray:
    n_modes = field.size
    return np.fft.ifftshift(field)[: n_modes // 2 + 1].copy()


@functools.lru_cache(maxsize=8)
def _even_laplacian(n_modes: int) -> FloatArray:
    """d^2/dtheta^2 acting on even fields, as a dense (n/2+1) x (n/2+1) matrix on the half ring."""
    column = np.fft.ifft(-(_mode_numbers_fft_order(n_modes) ** 2)).real  # circulant kernel
    m = n_modes // 2 + 1
    j = np.arange(m)[:, None]
    k = np.arange(m)[None, :]
    lap = column[(j - k) % n_modes] + column[(j + k) % n_modes]
    lap[:, 0] = column[j[:, 0]]
    lap[:, -1] = column[(j[:, 0] - n_modes // 2) % n_modes]
    lap.setflags(write=False)
    return lap


def _stationary_residual(half: ComplexArray, p: LLEParams) -> ComplexArray:
    lap = _even_laplacian(p.n_modes)
    power = half.real**2 + half.imag**2
    return -(1.0 + 1j * p.zeta) * half + 1j * power * half + 1j * p.d2 * (lap @ half) + p.f


def _jacobian(half: ComplexArray, p: LLEParams) -> FloatArray:
    """Real Jacobian of the LLE right-hand side in (Re psi, Im psi) on the half ring."""
    m = half.size
    square = half * half
    kerr = np.diag(2.0 * (half.real**2 + half.imag**2) - p.zeta)
    a_imag = p.d2 * _even_laplacian(p.n_modes) + kerr
    b_re, b_im = -square.imag, square.real
    jac = np.empty((2 * m, 2 * m))
    jac[:m, :m] = np.diag(b_re - 1.0)
    jac[:m, m:] = np.diag(b_im) - a_imag
    jac[m:, :m] = a_imag + np.diag(b_im)
    jac[m:, m:] = np.diag(-1.0 - b_re)
    return jac


def _newton_even(seed: ComplexArray, p: LLEParams) -> ComplexArray | None:
    """Stationary even field near seed, or None if Newton does not converge."""
    half = seed.copy()
    m = half.size
    tol = _NEWTON_TOL * (1.0 + p.zeta) ** 1.5
    for _ in range(_NEWTON_MAX_ITER):
        residual = _stationary_residual(half, p)
        if not np.all(np.isfinite(residual)):
            return None
        if np.max(np.abs(residual)) < tol:
            return half
        rhs = np.concatenate([residual.real, residual.imag])
        try:
            step = np.linalg.solve(_jacobian(half, p), rhs)
        except np.linalg.LinAlgError:
            return None
        half = half - (step[:m] + 1j * step[m:])
    return None


def _is_soliton(half: ComplexArray, p: LLEParams) -> bool:
    """True if the field has a pulse above the CW of at least half the sech peak power 2 zeta."""
    background = cw_field(p.zeta, p.f, lower_branch_power(p.zeta, p.f))
    return bool(np.max(np.abs(half - background) ** 2) > p.zeta)


def _growth_rate(half: ComplexArray, p: LLEParams) -> float:
    return float(np.max(np.linalg.eigvals(_jacobian(half, p)).real))


def _rounded(x: float) -> float:
    return float(f"{x:.{_SIG_DIGITS}g}")


def _rounded_params(p: LLEParams) -> LLEParams:
    return replace(p, zeta=_rounded(p.zeta), f=_rounded(p.f), d2=_rounded(p.d2))


def stationary_soliton(params: LLEParams) -> ComplexArray:
    """Stationary single soliton on theta_grid_rad, centred at theta = 0 (read-only, cached).

    Raises SolitonNotFoundError if Newton from the sech ansatz fails or ends on a pulse-free state.
    """
    return _stationary_soliton_cached(_rounded_params(params))


@functools.lru_cache(maxsize=128)
def _stationary_soliton_cached(p: LLEParams) -> ComplexArray:
    try:
        seed = _full_to_even(sech_ansatz(p))
    except ValueError as err:  # no lower CW branch
        raise SolitonNotFoundError(str(err)) from err
    half = _newton_even(seed, p)
    if half is None or not _is_soliton(half, p):
        raise SolitonNotFoundError(f"no stationary soliton found for {p}")
    field = _even_to_full(half, p.n_modes)
    field.setflags(write=False)
    return field


def soliton_growth_rate(params: LLEParams) -> float:
    """Largest real part of the soliton's even-perturbation eigenvalues; < 0 means stable.

    A positive value with a complex eigenvalue is the breathing (Hopf) instability.
    """
    half = _full_to_even(np.asarray(stationary_soliton(params)))
    return _growth_rate(half, _rounded_params(params))


# --- fields, spectra and step heights -------------------------------------------------------------


def mean_intracavity_power(field: ComplexArray) -> float:
    """<|psi|^2> over the ring, normalised units (what the through-port transmission sees)."""
    return float(np.mean(field.real**2 + field.imag**2))


def soliton_energy(params: LLEParams) -> float:
    """E1: mean intracavity power a single stationary soliton adds to the lower CW background."""
    p_cw = lower_branch_power(params.zeta, params.f)
    return mean_intracavity_power(stationary_soliton(params)) - p_cw


def _multi_soliton_coefficients(params: LLEParams, positions_rad: Sequence[float]) -> ComplexArray:
    """Fourier coefficients (FFT order, unnormalised) of background + pulses at positions_rad."""
    soliton = stationary_soliton(params)
    background = cw_field(params.zeta, params.f, lower_branch_power(params.zeta, params.f))
    pulse_coeff = np.fft.fft(soliton - background)
    mu = _mode_numbers_fft_order(params.n_modes)
    shifts = np.exp(-1j * np.outer(np.asarray(positions_rad, dtype=float), mu)).sum(axis=0)
    coeff = pulse_coeff * shifts
    coeff[0] += background * params.n_modes
    return coeff


def multi_soliton_field(params: LLEParams, positions_rad: Sequence[float]) -> ComplexArray:
    """Field of N solitons centred at positions_rad on the lower CW background (superposition)."""
    return np.fft.ifft(_multi_soliton_coefficients(params, positions_rad))


def comb_line_powers(params: LLEParams, positions_rad: Sequence[float]) -> CombSpectrum:
    """Line powers |psi_mu|^2 of N solitons at positions_rad; pump line mu = 0 includes the CW."""
    coeff = _multi_soliton_coefficients(params, positions_rad) / params.n_modes
    mu = np.fft.fftshift(_mode_numbers_fft_order(params.n_modes)).astype(np.int64)
    power = np.fft.fftshift(coeff.real**2 + coeff.imag**2)
    return CombSpectrum(mode_number=mu, line_power=power)


# --- existence range and step table by continuation ---------------------------------------------


@dataclass(frozen=True)
class _Branch:
    """Stable stationary solitons traced in zeta (ascending), and how the low side ended."""

    zeta: tuple[float, ...]
    half: tuple[ComplexArray, ...]
    low_edge: EdgeKind


def _stable_soliton(seed: ComplexArray, p: LLEParams) -> ComplexArray | EdgeKind:
    """The stable soliton Newton reaches from seed, or why there is none ("hopf" or "fold")."""
    try:
        lower_branch_power(p.zeta, p.f)
    except ValueError:
        return "fold"
    half = _newton_even(seed, p)
    if half is None or not _is_soliton(half, p):
        return "fold"
    if _growth_rate(half, p) >= 0.0:
        return "hopf"
    return half


def _tangent_seed(half: ComplexArray, p: LLEParams, zeta_to: float) -> ComplexArray:
    """First-order prediction of the solution at zeta_to from the solution half at p.zeta.

    d psi / d zeta = J^-1 (i psi), as d(rhs) / d zeta = -i psi; J is regular for a stable soliton.
    """
    m = half.size
    rhs = np.concatenate([-half.imag, half.real])  # i psi in (Re, Im) form
    try:
        slope = np.linalg.solve(_jacobian(half, p), rhs)
    except np.linalg.LinAlgError:
        return half
    return half + (zeta_to - p.zeta) * (slope[:m] + 1j * slope[m:])


def _start_point(f: float, d2: float, n_modes: int) -> tuple[float, ComplexArray]:
    """A detuning with a stable soliton, tried at fractions of the analytic zeta_max."""
    for fraction in (0.5, 0.7, 0.85, 0.35):
        p = LLEParams(zeta=fraction * analytic_zeta_max(f), f=f, d2=d2, n_modes=n_modes)
        try:
            seed = _full_to_even(sech_ansatz(p))
        except ValueError:
            continue
        found = _stable_soliton(seed, p)
        if not isinstance(found, str):
            return p.zeta, found
    raise SolitonNotFoundError(f"no stable soliton found for F = {f}, d2 = {d2}")


def _continue(
    zeta0: float, half0: ComplexArray, base: LLEParams, direction: float, zeta_tol: float
) -> tuple[list[tuple[float, ComplexArray]], EdgeKind]:
    """Step zeta from zeta0 until the stable soliton is lost; halve the step on each failure."""
    step = analytic_zeta_max(base.f) / 16.0
    zeta, half = zeta0, half0
    traced: list[tuple[float, ComplexArray]] = []
    edge: EdgeKind = "fold"
    while step > zeta_tol:
        candidate = zeta + direction * step
        seed = _tangent_seed(half, replace(base, zeta=zeta), candidate)
        found = _stable_soliton(seed, replace(base, zeta=candidate))
        if isinstance(found, str):
            step /= 2.0
            edge = found
        else:
            zeta, half = candidate, found
            traced.append((zeta, half))
    return traced, edge


@functools.lru_cache(maxsize=16)
def _trace_branch(f: float, d2: float, n_modes: int, zeta_tol: float) -> _Branch:
    zeta0, half0 = _start_point(f, d2, n_modes)
    base = LLEParams(zeta=zeta0, f=f, d2=d2, n_modes=n_modes)
    up, _ = _continue(zeta0, half0, base, +1.0, zeta_tol)
    down, low_edge = _continue(zeta0, half0, base, -1.0, zeta_tol)
    points = [*reversed(down), (zeta0, half0), *up]
    for _, half in points:
        half.setflags(write=False)
    return _Branch(
        zeta=tuple(z for z, _ in points), half=tuple(h for _, h in points), low_edge=low_edge
    )


def soliton_existence_range(
    f: float = DEVICE_F,
    d2: float = DEVICE_D2,
    n_modes: int = DEVICE_N_MODES,
    zeta_tol: float = 0.01,
) -> SolitonRange:
    """Range of zeta where a stable stationary single soliton exists, to within zeta_tol (cached).

    Continuation starts at a stable point below pi^2 F^2 / 8 and steps zeta up to the fold
    (zeta_high) and down to the Hopf point or fold (zeta_low), halving the step at each failure.
    Cost: ~ 60 Newton solves and eigenproblems (~ 1 s at 256 modes, ~ 30 s at 1024); the Hopf
    edge needs n_modes > ~ 20 sqrt(zeta_low / d2) (see the module notes for a coarse ring).
    """
    branch = _trace_branch(_rounded(f), _rounded(d2), n_modes, _rounded(zeta_tol))
    return SolitonRange(
        zeta_low=branch.zeta[0], zeta_high=branch.zeta[-1], low_edge=branch.low_edge
    )


def tabulate_soliton_steps(
    f: float = DEVICE_F,
    d2: float = DEVICE_D2,
    n_modes: int = DEVICE_N_MODES,
    n_points: int = 48,
    zeta_tol: float = 0.01,
) -> SolitonStepTable:
    """P_cw(zeta) and E1(zeta) on n_points equally spaced zeta over the existence range (cached).

    Each point is a Newton solve seeded by the tangent from the nearest point on the traced branch.
    """
    return _tabulate_cached(_rounded(f), _rounded(d2), n_modes, n_points, _rounded(zeta_tol))


@functools.lru_cache(maxsize=16)
def _tabulate_cached(
    f: float, d2: float, n_modes: int, n_points: int, zeta_tol: float
) -> SolitonStepTable:
    branch = _trace_branch(f, d2, n_modes, zeta_tol)
    traced_zeta = np.asarray(branch.zeta)
    zeta = np.linspace(traced_zeta[0], traced_zeta[-1], n_points)
    p_cw = np.array([lower_branch_power(z, f) for z in zeta])
    e1 = np.empty(n_points)
    for i, z in enumerate(zeta):
        p = LLEParams(zeta=float(z), f=f, d2=d2, n_modes=n_modes)
        nearest = int(np.argmin(np.abs(traced_zeta - z)))
        seed = _tangent_seed(branch.half[nearest], replace(p, zeta=branch.zeta[nearest]), p.zeta)
        half = _newton_even(seed, p)
        if half is None:
            raise SolitonNotFoundError(f"lost the soliton branch at zeta = {z}")
        e1[i] = mean_intracavity_power(_even_to_full(half, n_modes)) - p_cw[i]
    for array in (zeta, p_cw, e1):
        array.setflags(write=False)
    return SolitonStepTable(zeta=zeta, p_cw=p_cw, e1=e1)


# --- time integration -----------------------------------------------------------------------


def max_stable_step(params: LLEParams) -> float:
    """Largest RK4IP step kept by integrate_lle: pi / (d2 (n_modes / 2)^2).

    Beyond ~ twice this the edge modes' linear phase wraps by 2 pi per step, and a spurious
    four-wave-mixing resonance of the discrete map grows (seen with three solitons at 256 modes).
    """
    return math.pi / (params.d2 * (params.n_modes / 2) ** 2)


def integrate_lle(psi0: ComplexArray, params: LLEParams, tau_end: float, dt: float) -> ComplexArray:
    """Integrate the LLE from psi0 (on theta_grid_rad) to tau_end by RK4IP.

    Fourth order; loss, detuning and dispersion are exact, so the error is set by the Kerr phase
    per step, peak |psi|^2 dt ~ 2 zeta dt: at zeta = 20 a stationary soliton is kept to 1e-5 of
    its peak with dt = 2.5e-3, to 2e-3 with dt = 1e-2. The step used is tau_end / n_steps, the
    largest not above dt nor max_stable_step(params).
    """
    if psi0.shape != (params.n_modes,):
        raise ValueError(f"psi0 must have shape ({params.n_modes},), got {psi0.shape}")
    n_steps = max(1, math.ceil(tau_end / min(dt, max_stable_step(params)) - 1e-9))
    h = tau_end / n_steps
    mu = _mode_numbers_fft_order(params.n_modes)
    half_step = np.exp((-(1.0 + 1j * params.zeta) - 1j * params.d2 * mu**2) * (h / 2.0))
    pump_kick = h * params.n_modes * params.f  # h * FFT of the constant pump, mode 0 only
    coeff = np.fft.fft(psi0.astype(np.complex128))
    coeff_ip = np.empty_like(coeff)  # coefficients in the interaction picture at mid-step
    stage = np.empty_like(coeff)
    k = np.empty_like(coeff)
    total = np.empty_like(coeff)
    field = np.empty_like(coeff)
    power = np.empty(params.n_modes)

    def kerr_and_pump(src: ComplexArray, out: ComplexArray) -> None:
        """out = h * (FFT of i |psi|^2 psi + pump), psi = IFFT(src)."""
        np.fft.ifft(src, out=field)
        np.abs(field, out=power)
        np.square(power, out=power)
        np.multiply(field, power, out=field)
        np.fft.fft(field, out=out)
        np.multiply(out, 1j * h, out=out)
        out[0] += pump_kick

    for _ in range(n_steps):
        np.multiply(half_step, coeff, out=coeff_ip)
        kerr_and_pump(coeff, k)  # k1
        k *= half_step
        np.multiply(k, 1.0 / 6.0, out=total)
        np.multiply(k, 0.5, out=stage)
        stage += coeff_ip
        kerr_and_pump(stage, k)  # k2
        total += k / 3.0
        np.multiply(k, 0.5, out=stage)
        stage += coeff_ip
        kerr_and_pump(stage, k)  # k3
        total += k / 3.0
        np.add(coeff_ip, k, out=stage)
        stage *= half_step
        kerr_and_pump(stage, k)  # k4
        total += coeff_ip
        total *= half_step
        np.multiply(k, 1.0 / 6.0, out=coeff)
        coeff += total
    return np.fft.ifft(coeff)
