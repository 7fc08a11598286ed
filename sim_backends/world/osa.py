"""The optics and detector of a grating optical spectrum analyser (Yokogawa AQ6370 class).

How a trace comes about
-----------------------
At each sampled wavelength the monochromator passes a band of the input light onto the detector:

* the passband is the exit slit (a rectangle) smeared by the image of the input fibre (a
  Gaussian): a Gaussian-like top at the narrowest resolution, a flat top with steep edges at wide
  ones. The slit width is chosen so that the passband's full width at half maximum is the set
  resolution bandwidth (RBW);
* light scattered in the grating adds weak, far-reaching skirts, ~ offset^-6;
* the instrument is calibrated for lines: a narrow line reads its full power at the peak, so the
  passband is normalised to 1 at zero offset, and a continuum of power spectral density S
  (mW/nm) reads S times the noise bandwidth of the passband (~ 1.1 RBW);
* the detector adds noise: additive (the noise floor, set by the sensitivity setting, which also
  sets the time spent per point) and a small multiplicative level jitter. A reading at or below
  zero power has no logarithm: the instrument reports it as -210 dBm.

Numbers (AQ6370D datasheet values as we remember them, not checked against the sheet: treat as
*assumed*): close-in dynamic range at RBW 0.02 nm of 37 dB at +-0.1 nm and 55 dB at +-0.2 nm,
which the skirt parameters reproduce; noise floor -90 dBm at HIGH3 in the 1300-1620 nm band and
~ 5 dB per step less sensitive towards NORMAL; sweep ~ 0.2 s for 1001 points at NORM/AUTO, with
the slower sensitivities in the datasheet's ratios (x5 NORMAL ... x375 HIGH3).

Limits: vacuum wavelengths; the noise floor does not depend on wavelength (the real one rises
below 1300 nm); no stray-light pedestal, polarisation dependence, level calibration error,
wavelength error or detector saturation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sim_backends.world.laser import C_M_PER_S
from sim_backends.world.light import FloatArray, Light

NO_LEVEL_DBM = -210.0  # what the AQ6370 reports for a point without a positive level
_C_NM_HZ = C_M_PER_S * 1e9  # speed of light in nm * Hz
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_SKIRT_ORDER = 6  # scattered light falls ~ 18 dB per doubling of the offset
_CORE_SIGMAS = 8.0  # the slit image ends this many image sigmas beyond the slit edge
_NEGLIGIBLE = 1e-12  # passband level (-120 dB) beyond which a line's light is not summed
_PAIRS_PER_CHUNK = 2_000_000  # (line, point) pairs summed at once: bounds memory to ~ 100 MB
_MAX_FINE_POINTS = 1 << 22  # samples of the background convolution grid


@dataclass(frozen=True)
class Sensitivity:
    """One sensitivity setting: how low the detector sees, and how long it dwells per point."""

    name: str  # as ``:SENSe:SENSe`` spells it
    noise_floor_dbm: float  # rms of the additive detector noise
    point_time_s: float  # dwell per sampled point at 1x sweep speed


# Indexed by the code ``:SENSe:SENSe?`` answers (pymeasure's AQ6370 mapping). *Assumed* values.
SENSITIVITIES: tuple[Sensitivity, ...] = (
    Sensitivity("NHLD", -65.0, 1.0e-4),
    Sensitivity("NAUT", -65.0, 1.0e-4),
    Sensitivity("MID", -75.0, 1.0e-3),
    Sensitivity("HIGH1", -80.0, 2.5e-3),
    Sensitivity("HIGH2", -85.0, 1.0e-2),
    Sensitivity("HIGH3", -90.0, 3.75e-2),
    Sensitivity("NORM", -70.0, 5.0e-4),
)
SWEEP_OVERHEAD_S = 0.1  # grating turn-around and settling per sweep (*assumed*)


def sweep_time_s(points: int, sensitivity: Sensitivity, speed: float = 1.0) -> float:
    """Duration of one sweep over ``points`` samples at ``speed`` (1x, or 2x on the AQ6370D)."""
    return SWEEP_OVERHEAD_S + points * sensitivity.point_time_s / speed


def _erfc(z: FloatArray) -> FloatArray:
    """Complementary error function, relative error < 1.2e-7 everywhere (Chebyshev fit, erfcc).

    numpy has no erf; tails need relative accuracy, which ``1 - erf`` would not give.
    """
    u = np.abs(z)
    t = 1.0 / (1.0 + 0.5 * u)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    tail = t * np.exp(-u * u + poly)
    return np.where(z >= 0, tail, 2.0 - tail)


def _slit_response(offset_nm: FloatArray, half_slit_nm: float, sigma_nm: float) -> FloatArray:
    """Rectangle of half-width ``half_slit_nm`` convolved with a unit-area Gaussian (peak < 1)."""
    x = np.abs(offset_nm)
    scale = sigma_nm * math.sqrt(2.0)
    return 0.5 * (_erfc((x - half_slit_nm) / scale) - _erfc((x + half_slit_nm) / scale))


def _scalar_slit_response(x: float, half_slit_nm: float, sigma_nm: float) -> float:
    scale = sigma_nm * math.sqrt(2.0)
    return 0.5 * (math.erf((x + half_slit_nm) / scale) - math.erf((x - half_slit_nm) / scale))


def _bisect(f: Callable[[float], float], low: float, high: float) -> float:
    """Root of a monotonic scalar function on [low, high] (f(low), f(high) of opposite sign)."""
    f_low = f(low)
    for _ in range(80):
        mid = 0.5 * (low + high)
        if (f(mid) > 0) == (f_low > 0):
            low, f_low = mid, f(mid)
        else:
            high = mid
    return 0.5 * (low + high)


@lru_cache(maxsize=64)
def _half_slit_nm(rbw_nm: float, image_fwhm_nm: float) -> float:
    """Slit half-width whose passband (slit smeared by the fibre image) is ``rbw_nm`` FWHM."""
    if rbw_nm <= image_fwhm_nm:
        raise ValueError(f"RBW {rbw_nm} nm is not wider than the fibre image ({image_fwhm_nm} nm)")
    sigma = image_fwhm_nm / _FWHM_PER_SIGMA

    def fwhm(half: float) -> float:
        peak = _scalar_slit_response(0.0, half, sigma)
        edge = _bisect(lambda x: _scalar_slit_response(x, half, sigma) - peak / 2,
                       0.0, half + 10 * sigma)
        return 2 * edge

    return _bisect(lambda half: fwhm(half) - rbw_nm, 1e-6 * rbw_nm, rbw_nm)


@dataclass(frozen=True)
class Monochromator:
    """Passband and detector of the OSA; ``render_dbm`` turns a ``Light`` into a trace."""

    image_fwhm_nm: float = 0.015  # input-fibre image on the slit: the narrowest passband
    skirt_knee_nm: float = 0.05  # offset where the scattered-light skirts start to fall
    skirt_level: float = 1.3e-2  # skirt height near the line, relative to the peak
    level_noise_db: float = 0.02  # rms multiplicative jitter of a reading

    def passband(self, offset_nm: FloatArray, rbw_nm: float) -> FloatArray:
        """Response to a line ``offset_nm`` from the sampled wavelength; 1 at zero offset."""
        sigma = self.image_fwhm_nm / _FWHM_PER_SIGMA
        half = _half_slit_nm(rbw_nm, self.image_fwhm_nm)
        distance = np.abs(offset_nm)
        squared = (distance / self.skirt_knee_nm) ** 2
        response = self.skirt_level / (1.0 + squared * squared * squared)  # offset^-6 skirts
        near = distance < half + _CORE_SIGMAS * sigma  # the slit image is < 1e-15 beyond
        response[near] += _slit_response(distance[near], half, sigma)
        return response / (_scalar_slit_response(0.0, half, sigma) + self.skirt_level)

    def reach_nm(self, rbw_nm: float) -> float:
        """Offset beyond which the passband is below -120 dB: light further away is ignored."""
        sigma = self.image_fwhm_nm / _FWHM_PER_SIGMA
        core = _half_slit_nm(rbw_nm, self.image_fwhm_nm) + _CORE_SIGMAS * sigma
        skirt = self.skirt_knee_nm * (self.skirt_level / _NEGLIGIBLE) ** (1 / _SKIRT_ORDER)
        return max(core, skirt)

    def noise_bandwidth_nm(self, rbw_nm: float) -> float:
        """Integral of the passband: a continuum of S mW/nm reads S times this."""
        reach = self.reach_nm(rbw_nm)
        step = self.image_fwhm_nm / 32
        offsets = np.arange(-reach, reach + step, step)
        return float(np.trapezoid(self.passband(offsets, rbw_nm), offsets))

    def power_in_rbw_mw(self, light: Light, wavelength_nm: FloatArray,
                        rbw_nm: float) -> FloatArray:
        """Noise-free power through the passband centred at each ascending ``wavelength_nm``."""
        return (self._lines_mw(light, wavelength_nm, rbw_nm)
                + self._background_mw(light, wavelength_nm, rbw_nm))

    def detect_dbm(self, power_mw: FloatArray, noise_floor_dbm: float,
                   rng: np.random.Generator) -> FloatArray:
        """Detector readings in dBm: level jitter, additive noise, -210 dBm where not positive."""
        jitter = 10 ** (self.level_noise_db * rng.standard_normal(power_mw.size) / 10)
        reading = power_mw * jitter + 10 ** (noise_floor_dbm / 10) * rng.standard_normal(
            power_mw.size)
        level = 10 * np.log10(np.maximum(reading, np.finfo(float).tiny))
        return np.where(reading > 0, level, NO_LEVEL_DBM)

    def render_dbm(self, light: Light, wavelength_nm: FloatArray, rbw_nm: float,
                   noise_floor_dbm: float, rng: np.random.Generator) -> FloatArray:
        """The trace the OSA records at ``wavelength_nm`` (ascending): power in dBm per point."""
        power = self.power_in_rbw_mw(light, wavelength_nm, rbw_nm)
        return self.detect_dbm(power, noise_floor_dbm, rng)

    def _lines_mw(self, light: Light, grid_nm: FloatArray, rbw_nm: float) -> FloatArray:
        """Sum of every line through the passband, over the points within reach of each line."""
        total = np.zeros(grid_nm.size)
        if grid_nm.size == 0 or light.line_power_mw.size == 0:
            return total
        reach = self.reach_nm(rbw_nm)
        line_nm = light.line_wavelength_nm
        seen = (line_nm > grid_nm[0] - reach) & (line_nm < grid_nm[-1] + reach)
        if not seen.any():
            return total
        line_nm, line_mw = line_nm[seen], light.line_power_mw[seen]
        first = np.searchsorted(grid_nm, line_nm - reach, "left")
        counts = np.searchsorted(grid_nm, line_nm + reach, "right") - first
        ends = np.cumsum(counts)
        budgets = np.arange(_PAIRS_PER_CHUNK, ends[-1], _PAIRS_PER_CHUNK)
        for lines in np.split(np.arange(line_nm.size), np.searchsorted(ends, budgets, "right")):
            n = counts[lines]
            owner = np.repeat(lines, n)
            index = first[owner] + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
            response = self.passband(grid_nm[index] - line_nm[owner], rbw_nm)
            total += np.bincount(index, weights=line_mw[owner] * response, minlength=grid_nm.size)
        return total

    def _background_mw(self, light: Light, grid_nm: FloatArray, rbw_nm: float) -> FloatArray:
        """The background PSD convolved with the passband on a fine grid, read at each point."""
        if grid_nm.size == 0 or light.background_frequency_hz.size < 2:
            return np.zeros(grid_nm.size)
        reach = self.reach_nm(rbw_nm)
        band_nm = _C_NM_HZ / light.background_frequency_hz[[-1, 0]]  # ascending wavelength
        low = max(grid_nm[0] - reach, band_nm[0] - reach)
        high = min(grid_nm[-1] + reach, band_nm[1] + reach)
        if high <= low:
            return np.zeros(grid_nm.size)
        step = max(self.image_fwhm_nm / 8, (high - low) / _MAX_FINE_POINTS)
        fine_nm = np.arange(low, high + step, step)
        psd_mw_per_nm = np.interp(_C_NM_HZ / fine_nm, light.background_frequency_hz,
                                  light.background_mw_per_hz, left=0.0, right=0.0) \
            * _C_NM_HZ / fine_nm**2
        half = math.ceil(reach / step)
        kernel = self.passband(np.arange(-half, half + 1) * step, rbw_nm) * step
        size = fine_nm.size + kernel.size - 1
        spectrum = np.fft.rfft(psd_mw_per_nm, size) * np.fft.rfft(kernel, size)
        smoothed = np.fft.irfft(spectrum, size)[half: half + fine_nm.size]
        return np.interp(grid_nm, fine_nm, np.maximum(smoothed, 0.0), left=0.0, right=0.0)
