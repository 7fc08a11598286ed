"""Recognising soliton states from measurements only: the OSA trace and power-meter readings.

What a bench shows of the physics (design/physics.md, sections 2 and 3; seed Fig. 2(b)), read
without access to anything behind the instruments.

Spectrum (``analyse_spectrum``)
-------------------------------
* Floor: rms of the detector noise. The AQ6370 reports readings without a positive level as
  -210 dBm; where noise dominates, half the readings are clipped and the other half are positive
  with median 0.674 sigma. Without clipped readings: a low percentile of the trace.
* Lines: maxima over ``peak_window_nm`` (wider than the RBW, under half the line spacing),
  ``line_snr_db`` above the floor and ``prominence_db`` above the lowest reading on both sides (a
  jittery smooth background, ASE or MI, makes no lines); a parabola in dB through the three
  samples round each maximum gives its level and position (exact for a Gaussian passband).
* Grid: f = f_pump + m * spacing by least squares over all lines, m assigned from a median-gap
  start, lines more than ``grid_tolerance`` spacings off the grid dropped; three rounds.
* Envelope: A + 10 log10 sech^2((f - f_c) / w) by Levenberg-Marquardt on dB over the comb lines
  (pump excluded) ``fit_snr_db`` above the floor and within ``fit_depth_db`` of the strongest.
  3-dB full width 2 acosh(sqrt 2) w. The depth limit matters: near its lower existence edge the
  LLE soliton is not quite sech^2 (wider wings), and a fit over 40 dB reads its 3-dB width 5 %
  wide, over 20 dB 3 %.
* Scatter of the line powers about the envelope, linear, r_m = P_m / envelope_m / mean - 1, over
  every grid line where the envelope is within the fit's limits (a missing line counts 0; the
  pump and ``pump_guard_lines`` either side take the mean). N solitons at angles theta_k give
  P_m = envelope_m (N + 2 sum_{j<k} cos(m (theta_j - theta_k))), i.e. N (N - 1) / 2 sinusoids in m,
  while a chaotic (MI) comb scatters at random. ``fringe_components`` sinusoids are taken out in
  turn (largest periodogram peak, least squares). With S the mean-square scatter, R what is left,
  t the ``smooth_tolerance_db`` as a ratio: fringe_score = (S - R) / (S + t^2), irregular
  share = R / (S + t^2); their sum is below 1/2 exactly when S < t^2 (smooth).
* Background: median reading in the middle of each gap between strong lines, regressed on the
  envelope there plus a straight line in frequency; the proportional part follows the comb (a
  chaotic comb's continuum; the OSA's own skirts, ~ -47 dB at RBW 0.02 nm and 49 GHz), a flat or
  sloped pedestal does not (one with an edge inside the comb partly does). background_db is that
  part re the envelope, its score a / (a + 10^(background_ref_db / 10)).
* noise_score = max(irregular share, background score). Classification, from the lines alone:
  fewer than ``min_comb_lines`` fitted lines: "no_comb"; smooth: "single_soliton"; else
  "multi_soliton" if the sinusoids hold ``fringe_share`` of the scatter, otherwise "mi". The
  background is reported, not used: an unfiltered EDFA's ASE pedestal (1 mW seed, 3.5 W out:
  ~ -18 dB re the central lines at the monitor) raises the gaps as much as a chaotic continuum.
* Moment width: the sech^2 width w from the second moment of the comb lines' powers in mW (pump
  excluded; a sech^2 has variance pi^2 w^2 / 12). It measures the detuning, w^2 ~ delta
  (b = sqrt(2 delta_omega / D2)), for several solitons as for one: in mW their fringes scatter
  it (~ 4 %) but do not bias it. The dB fit's w does not serve: its depth limit keeps only
  fringe maxima in the wings, which widens it ~ 10 % for two solitons.

Power levels (``SolitonCalibration``, ``count_solitons``, ``read_soliton_steps``,
``LevelChangeDetector``)
---------------------------------------------------------------------------------
On a step the comb (or absorbed) power is P = P_cw(delta) + N P1(delta) with P1 ~ sqrt(delta)
(E1 = (2/pi) sqrt(zeta d2)); transmitted power falls with N, which a negative P1 expresses. The
CW part moves with detuning too: the lower branch holds |psi_cw|^2 ~ F^2 / zeta^2, so
P_cw = p_cw - dip (delta_ref / delta)^2, which changes by more than one P1 along a staircase.
P1 (and P_cw) are learnt on known steps and N read as round((P - P_cw(delta)) / P1(delta)). A
sweep is cut where the medians of the readings before and after differ by over P1 / 2; the flat
segments after the last noisy one (the MI plateau) are the steps. Live, a change is declared
once a few consecutive readings all lie over P1 / 2 from the median of the recent ones.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Classification = Literal["no_comb", "mi", "multi_soliton", "single_soliton"]

C_NM_GHZ = 299_792_458.0  # speed of light in nm * GHz
_HALF_NORMAL_MEDIAN = 0.6744897501960817  # median of |x| for x ~ N(0, 1)
_SECH2_HALF_WIDTH = math.acosh(math.sqrt(2.0))  # sech^2(x) = 1/2
_DB_PER_NEPER2 = 20.0 / math.log(10.0)  # dB per unit of ln(amplitude)
_LM_ITERATIONS = 50
_FLOOR_HALF_WINDOW = 10  # samples either side in the clipped-share test of the floor estimate


# --- spectrum -------------------------------------------------------------------------------------


class SpectrumConfig(BaseModel):
    """Thresholds of the spectrum analysis. Defaults suit a 49 GHz comb at RBW 0.02 nm."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    no_level_dbm: float = -200.0  # readings at or below carry no level (AQ6370: -210)
    floor_percentile: Annotated[float, Field(gt=0, lt=100)] = 10.0  # floor if nothing is clipped
    peak_window_nm: Annotated[float, Field(gt=0)] = 0.1  # lines are maxima over this window
    prominence_db: Annotated[float, Field(ge=0)] = 3.0  # above the lowest reading either side
    line_snr_db: float = 10.0  # a line stands this far above the floor
    fit_snr_db: float = 15.0  # lines in the envelope fit: this far above the floor ...
    fit_depth_db: Annotated[float, Field(gt=0)] = 20.0  # ... and this near the strongest line
    background_snr_db: float = 30.0  # both lines this far above the floor: a measured gap
    grid_tolerance: Annotated[float, Field(gt=0, lt=0.5)] = 0.2  # off-grid limit, in spacings
    pump_guard_lines: Annotated[int, Field(ge=0)] = 2  # lines each side of the pump left out
    min_comb_lines: Annotated[int, Field(ge=4)] = 5  # fewer fitted lines: no comb
    fringe_components: Annotated[int, Field(ge=1)] = 6  # sinusoids taken out of the scatter
    smooth_tolerance_db: Annotated[float, Field(gt=0)] = 1.0  # rms scatter still smooth
    background_ref_db: float = -30.0  # background re the envelope that scores 1/2
    fringe_share: Annotated[float, Field(gt=0, lt=1)] = 0.5  # periodic share of multi_soliton


