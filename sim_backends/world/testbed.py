"""The one simulated testbed that every emulated instrument reads and drives."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim_backends.world.laser import TunableLaser


@dataclass
class Testbed:
    """The physical world behind the emulators: its devices, and the random source of its noise."""

    seed: int = 1
    pump: TunableLaser = field(default_factory=TunableLaser)
    aux: TunableLaser = field(default_factory=lambda: TunableLaser(wavelength_m=1549.0e-9))

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
