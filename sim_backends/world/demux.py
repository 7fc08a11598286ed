"""DWDM (de)multiplexers on the 100 GHz ITU grid, and what they do to a ~49 GHz soliton comb.

Filter model
------------
Each port is a multi-cavity thin-film bandpass filter, power transmission

    T_n(f) = 10^(-IL_n / 10) * max(1 / (1 + (2 (f - f_n) / B)^(2 N)), floor)

a Butterworth (maximally flat, flat-top) passband of 3-dB full width B with N cavities: its skirt
falls 20 N dB per decade of detuning, down to an isolation floor set by stray light. Defaults
B = 60 GHz, N = 3, floor -55 dB: 0.5-dB width 36 GHz (the ITU passband, +-0.11 nm = +-13.7 GHz,
sees < 0.05 dB), -13.5 dB at the channel edge (+-50 GHz), -31.4 dB at the adjacent channel's centre,
-49.4 dB two channels away. Per port, the centre error f_n - grid (uniform within +-3 GHz) and the
peak insertion loss IL_n (uniform 2.35 to 2.6 dB per unit, so a MUX + DEMUX pair loses 4.7 to
5.2 dB as in the seed) are drawn once from a seeded Generator, or given.

The comb on the grid
--------------------
Comb lines 49 GHz apart walk across the 100 GHz grid by 2 GHz per channel, so every channel holds
one line within +-25 GHz of its centre (its "own" line; two when they sit near +-24.5 GHz) and
shares the line near each of its edges (+-50 GHz, a "guard" line) with its neighbour, which both
ports pass at ~ -13 dB. Near the seed's pump (1556.09 nm) channels C28 to C35 have their own line
within 8 GHz of the centre. Nothing selects one line: a port passes what its filter passes (own
line, guard lines, leak of farther lines), and the transmitter behind it modulates all of it
(`qkd_link`).

Crosstalk, as the seed measured it on the comb (Fig. 2(d)): at the output of port n, the power of
the own lines of channel m relative to the power of port n's own lines (`comb_crosstalk_db`).
Guard lines belong to no channel, so they are not crosstalk between channels here; what they do
to the QKD link (a guard line reaches two receivers) is computed in `qkd_link` from the transfer
functions themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sim_backends.world.laser import C_M_PER_S
from sim_backends.world.light import Light

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

CHANNEL_SPACING_HZ = 100e9
#: ITU-T G.694.1 100 GHz grid, in the common numbering f = 190 THz + n x 100 GHz (C31 = 193.1 THz).
ITU_ORIGIN_HZ = 190.0e12
#: Lines within this distance of a channel's grid frequency are that channel's own lines.
OWN_LINE_HALF_WIDTH_HZ = CHANNEL_SPACING_HZ / 4
#: A 40-channel C-band unit, C21 (192.1 THz) to C60 (196.0 THz).
C_BAND_40 = tuple(range(21, 61))
#: The seed's pump and single-soliton line spacing.
PUMP_HZ = C_M_PER_S / 1556.09e-9
FSR_HZ = 49e9
#: Fine sampling of a filtered background: points across +-_BACKGROUND_SPAN_BW bandwidths.
_BACKGROUND_POINTS = 801
_BACKGROUND_SPAN_BW = 4.0


def itu_frequency_hz(channel: int) -> float:
    """Grid frequency of ITU channel ``channel`` (100 GHz grid, C31 = 193.1 THz)."""
    return ITU_ORIGIN_HZ + channel * CHANNEL_SPACING_HZ


def seed_comb(line_mw: float = 0.1, pump_excess_db: float = 25.0, fsr_hz: float = FSR_HZ) -> Light:
    """Single-soliton comb as the seed shows it: sech^2 lines (3-dB width 3.2 THz, b = 58 lines,
    design/physics.md) 49 GHz apart, ``line_mw`` at the centre, the pump line 25 dB above."""
    mode = np.arange(-150, 151)
    power = line_mw / np.cosh(math.pi * mode / (2 * 58.0)) ** 2
    power[mode == 0] *= 10 ** (pump_excess_db / 10)
    return Light(np.asarray(PUMP_HZ + mode * fsr_hz, dtype=float), power)


def own_lines(frequency_hz: ArrayLike, channel: int) -> BoolArray:
    """Which lines are ``channel``'s own: within +-25 GHz of its grid frequency."""
    offset = np.asarray(frequency_hz, dtype=float) - itu_frequency_hz(channel)
    return np.abs(offset) <= OWN_LINE_HALF_WIDTH_HZ