@dataclass(frozen=True)
class SpectrumAnalysis:
    """What an OSA trace says about the comb. NaN where there are too few lines to tell."""

    classification: Classification
    spacing_ghz: float  # line spacing from the grid fit
    bandwidth_3db_thz: float  # 3-dB full width of the fitted sech^2
    lines_20db: int  # lines (pump included) at least 20 dB above the floor
    envelope_residual_db: float  # rms of the fitted lines about the sech^2
    fringe_score: float  # periodic (interference) share of the line scatter, 0 ... 1
    noise_score: float  # irregular share of the scatter, or the background score if larger
    floor_dbm: float  # rms detector noise
    pump_nm: float
    envelope_centre_thz: float
    background_db: float  # background following the comb, re the envelope
    moment_width_ghz: float  # sech^2 width from the lines' second moment: delta ~ its square
    line_nm: FloatArray = field(compare=False, repr=False)
    line_dbm: FloatArray = field(compare=False, repr=False)
    line_index: IntArray = field(compare=False, repr=False)  # pump = 0; -1 if no grid


def estimate_floor_dbm(power_dbm: ArrayLike, no_level_dbm: float = -200.0,
                       percentile: float = 10.0) -> float:
    """Rms of the detector noise, in dBm, from the trace itself (see the module notes).

    The mirror estimate uses only noise-dominated neighbourhoods (>= 45 % of the readings within
    +-10 samples clipped): elsewhere weak skirts make small positive readings more common than
    clipped ones, which biases the median low by ~ 1 dB.
    """
    dbm = np.asarray(power_dbm, dtype=float)
    clipped = dbm <= no_level_dbm
    share = np.convolve(clipped, np.ones(2 * _FLOOR_HALF_WINDOW + 1), mode="same") \
        / (2 * _FLOOR_HALF_WINDOW + 1)
    quiet = share >= 0.45
    n_clipped = int(np.count_nonzero(clipped & quiet))
    if n_clipped < 20:
        level = dbm[~clipped]
        return float(np.percentile(level, percentile)) if level.size else no_level_dbm
    positive = np.sort(dbm[quiet & ~clipped])[:n_clipped]
    return float(10.0 * np.log10(np.median(10.0 ** (positive / 10.0)) / _HALF_NORMAL_MEDIAN))


