"""Bob's counts: the time controller's combiners as wired for QKD, and a channel's tally.

Wiring (instruments.toml documents it; the simulated testbed wires its ID1000s the same way)
------------------------------------------------------------------------------------------
Decoy-state estimation needs, per intensity class k and basis B, the sifted detections (Alice
and Bob both in B, Bob clicked) and the errors among them. That is 3 x 2 x 2 = 12 numbers, one
per combiner of an ID1000 (``COMBINERS``): ``tsco<n>`` counts the clicks of the receiver's SPDs
inside the windows of one marker class (intensity, basis, correct or error), the markers coming
from the transmitter's pattern and Bob's basis choices. With one SPD (four-phase decoder) a click
is an error when Bob's phase setting differs from Alice's bit; with two, when the detector that
clicked differs from it. Each ``read_counts`` window is ``integration_time_s`` long in the
instrument's time, so Alice sent ``integration_time_s x clock x share_k`` gates of class k in it.

The gating by class is an idealisation the design notes ask for (instruments.md, ID1000): an
M8195A marker edge needs 128 samples (2 ns), so a real bench marks frames, not 1 GHz slots, and
sorts time tags in software; the counts that reach the estimator are the same.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from labd.qkd.estimation import BasisCounts, BlockCounts, ClassCounts


class SiftedClass(NamedTuple):
    """What one combiner counts: sifted clicks of one intensity class and basis, errors or not."""

    intensity: int  # 0 mu, 1 nu1, 2 nu2
    basis: int  # 0 X, 1 Y
    error: bool


#: The combiners' wiring: tsco1 mu X correct, tsco2 mu X error, tsco3 mu Y correct, ...
COMBINERS: Mapping[str, SiftedClass] = {
    f"tsco{n}": SiftedClass(*wiring)
    for n, wiring in enumerate(itertools.product(range(3), range(2), (False, True)), 1)}


def _zeros(*shape: int) -> NDArray[np.float64]:
    return np.zeros(shape)


@dataclass
class Tally:
    """One channel's counts over the run: gates sent per class, and per class and basis the
    sifted detections and their errors."""

    sent: NDArray[np.float64] = field(default_factory=lambda: _zeros(3))
    detections: NDArray[np.float64] = field(default_factory=lambda: _zeros(3, 2))
    errors: NDArray[np.float64] = field(default_factory=lambda: _zeros(3, 2))
    windows: int = 0

    def add(self, counts: Mapping[str, int], sent_gates: Sequence[float]) -> None:
        """Add one counting window: the combiners' counts and the gates sent per class."""
        missing = sorted(set(COMBINERS) - set(counts))
        if missing:
            raise KeyError(f"the counter has no {', '.join(missing)}: wire the combiners as "
                           "instruments.toml [qkd] describes")
        for name, (k, basis, error) in COMBINERS.items():
            self.detections[k, basis] += counts[name]
            if error:
                self.errors[k, basis] += counts[name]
        self.sent += np.asarray(sent_gates, dtype=float)
        self.windows += 1

    def block(self, intensities: Sequence[float]) -> BlockCounts | None:
        """The tally as the estimator's block (None before the first window)."""
        if self.windows == 0:
            return None
        classes = [
            ClassCounts(intensity=float(k), sent=float(self.sent[i]),
                        x=BasisCounts(float(self.detections[i, 0]), float(self.errors[i, 0])),
                        y=BasisCounts(float(self.detections[i, 1]), float(self.errors[i, 1])))
            for i, k in enumerate(intensities)]
        return BlockCounts(*classes)
