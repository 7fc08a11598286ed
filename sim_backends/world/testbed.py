"""The one simulated testbed that every emulated instrument reads and drives.

Time: the world keeps its own clock (monotonic seconds by default; tests inject a fake one).
Emulators call ``sync()`` before they read or write, which advances every device's dynamics from
the last sync to now, in the order light and heat flow. Nothing ticks in the background, so the
world is deterministic for a given clock and seed.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from sim_backends.world.awg import ArbitraryWaveformGenerator
from sim_backends.world.counters import CountingSystem, DetectorInput, SinglePhotonDetector
from sim_backends.world.edfa import Edfa
from sim_backends.world.laser import TunableLaser, linear_segments
from sim_backends.world.light import Light
from sim_backends.world.modulator import MbxBiasController
from sim_backends.world.qkd_feed import DEFAULT_RF_DRIVER_GAIN, QkdFeed
from sim_backends.world.qkd_link import QkdLink, Receiver
from sim_backends.world.resonator import Microresonator, ResonatorParams
from sim_backends.world.tec import TecMount
from sim_backends.world.thermal import AuxAmplifier


@dataclass(frozen=True)
class QkdSystem:
    """One QKD system of the testbed: its DEMUX channel, the intensities its attenuator and IM2
    are set up for, the gains of its RF drivers (by AWG channel), Bob's receiver, and the model of
    each of its SPDs (on inputs 1, 2 of the system's own time controller)."""

    channel: int
    intensities: tuple[float, float, float] = (0.50, 0.16, 0.008)
    receiver: Receiver = field(default_factory=Receiver.seed_tr1)
    detector: SinglePhotonDetector = field(default_factory=SinglePhotonDetector)
    rf_driver_gain: Mapping[int, float] = field(default_factory=lambda: DEFAULT_RF_DRIVER_GAIN)


@dataclass
class Testbed:
    """The physical world behind the emulators: its devices, clock and random source."""

    seed: int = 1
    clock: Callable[[], float] = time.monotonic
    pump: TunableLaser = field(default_factory=TunableLaser)
    aux: TunableLaser = field(default_factory=lambda: TunableLaser(wavelength_m=1549.0e-9))
    edfa: Edfa = field(default_factory=Edfa)  # the 3.5 W booster, seeded by the pump laser
    aux_amp: AuxAmplifier = field(default_factory=AuxAmplifier)  # the aux booster, fixed 3.2 W
    device: ResonatorParams = field(default_factory=ResonatorParams)  # the chip (seed's default)
    resonator: Microresonator = field(init=False)  # the microring: reduced model, LLE-calibrated
    tec: TecMount = field(init=False)  # the chip mount on its Peltier, with the controller's loop
    # The MBX holds the first system's IM2, whose bias drifts under it; the other IM2s are held
    # at their peak without drift (their controllers are not modelled).
    qkd_systems: tuple[QkdSystem, ...] = (QkdSystem(31),)
    qkd: QkdLink = field(init=False)  # DEMUX, transmitters, fibre, receivers
    awgs: dict[int, ArbitraryWaveformGenerator] = field(init=False)  # per system, by channel
    bias: MbxBiasController = field(init=False)  # the MBX on the first system's IM2
    countings: dict[int, CountingSystem] = field(init=False)  # per system: SPDs, time controller
    qkd_feed: QkdFeed = field(init=False)  # the AWGs' patterns through the link, as photon flux
    #: The tunable bandpass after the EDFA, set on the pump (assumed, as on DKS benches): without
    #: it the amplifier's ASE (~ 1e-13 mW/Hz at 3.5 W) passes the chip into every DEMUX channel,
    #: a few per cent of a comb line's power, and, broadband and unpolarised, raises the QBER.
    pump_filter_width_hz: float = 125e9  # ~ 1 nm
    pump_filter_floor_db: float = 40.0
    osa_tap: float = 0.1  # fraction of the through-port light split to the OSA (-10 dB), assumed
    power_meter_tap: float = 0.01  # and to the power meter (watts would saturate it), assumed
    comb_override: Light | None = None  # test seam: light at Alice's DEMUX instead of the chip's

    def __post_init__(self) -> None:
        self.tec = TecMount(self.rng_for("tec"))
        systems = self.qkd_systems
        self.qkd = QkdLink.build(self.rng_for("qkd"),
                                 {s.channel: (s.intensities, s.receiver) for s in systems})
        self.bias = MbxBiasController(self.qkd.transmitters[systems[0].channel].im2,
                                      self.rng_for("bias"))
        self.awgs = {s.channel: ArbitraryWaveformGenerator() for s in systems}
        # Each system's SPDs on inputs 1 (and 2) of its own time controller (qkd_feed.py).
        self.qkd_feed = QkdFeed(
            self.qkd, self.awgs,
            {(s.channel, d): d + 1 for s in systems for d in range(s.receiver.detectors)},
            {s.channel: s.rf_driver_gain for s in systems})
        self.countings = {s.channel: self._counting(s) for s in systems}
        self.resonator = Microresonator(self.device, rng=self.rng_for("resonator"))
        _ = self.resonator.calibration  # the LLE table now (~ 1.5 s), not inside a sync
        self._drive_resonator()
        self.time_s = self.clock()

    @property
    def awg(self) -> ArbitraryWaveformGenerator:
        """The first system's AWG."""
        return self.awgs[self.qkd_systems[0].channel]

    @property
    def counting(self) -> CountingSystem:
        """The first system's time controller and SPDs."""
        return self.countings[self.qkd_systems[0].channel]

    def _counting(self, system: QkdSystem) -> CountingSystem:
        name = "counting" if system is self.qkd_systems[0] else f"counting.{system.channel}"
        spds = {d + 1: DetectorInput(dataclasses.replace(system.detector))
                for d in range(system.receiver.detectors)}
        inputs = {n: spds.get(n, DetectorInput()) for n in range(1, 5)}
        return CountingSystem(self.rng_for(name), inputs,
                              functools.partial(self.qkd_feed.flux, system.channel))

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

    def _drive_resonator(self) -> None:
        """The ring's inputs as they are now: EDFA and aux-booster light, laser sweeps, mount."""
        ring = self.resonator
        ring.pump = self._filtered_pump()
        ring.pump_sweep_m_per_s = self.pump.sweep_rate_m_per_s
        ring.aux = self.aux_amp.output(Light.line(self.aux.frequency_hz,
                                                  self.aux.emitted_power_mw))
        ring.aux_sweep_m_per_s = self.aux.sweep_rate_m_per_s
        ring.mount_c = self.tec.temperature_c

    def _filtered_pump(self) -> Light:
        """The EDFA's output after the pump bandpass, which is tuned to the pump laser."""
        return self.edfa.amplified().bandpass(self.pump.frequency_hz, self.pump_filter_width_hz,
                                              self.pump_filter_floor_db)

    def _advance(self, dt_s: float) -> None:
        """Integrate the dynamics over ``dt_s``: the mount, then per laser-sweep segment the
        amplifier and the ring, then the QKD side. The mount takes the ring's heat of the last
        sync (its time constant is ~ 20 s) and the ring its temperature path over dt_s."""
        ring = self.resonator
        mount_c = self.tec.temperature_c
        self.tec.heat_load_w = ring.heat_load_w
        self.tec.advance(dt_s)
        mount_rate = (self.tec.temperature_c - mount_c) / dt_s
        for piece in linear_segments(dt_s, self.pump, self.aux):
            self.edfa.seed = Light.line(self.pump.frequency_hz, self.pump.emitted_power_mw)
            before = self._filtered_pump()
            self.edfa.advance(piece)
            self._drive_resonator()
            after_mw = ring.pump.line_power_mw.max(initial=0.0)
            ring.pump_ramp_mw_per_s = (after_mw - before.line_power_mw.max(initial=0.0)) / piece
            ring.pump = before
            ring.mount_c, ring.mount_rate_c_per_s = mount_c, mount_rate
            ring.advance(piece)
            mount_c += mount_rate * piece
            self.pump.advance(piece)
            self.aux.advance(piece)
        self.edfa.seed = Light.line(self.pump.frequency_hz, self.pump.emitted_power_mw)
        self._drive_resonator()
        ring.pump_ramp_mw_per_s = ring.mount_rate_c_per_s = 0.0
        for awg in self.awgs.values():
            awg.advance(dt_s)
        lights = self.qkd.channel_light(self.qkd_comb())
        self.bias.modulator.input_light = lights[self.qkd_systems[0].channel]
        self.bias.advance(dt_s)  # advances the modulator's bias drift too
        self.qkd_feed.update(lights, dt_s)  # the patterns, attenuators and gate classes, as flux
        for counting in self.countings.values():
            counting.advance(dt_s)

    def through_port(self) -> Light:
        """The light leaving the chip's through port (after the PBS that removes the aux)."""
        return self.resonator.through_port()

    def qkd_comb(self) -> Light:
        """The light at Alice's DEMUX input: the through port, or ``comb_override`` when set
        (a seam for tests that need a comb without driving the ring into a soliton)."""
        return self.through_port() if self.comb_override is None else self.comb_override

    def calibrate_qkd_attenuators(self) -> None:
        """Set the AWG-driven transmitters' attenuators again on the light present now (it is
        set by itself once per new pattern: sim_backends/world/qkd_feed.py)."""
        self.qkd_feed.calibrate_attenuators(self.qkd.channel_light(self.qkd_comb()))

    def power_meter_light(self) -> Light:
        """What reaches the power meter: a tap of the through port (comb lines unresolved,
        which a broadband detector does not need)."""
        return self.resonator.through_port(resolve_comb=False).scaled(self.power_meter_tap)

    def osa_light(self) -> Light:
        """What reaches the OSA: a tap of the through port."""
        return self.through_port().scaled(self.osa_tap)