def _find_lines(wavelength_nm: FloatArray, dbm: FloatArray, floor_dbm: float,
                cfg: SpectrumConfig) -> tuple[FloatArray, FloatArray]:
    """Wavelengths and levels (dBm) of the lines, parabola-refined."""
    step = float(np.median(np.diff(wavelength_nm)))
    half = max(1, round(cfg.peak_window_nm / step / 2.0))
    windows = sliding_window_view(np.pad(dbm, half, constant_values=-np.inf), 2 * half + 1)
    lowest_side = np.maximum(windows[:, :half].min(axis=1), windows[:, half + 1:].min(axis=1))
    first_of_equals = dbm > np.r_[-np.inf, dbm[:-1]]
    peak = ((dbm >= windows.max(axis=1)) & first_of_equals & (dbm >= floor_dbm + cfg.line_snr_db)
            & (dbm - lowest_side >= cfg.prominence_db))
    i = np.flatnonzero(peak)
    i = i[(i > 0) & (i < dbm.size - 1)]
    a, b, c = dbm[i - 1], dbm[i], dbm[i + 1]
    curvature = a - 2.0 * b + c
    usable = (np.minimum(a, c) > cfg.no_level_dbm) & (curvature < 0.0)
    delta = np.where(usable, 0.5 * (a - c) / np.where(usable, curvature, -1.0), 0.0)
    level = b - 0.25 * (a - c) * delta
    position = wavelength_nm[i] + delta * 0.5 * (wavelength_nm[i + 1] - wavelength_nm[i - 1])
    return position, level


def _fit_grid(freq: FloatArray, pump_freq: float, tolerance: float
              ) -> tuple[float, float, IntArray, NDArray[np.bool_]]:
    """(spacing, grid offset at m = 0, m per line, on-grid mask): f = offset + m * spacing."""
    gaps = np.diff(np.sort(freq))
    spacing = float(np.median(gaps))
    multiple = np.rint(gaps / spacing)
    spacing = float(gaps[multiple >= 1].sum() / multiple[multiple >= 1].sum())
    offset = pump_freq
    on_grid = np.ones(freq.size, dtype=bool)
    index = np.zeros(freq.size, dtype=np.int64)
    for _ in range(3):
        index = np.rint((freq - offset) / spacing).astype(np.int64)
        on_grid = np.abs(freq - offset - index * spacing) <= tolerance * spacing
        design = np.stack([np.ones(int(on_grid.sum())), index[on_grid]], axis=1)
        (offset, spacing), *_ = np.linalg.lstsq(design, freq[on_grid], rcond=None)
    index = np.rint((freq - offset) / spacing).astype(np.int64)
    on_grid = np.abs(freq - offset - index * spacing) <= tolerance * spacing
    return float(spacing), float(offset), index, on_grid


def _sech2_db(freq: FloatArray, amplitude_db: float, centre: float, width: float) -> FloatArray:
    u = np.abs((freq - centre) / width)
    return amplitude_db - _DB_PER_NEPER2 * (u + np.log1p(np.exp(-2.0 * u)) - math.log(2.0))


def fit_sech2_envelope(freq: ArrayLike, level_db: ArrayLike) -> tuple[float, float, float, float]:
    """Least-squares sech^2 on dB: (peak dB, centre, width w, rms residual dB); P ~ sech^2((f-c)/w).

    Starts from the power-weighted centroid and second moment (a sech^2 has variance
    pi^2 w^2 / 12), then Levenberg-Marquardt on the three parameters.
    """
    f = np.asarray(freq, dtype=float)
    y = np.asarray(level_db, dtype=float)
    weight = 10.0 ** ((y - y.max()) / 10.0)
    centre = float(np.sum(weight * f) / weight.sum())
    width = max(math.sqrt(12.0 * float(np.sum(weight * (f - centre) ** 2) / weight.sum()))
                / math.pi, float(np.ptp(f)) / max(f.size, 1), 1e-12)
    params = np.array([float(np.mean(y - _sech2_db(f, 0.0, centre, width))), centre, width])
    cost = float(np.sum((y - _sech2_db(f, *params)) ** 2))
    damping = 1e-3
    for _ in range(_LM_ITERATIONS):
        u = (f - params[1]) / params[2]
        slope = _DB_PER_NEPER2 * np.tanh(u) / params[2]
        jac = np.stack([np.ones_like(f), slope, slope * u], axis=1)
        residual = y - _sech2_db(f, *params)
        normal = jac.T @ jac
        step = np.linalg.solve(normal + damping * np.diag(np.diag(normal)), jac.T @ residual)
        trial = params + step
        trial_cost = float(np.sum((y - _sech2_db(f, *trial)) ** 2)) if trial[2] > 0 else math.inf
        if trial_cost < cost:
            converged = cost - trial_cost < 1e-12 * (1.0 + cost)
            params, cost, damping = trial, trial_cost, damping / 3.0
            if converged:
                break
        else:
            damping *= 4.0
    return float(params[0]), float(params[1]), float(params[2]), math.sqrt(cost / f.size)