@dataclass
class Dwdm:
    """A thin-film DWDM unit (MUX or DEMUX, it is reciprocal): one flat-top port per ITU channel."""

    centre_hz: dict[int, float]
    insertion_loss_db: dict[int, float]
    bandwidth_3db_hz: float = 60e9
    cavities: int = 3
    isolation_floor_db: float = -55.0

    @classmethod
    def draw(
        cls,
        rng: np.random.Generator,
        channels: Iterable[int] = C_BAND_40,
        insertion_loss_range_db: tuple[float, float] = (2.35, 2.6),
        centre_error_hz: float = 3e9,
        bandwidth_3db_hz: float = 60e9,
        cavities: int = 3,
        isolation_floor_db: float = -55.0,
    ) -> Dwdm:
        """A unit as built: per-port centre error and insertion loss drawn once from ``rng``."""
        chans = tuple(channels)
        errors = rng.uniform(-centre_error_hz, centre_error_hz, len(chans))
        losses = rng.uniform(*insertion_loss_range_db, len(chans))
        return cls(
            centre_hz={c: itu_frequency_hz(c) + float(err)
                       for c, err in zip(chans, errors, strict=True)},
            insertion_loss_db={c: float(il) for c, il in zip(chans, losses, strict=True)},
            bandwidth_3db_hz=bandwidth_3db_hz,
            cavities=cavities,
            isolation_floor_db=isolation_floor_db,
        )

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(sorted(self.centre_hz))

    def transmission(self, channel: int, frequency_hz: ArrayLike) -> FloatArray:
        """Linear power transmission of port ``channel`` at ``frequency_hz``."""
        detuning = 2.0 * (np.asarray(frequency_hz, dtype=float) - self.centre_hz[channel])
        shape = 1.0 / (1.0 + (detuning / self.bandwidth_3db_hz) ** (2 * self.cavities))
        floor = 10.0 ** (self.isolation_floor_db / 10.0)
        peak = 10.0 ** (-self.insertion_loss_db[channel] / 10.0)
        return np.asarray(peak * np.maximum(shape, floor), dtype=float)

    def output(self, light: Light, channel: int) -> Light:
        """The light leaving port ``channel`` when ``light`` enters the common port (DEMUX)."""
        lines = light.line_power_mw * self.transmission(channel, light.line_frequency_hz)
        grid, psd = self._filtered_background(light, channel)
        return Light(light.line_frequency_hz, lines, grid, psd)

    def split(self, light: Light, channels: Iterable[int] | None = None) -> dict[int, Light]:
        """DEMUX: the light at each port (all ports unless ``channels`` is given)."""
        return {c: self.output(light, c) for c in (self.channels if channels is None else channels)}

    def _filtered_background(self, light: Light, channel: int) -> tuple[FloatArray, FloatArray]:
        """Background PSD times the port's transmission, resampled finely across the passband."""
        freq = light.background_frequency_hz
        if freq.size < 2:
            return np.zeros(0), np.zeros(0)
        half_span = _BACKGROUND_SPAN_BW * self.bandwidth_3db_hz
        centre = self.centre_hz[channel]
        fine = np.linspace(centre - half_span, centre + half_span, _BACKGROUND_POINTS)
        grid = np.union1d(freq, fine[(fine >= freq[0]) & (fine <= freq[-1])])
        psd = np.interp(grid, freq, light.background_mw_per_hz)
        return grid, psd * self.transmission(channel, grid)


def comb_crosstalk_db(dwdm: Dwdm, comb: Light, port: int, source: int) -> float:
    """Crosstalk of channel ``source`` into ``port`` measured on a comb, as in the seed's Fig. 2(d).

    Power leaving ``port`` that comes from ``source``'s own lines, relative to the power leaving
    ``port`` from its own lines. Both channels must hold at least one comb line of their own.
    """
    freq = comb.line_frequency_hz
    through = comb.line_power_mw * dwdm.transmission(port, freq)
    wanted = float(through[own_lines(freq, port)].sum())
    leaked = float(through[own_lines(freq, source)].sum())
    if wanted <= 0.0 or leaked <= 0.0:
        raise ValueError(f"channels {port} and {source} need comb lines of their own")
    return 10.0 * np.log10(leaked / wanted)


def pair_insertion_loss_db(mux: Dwdm, demux: Dwdm) -> Mapping[int, float]:
    """Peak insertion loss of MUX + DEMUX per channel common to both (the seed: 4.7 to 5.2 dB)."""
    common = sorted(set(mux.centre_hz) & set(demux.centre_hz))
    return {c: mux.insertion_loss_db[c] + demux.insertion_loss_db[c] for c in common}
