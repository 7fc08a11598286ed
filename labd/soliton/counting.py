"""The soliton number from the through-port power, learnt on the chip's own staircases.

physics.md, section 3: N = (P - P_cw(delta)) / P1(delta), P1 ~ sqrt(delta). The power meter
gives P; the OSA gives the detuning, as a soliton's squared sech^2 width (section 2:
b = sqrt(2 delta_omega / D2), so delta ~ w^2), w from the lines' second moment, which the
fringes of several solitons scatter (~ 4 %) but do not bias. P1 and P_cw are learnt on
step-downs that ended in one soliton the OSA confirmed: the plateaus are numbered back from that
one by the heights of the steps between them (the smallest, scaled to a common detuning, is one
soliton; a height is the jump between two readings, not the plateaus' difference, to which the
drift along a plateau adds) and fitted (``SolitonCalibration.fit_levels``). Later sweeps are
then counted from one power level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from labd.soliton.analysis import SolitonCalibration, SolitonCount, count_solitons

CONFIDENT = 0.9  # posterior probability from which a count from power is reported as N
# The fringes of several solitons scatter the moment width by ~ 4 % (N = 2 to 11, random
# positions, 40-line sech^2), and P1 with it (P1 ~ sqrt(delta) ~ w).
WIDTH_SCATTER = 0.04


@dataclass(frozen=True)
class Plateau:
    """One level of the staircase: the OSA's detuning measure, the power meter's level and
    the step that led to it (None for the first)."""

    detuning_ghz2: float  # the moment width squared
    level_mw: float
    step_mw: float | None


@dataclass
class Staircase:
    """The plateaus of one step-down, from the sweep's state to the last one seen."""

    plateaus: list[Plateau] = field(default_factory=list)

    def add(self, width_ghz: float, level_mw: float, step_mw: float | None = None) -> None:
        """A plateau, if the OSA measured a width (it cannot without a comb)."""
        if math.isfinite(width_ghz) and width_ghz > 0:
            self.plateaus.append(Plateau(width_ghz ** 2, level_mw,
                                         step_mw if self.plateaus else None))

    def numbers(self) -> list[int] | None:
        """Soliton numbers of the plateaus if the last holds one; None if the steps disagree
        in sign (not a staircase) or there are fewer than two plateaus."""
        p = self.plateaus
        if len(p) < 2:
            return None
        ref = float(np.median([q.detuning_ghz2 for q in p]))
        heights = np.array([math.nan if q.step_mw is None else
                            q.step_mw / math.sqrt(q.detuning_ghz2 / ref) for q in p[1:]])
        if np.all(heights > 0) == np.all(heights < 0):  # mixed signs, a zero step, or unknown
            return None
        removed = np.maximum(1, np.round(np.abs(heights) / np.abs(heights).min())).astype(int)
        return [1 + int(s) for s in np.r_[np.cumsum(removed[::-1])[::-1], 0]]


def calibrate(staircases: Sequence[Staircase]) -> SolitonCalibration | None:
    """The calibration the numbered plateaus of these staircases give together (one staircase's
    sweep state alone leaves the fit loose where the post-sweep states lie; several pin it)."""
    numbered = [(n, q) for stairs in staircases
                for n, q in zip(stairs.numbers() or [], stairs.plateaus, strict=False)]
    if len({n for n, _ in numbered}) < 2:
        return None
    return SolitonCalibration.fit_levels([n for n, _ in numbered],
                                         [q.detuning_ghz2 for _, q in numbered],
                                         [q.level_mw for _, q in numbered],
                                         p1_rel_error=WIDTH_SCATTER)


def count(calibration: SolitonCalibration, width_ghz: float, level_mw: float
          ) -> SolitonCount | None:
    """N at this level and OSA width, or None where the OSA measured no width."""
    if not (math.isfinite(width_ghz) and width_ghz > 0):
        return None
    return count_solitons(level_mw, width_ghz ** 2, calibration)