def moment_width_ghz(freq_ghz: ArrayLike, level_dbm: ArrayLike) -> float:
    """sech^2 width w (P ~ sech^2((f - c) / w)) from the second moment of the line powers in
    mW: a sech^2 has variance pi^2 w^2 / 12."""
    f = np.asarray(freq_ghz, dtype=float)
    mw = 10.0 ** (np.asarray(level_dbm, dtype=float) / 10.0)
    centre = float(np.sum(mw * f) / mw.sum())
    return math.sqrt(12.0 * float(np.sum(mw * (f - centre) ** 2) / mw.sum())) / math.pi


def _take_sinusoids(scatter: FloatArray, count: int) -> FloatArray:
    """What is left of ``scatter`` after removing its ``count`` strongest sinusoids in turn."""
    rest = scatter.copy()
    m = np.arange(scatter.size, dtype=float)
    n_fft = 8 * (1 << math.ceil(math.log2(scatter.size)))
    for _ in range(count):
        spectrum = np.abs(np.fft.rfft(rest, n_fft)) ** 2
        omega = 2.0 * math.pi * (1 + int(np.argmax(spectrum[1:]))) / n_fft
        basis = np.stack([np.cos(omega * m), np.sin(omega * m)], axis=1)
        coefficients, *_ = np.linalg.lstsq(basis, rest, rcond=None)
        rest = rest - basis @ coefficients
    return rest


def _scatter_scores(level_mw: FloatArray, envelope_mw: FloatArray, guard: NDArray[np.bool_],
                    cfg: SpectrumConfig) -> tuple[float, float]:
    """(fringe_score, irregular score) of consecutive line powers about the envelope."""
    ratio = level_mw / envelope_mw
    ratio[guard] = np.mean(ratio[~guard])
    scatter = ratio / ratio.mean() - 1.0
    total = float(np.mean(scatter**2))
    rest = float(np.mean(_take_sinusoids(scatter, cfg.fringe_components) ** 2))
    tolerance = (10.0 ** (cfg.smooth_tolerance_db / 10.0) - 1.0) ** 2
    return (total - rest) / (total + tolerance), rest / (total + tolerance)


