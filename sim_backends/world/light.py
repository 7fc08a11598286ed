"""Light as the instruments see it: discrete lines plus a smooth background.

A comb, a laser or an amplified laser is a set of narrow lines (frequency, power) on top of a
broadband background (amplified spontaneous emission, or the noisy continuum of a chaotic comb)
given as a power spectral density. Power meters integrate it; OSAs render it with their
resolution bandwidth and noise floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from sim_backends.world.laser import C_M_PER_S

FloatArray = NDArray[np.float64]


def _empty() -> FloatArray:
    return np.zeros(0)


@dataclass(frozen=True)
class Light:
    """Optical spectrum: lines at ``line_frequency_hz`` with ``line_power_mw``, plus background.

    The background is a power spectral density (mW/Hz) sampled at ``background_frequency_hz``
    (ascending) and linearly interpolated between samples, zero outside them.
    """

    line_frequency_hz: FloatArray = field(default_factory=_empty)
    line_power_mw: FloatArray = field(default_factory=_empty)
    background_frequency_hz: FloatArray = field(default_factory=_empty)
    background_mw_per_hz: FloatArray = field(default_factory=_empty)

    @property
    def total_power_mw(self) -> float:
        """All the power: what a broadband power meter reads."""
        background = float(np.trapezoid(self.background_mw_per_hz, self.background_frequency_hz)) \
            if self.background_frequency_hz.size > 1 else 0.0
        return float(self.line_power_mw.sum()) + background

    @property
    def line_wavelength_nm(self) -> FloatArray:
        return C_M_PER_S / self.line_frequency_hz * 1e9

    def scaled(self, factor: float) -> Light:
        """The same light after a flat gain or loss (``factor`` in linear power units)."""
        return Light(self.line_frequency_hz, self.line_power_mw * factor,
                     self.background_frequency_hz, self.background_mw_per_hz * factor)

    def bandpass(self, centre_hz: float, width_hz: float, floor_db: float) -> Light:
        """The same light through a flat-top bandpass (3rd-order Butterworth, ``width_hz`` at
        -3 dB) that lets ``floor_db`` below the peak through everywhere else."""

        def transmission(f: FloatArray) -> FloatArray:
            shape = 1.0 / (1.0 + (2.0 * (f - centre_hz) / width_hz) ** 6)
            return np.maximum(shape, 10.0 ** (-floor_db / 10.0))

        return Light(self.line_frequency_hz, self.line_power_mw * transmission(
            self.line_frequency_hz), self.background_frequency_hz,
            self.background_mw_per_hz * transmission(self.background_frequency_hz))

    @staticmethod
    def line(frequency_hz: float, power_mw: float) -> Light:
        """A single narrow line (a laser)."""
        return Light(np.array([frequency_hz]), np.array([power_mw]))

    @staticmethod
    def dark() -> Light:
        return Light()
