"""The one simulated testbed that every emulated instrument reads and drives.

Time: the world keeps its own clock (monotonic seconds by default; tests inject a fake one).
Emulators call ``sync()`` before they read or write, which advances every device's dynamics from
the last sync to now, in the order light and heat flow. Nothing ticks in the background, so the
world is deterministic for a given clock and seed.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sim_backends.world.awg import ArbitraryWaveformGenerator
from sim_backends.world.counters import CountingSystem
from sim_backends.world.edfa import Edfa
from sim_backends.world.laser import TunableLaser
from sim_backends.world.light import Light
from sim_backends.world.modulator import MbxBiasController
from sim_backends.world.qkd_link import QkdLink
from sim_backends.world.tec import TecMount


@dataclass
class Testbed:
    """The physical world behind the emulators: its devices, clock and random source."""

    seed: int = 1
    clock: Callable[[], float] = time.monotonic
    pump: TunableLaser = field(default_factory=TunableLaser)
    aux: TunableLaser = field(default_factory=lambda: TunableLaser(wavelength_m=1549.0e-9))
    edfa: Edfa = field(default_factory=Edfa)  # the 3.5 W booster, seeded by the pump laser
    awg: ArbitraryWaveformGenerator = field(default_factory=ArbitraryWaveformGenerator)
    tec: TecMount = field(init=False)  # the chip mount on its Peltier, with the controller's loop
    qkd: QkdLink = field(init=False)  # DEMUX, transmitters, fibre, receivers (TR1 on C31, TR2 C32)
    bias: MbxBiasController = field(init=False)  # the MBX on TR1's decoy modulator (IM2)
    counting: CountingSystem = field(init=False)  # Bob's detectors and the time controller
    osa_tap: float = 0.01  # fraction of the through-port light split to the OSA (-20 dB), assumed

    def __post_init__(self) -> None:
        self.tec = TecMount(self.rng_for("tec"))
        self.qkd = QkdLink.seed(self.rng_for("qkd"))
        tr1 = next(iter(self.qkd.transmitters.values()))
        self.bias = MbxBiasController(tr1.im2, self.rng_for("bias"))
        self.counting = CountingSystem(self.rng_for("counting"))
        self.time_s = self.clock()

    def rng_for(self, device: str) -> np.random.Generator:
        """An independent random stream per device: adding a device changes no other's noise."""
        return np.random.default_rng([self.seed, zlib.crc32(device.encode())])

    def sync(self) -> float:
        """Advance every device to the clock's present; return the world time in seconds."""
        now = self.clock()
        dt_s = now - self.time_s
        if dt_s > 0:
            self._advance(dt_s)
            self.time_s = now
        return self.time_s

    def _advance(self, dt_s: float) -> None:
        """Integrate the dynamics over ``dt_s``: sources, then amplifier, ring, and heat."""
        self.edfa.seed = Light.line(self.pump.frequency_hz, self.pump.emitted_power_mw)
        self.edfa.advance(dt_s)
        self.awg.advance(dt_s)
        channel, modulator = next(iter(self.qkd.transmitters.items()))[0], self.bias.modulator
        modulator.input_light = self.qkd.channel_light(self.through_port())[channel]
        self.bias.advance(dt_s)  # advances the modulator's bias drift too
        self.counting.advance(dt_s)
        self.tec.advance(dt_s)  # heat last: the ring reads the mount temperature

    def through_port(self) -> Light:
        """The light leaving the chip's through port (after the PBS that removes the aux)."""
        return self.edfa.amplified()

    def osa_light(self) -> Light:
        """What reaches the OSA: a tap of the through port."""
        return self.through_port().scaled(self.osa_tap)