def _background(wavelength_nm: FloatArray, mw: FloatArray, line_nm: FloatArray,
                line_index: IntArray, strong: NDArray[np.bool_], envelope_gap_mw: FloatArray,
                pump_guard: int) -> float:
    """Background following the comb, relative to the envelope (linear).

    NaN unless there are 6 gaps and the envelope over them spans 10 dB, which the regression
    needs to tell a proportional part from an offset.
    """
    pair = (np.diff(line_index) == 1) & strong[:-1] & strong[1:] \
        & (np.minimum(np.abs(line_index[:-1]), np.abs(line_index[1:])) > pump_guard)
    envelope = envelope_gap_mw[pair]
    if envelope.size < 6 or envelope.max() < 10.0 * envelope.min():
        return math.nan
    low, high = line_nm[:-1][pair], line_nm[1:][pair]
    middle = 0.5 * (low + high)
    step = float(np.median(np.diff(wavelength_nm)))
    points = max(1, int(0.4 * float(np.min(np.abs(high - low))) / step))
    centre = np.searchsorted(wavelength_nm, middle)
    take = np.clip(centre[:, None] + np.arange(points) - points // 2, 0, mw.size - 1)
    valley = np.median(mw[take], axis=1)
    x = (middle - middle.mean()) / max(float(np.ptp(middle)), 1e-12)
    design = np.stack([envelope, np.ones_like(x), x], axis=1)
    (proportional, _, _), *_ = np.linalg.lstsq(design, valley, rcond=None)
    return float(proportional)


def analyse_spectrum(wavelength_nm: ArrayLike, power_dbm: ArrayLike,
                     pump_nm: float | None = None,
                     config: SpectrumConfig | None = None) -> SpectrumAnalysis:
    """Lines, spacing, sech^2 envelope, scores and the state of a comb from one OSA trace.

    ``pump_nm`` picks the pump as the line nearest to it; without it the strongest line is the
    pump. The trace may be in any order of wavelength.
    """
    cfg = config or SpectrumConfig()
    wl = np.asarray(wavelength_nm, dtype=float)
    dbm = np.asarray(power_dbm, dtype=float)
    if wl.shape != dbm.shape or wl.ndim != 1 or wl.size < 16:
        raise ValueError("need two 1-D arrays of equal length >= 16")
    order = np.argsort(wl)
    wl, dbm = wl[order], dbm[order]
    floor = estimate_floor_dbm(dbm, cfg.no_level_dbm, cfg.floor_percentile)
    line_nm, line_dbm = _find_lines(wl, dbm, floor, cfg)
    if line_nm.size == 0:
        return _no_comb(floor, line_nm, line_dbm, math.nan)
    line_freq = C_NM_GHZ / line_nm
    pump = int(np.argmax(line_dbm) if pump_nm is None else np.argmin(np.abs(line_nm - pump_nm)))
    pump_at = float(line_nm[pump])
    if line_nm.size < 3:
        return _no_comb(floor, line_nm, line_dbm, pump_at)
    spacing, offset, index, on_grid = _fit_grid(line_freq, float(line_freq[pump]),
                                                cfg.grid_tolerance)
    # one line per grid index (the strongest), in index order
    shift = int(index[pump])
    offset, index = offset + shift * spacing, index - shift
    order = np.lexsort((-line_dbm, index))
    order = order[on_grid[order]]
    order = order[np.r_[True, np.diff(index[order]) > 0]]
    index, line_nm, line_dbm = index[order], line_nm[order], line_dbm[order]
    lines_20db = int(np.count_nonzero(line_dbm >= floor + 20.0))
    comb = index != 0
    lowest_db = max(floor + cfg.fit_snr_db, line_dbm[comb].max() - cfg.fit_depth_db)
    fit = comb & (line_dbm >= lowest_db)
    if np.count_nonzero(fit) < cfg.min_comb_lines:
        return _no_comb(floor, line_nm, line_dbm, pump_at, spacing, index)
    freq = C_NM_GHZ / line_nm
    peak_db, centre, width, residual_db = fit_sech2_envelope(freq[fit], line_dbm[fit])

    def envelope_mw(f: FloatArray) -> FloatArray:
        return 10.0 ** (_sech2_db(f, peak_db, centre, width) / 10.0)

    grid = np.arange(index[0], index[-1] + 1)
    grid_freq = offset + grid * spacing
    level = np.zeros(grid.size)
    level[index - index[0]] = 10.0 ** (line_dbm / 10.0)
    region = envelope_mw(grid_freq) >= 10.0 ** (lowest_db / 10.0)
    fringe = irregular = math.nan
    if np.count_nonzero(region) >= 16:
        span = slice(int(np.argmax(region)), grid.size - int(np.argmax(region[::-1])))
        fringe, irregular = _scatter_scores(level[span], envelope_mw(grid_freq[span]),
                                            np.abs(grid[span]) <= cfg.pump_guard_lines, cfg)
    strong = line_dbm >= floor + cfg.background_snr_db
    background = _background(wl, np.where(dbm > cfg.no_level_dbm, 10.0 ** (dbm / 10.0), 0.0),
                             line_nm, index, strong, envelope_mw(0.5 * (freq[:-1] + freq[1:])),
                             cfg.pump_guard_lines)
    proportional = 0.0 if math.isnan(background) else max(background, 0.0)
    background_score = proportional / (proportional + 10.0 ** (cfg.background_ref_db / 10.0))
    noise = background_score if math.isnan(irregular) else max(irregular, background_score)
    classification: Classification
    if math.isnan(fringe):  # too few lines for the scatter test: the fit residual decides
        classification = "single_soliton" if residual_db <= cfg.smooth_tolerance_db else "mi"
    elif fringe + irregular < 0.5:
        classification = "single_soliton"
    elif fringe >= cfg.fringe_share * (fringe + irregular):
        classification = "multi_soliton"
    else:
        classification = "mi"
    background_db = 10.0 * math.log10(proportional) if proportional > 0 \
        else math.nan if math.isnan(background) else -math.inf
    return SpectrumAnalysis(
        classification=classification, spacing_ghz=spacing,
        bandwidth_3db_thz=2.0 * _SECH2_HALF_WIDTH * width / 1e3, lines_20db=lines_20db,
        envelope_residual_db=residual_db, fringe_score=fringe, noise_score=noise,
        floor_dbm=floor, pump_nm=pump_at, envelope_centre_thz=centre / 1e3,
        background_db=background_db, moment_width_ghz=moment_width_ghz(freq[comb], line_dbm[comb]),
        line_nm=line_nm, line_dbm=line_dbm, line_index=index)


def _no_comb(floor: float, line_nm: FloatArray, line_dbm: FloatArray, pump_nm: float,
             spacing: float = math.nan, index: IntArray | None = None) -> SpectrumAnalysis:
    nan = math.nan
    lines_20db = int(np.count_nonzero(line_dbm >= floor + 20.0))
    if index is None:
        index = np.full(line_nm.size, -1, dtype=np.int64)
    return SpectrumAnalysis("no_comb", spacing, nan, lines_20db, nan, nan, nan, floor, pump_nm,
                            nan, nan, nan, line_nm, line_dbm, index)


# --- power levels ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SolitonCount:
    """Soliton number read from one power level: n, the unrounded estimate, P(n | reading)."""

    n: int
    estimate: float
    confidence: float


class SolitonCalibration(BaseModel):
    """P = p_cw - cw_dip (detuning_ref / detuning)^2 + N p1_ref sqrt(detuning / detuning_ref).

    Detunings are measured from the resonance, red positive, in any one unit (normalised zeta,
    MHz, a soliton's squared spectral width, ...); powers in any one unit. p1_ref < 0 when the
    reading falls with N (transmission); cw_dip > 0 when the CW background's share falls with
    detuning (through port). ``noise`` is the rms of one reading, ``p1_rel_error`` the relative
    error of the sqrt law away from the reference; both widen the posterior behind
    ``count_solitons``' confidence.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    detuning_ref: Annotated[float, Field(gt=0)]
    p1_ref: float
    p_cw: float = 0.0
    cw_dip: float = 0.0
    noise: Annotated[float, Field(ge=0)] = 0.0
    p1_rel_error: Annotated[float, Field(ge=0)] = 0.02

    @classmethod
    def fit(cls, detuning: ArrayLike, power: ArrayLike, p_cw: float = 0.0, n: int = 1,
            detuning_ref: float | None = None, p1_rel_error: float = 0.02) -> SolitonCalibration:
        """Least-squares p1_ref from readings on a step known to hold ``n`` solitons.

        The reference detuning defaults to the median of the readings'; the reading noise is the
        rms residual about the sqrt law.
        """
        x = np.atleast_1d(np.asarray(detuning, dtype=float))
        y = np.atleast_1d(np.asarray(power, dtype=float)) - p_cw
        if x.shape != y.shape or x.size == 0 or n < 1 or np.any(x <= 0):
            raise ValueError("need matching readings at positive detunings, and n >= 1")
        ref = float(np.median(x)) if detuning_ref is None else detuning_ref
        shape = n * np.sqrt(x / ref)
        p1 = float(shape @ y / (shape @ shape))
        noise = float(np.sqrt(np.sum((y - p1 * shape) ** 2) / (x.size - 1))) if x.size > 1 else 0.0
        return cls(detuning_ref=ref, p1_ref=p1, p_cw=p_cw, noise=noise, p1_rel_error=p1_rel_error)

    @classmethod
    def fit_levels(cls, soliton_number: ArrayLike, detuning: ArrayLike, power: ArrayLike,
                   p1_rel_error: float = 0.02) -> SolitonCalibration:
        """Least squares on levels of known soliton numbers (at least two different ones).

        ``cw_dip`` is fitted from four levels on, when the detunings span enough to tell it from
        ``p_cw`` (its column is not nearly collinear); otherwise it stays 0. ``noise`` is the rms
        residual, so a model that fits badly counts with less confidence.
        """
        n = np.atleast_1d(np.asarray(soliton_number, dtype=float))
        x = np.atleast_1d(np.asarray(detuning, dtype=float))
        y = np.atleast_1d(np.asarray(power, dtype=float))
        if not n.shape == x.shape == y.shape or np.any(x <= 0) or np.any(n < 0) \
                or np.unique(n).size < 2:
            raise ValueError("need matching levels at positive detunings, with two or more "
                             "different soliton numbers")
        ref = float(np.median(x))
        columns = [np.ones_like(x), n * np.sqrt(x / ref), -((ref / x) ** 2)]
        design = np.stack(columns if x.size >= 4 else columns[:2], axis=1)
        if design.shape[1] == 3 and np.linalg.cond(design / np.abs(design).max(axis=0)) > 1e3:
            design = design[:, :2]
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        free = x.size - design.shape[1]
        noise = float(np.sqrt(np.sum((y - design @ coef) ** 2) / free)) if free > 0 else 0.0
        return cls(detuning_ref=ref, p1_ref=float(coef[1]), p_cw=float(coef[0]),
                   cw_dip=float(coef[2]) if coef.size == 3 else 0.0, noise=noise,
                   p1_rel_error=p1_rel_error)

    def p1(self, detuning: ArrayLike) -> FloatArray:
        """Power one soliton adds at ``detuning`` (> 0)."""
        x = np.asarray(detuning, dtype=float)
        if np.any(x <= 0):
            raise ValueError("solitons exist only red of the resonance: detuning must be > 0")
        return np.asarray(self.p1_ref * np.sqrt(x / self.detuning_ref), dtype=float)

    def p_cw_at(self, detuning: ArrayLike) -> FloatArray:
        """The level with no soliton at ``detuning`` (> 0)."""
        x = np.asarray(detuning, dtype=float)
        return np.asarray(self.p_cw - self.cw_dip * (self.detuning_ref / x) ** 2, dtype=float)


def count_solitons(power: float, detuning: float, calibration: SolitonCalibration,
                   readings: int = 1) -> SolitonCount:
    """Soliton number at one power level (a mean of ``readings`` readings) and its confidence.

    Confidence: posterior probability of n among the integers >= 0 (flat prior), the estimate
    Gaussian about the true N with sigma from the reading noise and the error of the sqrt law.
    """
    p1 = float(calibration.p1(detuning))
    return _posterior((power - float(calibration.p_cw_at(detuning))) / p1, p1, calibration,
                      readings)


def _posterior(estimate: float, p1: float, calibration: SolitonCalibration,
               readings: float) -> SolitonCount:
    sigma = max(math.hypot(calibration.noise / math.sqrt(readings) / p1,
                           max(estimate, 0.0) * calibration.p1_rel_error), 1e-9)
    n = max(0, round(estimate))
    reach = 3 + math.ceil(6.0 * sigma)
    k = np.arange(max(0, n - reach), n + reach + 1)
    weight = np.exp(0.5 * (((estimate - n) / sigma) ** 2 - ((estimate - k) / sigma) ** 2))
    return SolitonCount(n=n, estimate=estimate, confidence=float(1.0 / weight.sum()))


@dataclass(frozen=True)
class PowerSegment:
    """Samples [start, stop) between two level changes: median level, median detuning,
    rms noise (from successive differences) and whether it is flat or noisy (MI)."""

    start: int
    stop: int
    detuning: float
    level: float
    noise: float
    noisy: bool


@dataclass(frozen=True)
class SolitonStep:
    """A flat segment after the MI plateau, read as a soliton number."""

    segment: PowerSegment
    count: SolitonCount


def robust_noise(power: ArrayLike) -> float:
    """Rms reading noise from successive differences (MAD): immune to steps and slow drift."""
    d = np.diff(np.asarray(power, dtype=float))
    if d.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0))


def find_power_steps(detuning: ArrayLike, power: ArrayLike, min_jump: ArrayLike,
                     window: int = 10, noise: float | None = None,
                     noisy_ratio: float = 4.0) -> list[PowerSegment]:
    """Split a sweep trace at abrupt level changes; mark segments much noisier than the quiet ones.

    A change is where the median of the next ``window`` readings differs from that of the
    previous ``window`` by more than ``min_jump`` (scalar or per sample, e.g. half of P1) and by
    six standard errors, at the largest such difference within +-window; it is then placed at
    the split that best fits the two medians (least absolute deviations), and changes closer
    than ``window`` to the previous one are dropped. ``noise`` (the quiet reading noise) defaults
    to the 25th percentile of ``robust_noise`` over sliding windows of 4 * window readings; a
    segment noisier than ``noisy_ratio`` times it is noisy (the MI plateau), and neighbouring
    noisy segments are merged.
    """
    x = np.asarray(detuning, dtype=float)
    p = np.asarray(power, dtype=float)
    if x.shape != p.shape or p.ndim != 1 or p.size < 4 * window + 1 or window < 2:
        raise ValueError("need matching 1-D traces longer than 4 * window, window >= 2")
    quiet = noise if noise is not None else float(np.percentile(
        _local_noise(np.diff(p), 4 * window), 25.0))
    medians = np.median(sliding_window_view(p, window), axis=1)
    jump = np.zeros(p.size)
    jump[window: p.size - window + 1] = medians[window:] - medians[: medians.size - window]
    threshold = np.maximum(np.abs(np.asarray(min_jump, dtype=float)),
                           6.0 * 1.2533 * quiet * math.sqrt(2.0 / window))
    size = np.abs(jump)
    local_max = size >= np.max(sliding_window_view(np.pad(size, window), 2 * window + 1), axis=1)
    edges = np.flatnonzero(local_max & (size > threshold))
    edges = _place_edges(p, edges[(edges >= window) & (edges <= p.size - window)],
                         medians, window)
    kept: list[int] = []
    for edge in edges:
        if edge - (kept[-1] if kept else 0) >= window and p.size - edge >= window:
            kept.append(int(edge))
    bounds = [0, *kept, p.size]
    segments: list[PowerSegment] = []
    for start, stop in itertools.pairwise(bounds):
        noisy = robust_noise(p[start:stop]) > noisy_ratio * quiet
        if noisy and segments and segments[-1].noisy:
            start = segments.pop().start
        segments.append(PowerSegment(start, stop, float(np.median(x[start:stop])),
                                     float(np.median(p[start:stop])),
                                     robust_noise(p[start:stop]), bool(noisy)))
    return segments


def _place_edges(p: FloatArray, edges: IntArray, medians: FloatArray, window: int) -> IntArray:
    """Each change at the split within +-window/2 that best fits the medians either side."""
    if edges.size == 0:
        return edges
    offsets = np.arange(-window, window)
    span = p[edges[:, None] + offsets]  # readings edge - window ... edge + window - 1
    left = np.abs(span - medians[edges - window][:, None])
    right = np.abs(span - medians[edges][:, None])
    split = np.arange(window // 2, window + window // 2 + 1)  # candidate first index of "after"
    cum_left = np.concatenate([np.zeros((edges.size, 1)), np.cumsum(left, axis=1)], axis=1)
    cum_right = np.concatenate([np.zeros((edges.size, 1)), np.cumsum(right, axis=1)], axis=1)
    cost = cum_left[:, split] + cum_right[:, -1:] - cum_right[:, split]
    return np.asarray(edges - window + split[np.argmin(cost, axis=1)], dtype=np.int64)


def _local_noise(diff: FloatArray, span: int) -> FloatArray:
    """robust_noise of the readings in sliding windows, from their successive differences."""
    windows = sliding_window_view(diff, span)
    centred = np.abs(windows - np.median(windows, axis=1, keepdims=True))
    return np.asarray(1.4826 * np.median(centred, axis=1) / math.sqrt(2.0), dtype=float)


def read_soliton_steps(detuning: ArrayLike, power: ArrayLike, calibration: SolitonCalibration,
                       window: int = 10) -> list[SolitonStep]:
    """Soliton numbers of the flat segments after the last noisy (MI) one, in sweep order.

    Levels change by at least half a soliton's power, P1(detuning) / 2 (P1 taken at no less than
    a quarter of the reference detuning: below that there are no solitons, only the triangle);
    each step's N is read from the median of its per-reading estimates (a median of k readings
    is worth 2k / pi means).
    """
    x = np.asarray(detuning, dtype=float)
    p = np.asarray(power, dtype=float)
    at = np.maximum(x, 0.25 * calibration.detuning_ref)
    p1 = calibration.p1(at)
    segments = find_power_steps(x, p, 0.5 * np.abs(p1), window)
    last_noisy = max((i for i, s in enumerate(segments) if s.noisy), default=-1)
    steps: list[SolitonStep] = []
    for seg in segments[last_noisy + 1:]:
        inside = slice(seg.start, seg.stop)
        estimate = float(np.median((p[inside] - calibration.p_cw_at(at[inside])) / p1[inside]))
        count = _posterior(estimate, float(np.median(p1[inside])), calibration,
                           2.0 / math.pi * (seg.stop - seg.start))
        steps.append(SolitonStep(seg, count))
    return steps


@dataclass(frozen=True)
class LevelChange:
    """A level change in a stream: where the new level began, where it was declared, the levels
    either side and the change in solitons."""

    index: int
    detected_at: int
    before: float
    after: float
    solitons: int  # round(jump / step): -1 is one soliton lost when step is P1


@dataclass
class LevelChangeDetector:
    """Live detector of discrete level changes (soliton lost or gained) in noisy readings.

    The reference is the median of the last ``history`` readings on the present level. A change
    is declared when ``persistence`` consecutive readings all lie beyond half a step on the same
    side: a lone spike never does, and with Gaussian noise of rms ``noise`` a steady level
    raises ``false_alarm_rate`` false alarms per reading (one is usually followed by a second,
    back to the true level, as the new reference starts from the outlying run).
    """

    step: float  # power of one soliton, P1 (signed, as in SolitonCalibration)
    noise: float
    persistence: int = 4
    history: int = 50
    _recent: deque[float] = field(default_factory=deque, init=False, repr=False)
    _sorted: list[float] = field(default_factory=list, init=False, repr=False)
    _pending: list[float] = field(default_factory=list, init=False, repr=False)
    _count: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.step == 0 or self.noise < 0 or self.persistence < 1 or self.history < 1:
            raise ValueError("need step != 0, noise >= 0, persistence >= 1, history >= 1")

    @property
    def false_alarm_rate(self) -> float:
        """Expected false alarms per reading on a steady level with a full history.

        2 E[Q((|step| / 2 + e) / noise)^persistence], e the error of the reference (a median of
        ``history`` readings: rms noise sqrt(pi / (2 history))), by Gauss-Hermite quadrature.
        """
        if self.noise == 0:
            return 0.0
        nodes, weights = np.polynomial.hermite_e.hermegauss(40)
        error = self.noise * math.sqrt(math.pi / (2.0 * self.history)) * nodes
        z = (abs(self.step) / 2.0 + error) / (self.noise * math.sqrt(2.0))
        tail = 0.5 * np.array([math.erfc(v) for v in z])
        return float(2.0 * weights @ tail**self.persistence / math.sqrt(2.0 * math.pi))

    @property
    def level(self) -> float:
        """The present reference level (NaN before the first reading)."""
        n = len(self._sorted)
        if n == 0:
            return math.nan
        return 0.5 * (self._sorted[(n - 1) // 2] + self._sorted[n // 2])

    def _accept(self, reading: float) -> None:
        if len(self._recent) == self.history:
            del self._sorted[bisect.bisect_left(self._sorted, self._recent.popleft())]
        self._recent.append(reading)
        bisect.insort(self._sorted, reading)

    def update(self, reading: float) -> LevelChange | None:
        """Take one reading; return the change it completes, if any."""
        index, self._count = self._count, self._count + 1
        level = self.level
        if math.isnan(level) or abs(reading - level) <= abs(self.step) / 2.0:
            self._pending.clear()
            self._accept(reading)
            return None
        if self._pending and (self._pending[-1] > level) != (reading > level):
            self._pending.clear()
        self._pending.append(reading)
        if len(self._pending) < self.persistence:
            return None
        after = float(np.median(self._pending))
        change = LevelChange(index=index - len(self._pending) + 1, detected_at=index,
                             before=level, after=after, solitons=round((after - level) / self.step))
        self._recent.clear()
        self._sorted.clear()
        for value in self._pending:
            self._accept(value)
        self._pending.clear()
        return change
