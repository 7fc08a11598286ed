"""What Bob's detectors see: the QKD link driven by the pattern the AWG actually plays.

The Testbed calls ``QkdFeed.update`` once per sync with the light at each transmitter's input (the
comb after Alice's DEMUX); ``QkdFeed.flux(channel, input)`` is then the photon flux of that
channel's ``CountingSystem``: per time-controller input, the gate classes arriving at the detector
wired there. The counting system draws the clicks from it in aggregate (Poisson and multinomial
per class and stretch of time, never per pulse: `counters`).

Pattern
-------
Each QKD system has its own AWG (``QkdFeed.awgs``, by ITU channel) driving its transmitter in DAC
mode FOUR: channel 1 IM1, 2 the global phase PM, 3 the encoding PM, 4 IM2 (``AWG_DRIVE_CHANNELS``,
as ``labd.qkd.patterns.AWG_CHANNEL``). A transmitter sends a pattern while its AWG plays all four
(running, arbitrary mode, outputs on, segments of one length); otherwise it sends nothing the
receiver gates on (channels of different lengths, which would drift against each other, are not
modelled). All transmitters emitting at a sync enter the gate classes together, so each receiver
sees the others' crosstalk (`QkdLink.gate_classes`). The voltage at a modulator is the AWG output
(sample x amplitude / 2) times the RF driver's gain (``rf_driver_gain`` per system, V per V,
assumed: ``DEFAULT_RF_DRIVER_GAIN`` makes labd's default TR1 calibration, ``rf_gain_v`` =
amplitude / 2 x gain, exact at the AWG's default 0.5 Vpp).

The pattern is reduced once (`Transmitter.pattern_optics`, labels decoded from the waveforms and
the modulators' state, ~ 0.5 us per sample: ~ 0.5 s for 2^14 slots, inside the sync that first
sees it) and cached: a sync whose four playing segments are the same objects at the same
amplitudes and gains as the last, the AWG not restarted in between, reuses it without touching
the samples; otherwise the segments' CRC-32 (~ 1 ms per MB) looks the reduction up by content
(``_CACHED_PATTERNS`` kept), so an AWG stopped and restarted on the same pattern is not decoded
again, and a segment rewritten in place (possible only while stopped) is.

Attenuator
----------
Set on each new pattern, on the light present, like an operator who sets the attenuator once on
the live comb for the pattern just loaded (`Transmitter.calibrate_attenuator`): at the first
sync where the pattern plays and any light reaches the transmitter. It then stays fixed: comb
power, IM bias drift or a later change of light move the intensities. Until the first
calibration the transmitter sends nothing; a new pattern in the dark keeps the old setting until
light comes. The first light may not be the comb the operator meant (e.g. pump leaking through
the DEMUX before a soliton forms): ``calibrate_attenuators`` sets it again on demand.

Gate classes and their names
----------------------------
`QkdLink.gate_classes` gives, per receiver, every (intensity, Alice basis, Alice bit, Bob basis,
Bob setting) with its share of the 1 GHz gates and the mean photons per gate at each detector.
A class is named ``"<intensity>.<Alice basis>.<Alice bit>.<Bob basis><Bob setting>"``, e.g.
``"mu.X.0.X0"`` (``class_name``); Bob's bit on detector d is ``setting XOR d``, so on TR1's one
SPD (detector 0, four-phase) a sifted click is an error when the Alice bit differs from the
setting. ``detector_inputs`` wires (ITU channel, detector) to an input of that channel's time
controller (the Testbed puts detector d on input d + 1). ``add_class_counters`` adds a world-side
gated counter per class and detector (for tests); the ID1000's combiners count what the daemon
needs, each the union of the (input, gate class) pairs ``sifted_gates`` lists for one intensity,
basis and outcome (error or not).

What the estimator should expect (counters.py's detector model, not this module's choice)
------------------------------------------------------------------------------------------
Dark counts and afterpulses fall at random times, in a class's gates by the windows' share of
time (gate rate x 0.5 ns): the background yield per gate is dark rate x window (2.5e-7 per SPD at
500 Hz), and afterpulses, p_ap x all registered clicks, spread over all classes by gate share
instead of following the class that caused them (labd.qkd.estimation's R_k = Q_k (1 + p_ap)).
At the default p_ap = 1 % that lifts TR1's nu2 gain by ~ 25 % and its QBER to ~ 14 %.

Per-sync cost
-------------
Every sync: the AWG check (a few us), `Transmitter.emit` on the present light and IM state and a
comparison, ~ 0.1 ms in all. The gate classes and the flux table (~ 0.3 ms more) are recomputed
only when the pattern or the attenuator changed, when any class's photon number per pulse or its
phasor moved by more than ``tolerance`` (relative, default 1e-3) since the last recompute, or at
least every ``refresh_s`` (default 1 s of world time, for what the emission does not show: the
comb's spectral shape, receiver settings). Drawing the clicks of 48 classes and keeping the class
counters costs the counting system ~ 0.05 ms more per sync. The flux used over a sync's stretch is
the state at its end. (Measured on a shared 2-core machine: a 5 ms sync of the whole world takes
~ 0.69 ms with a pattern playing, ~ 0.49 ms without.)
"""

from __future__ import annotations

import itertools
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from sim_backends.world.awg import ArbitraryWaveformGenerator, Segment
from sim_backends.world.counters import ClassFlux, Counter, CountingSystem
from sim_backends.world.light import Light
from sim_backends.world.qkd_link import (
    ALICE_CLASSES,
    INTENSITY_NAMES,
    Emission,
    GateClasses,
    ModulatorDrives,
    PatternOptics,
    QkdLink,
    Receiver,
    Transmitter,
)

#: AWG channels of IM1, the global-phase PM, the encoding PM and IM2 (DAC mode FOUR), the order of
#: `ModulatorDrives`' waveforms; as labd.qkd.patterns.AWG_CHANNEL.
AWG_DRIVE_CHANNELS = (1, 2, 3, 4)
AWG_DEFAULT_HALF_SWING_V = 0.25  # the M8195A's default 0.5 Vpp: volts per sample unit
#: RF driver gains (V at the modulator per V at the AWG output), assumed: labd's TR1 calibration
#: (IM1 5.0, PMs 4 x 127 / 120, IM2 7.505 V per AWG unit) at the AWG's default amplitude.
DEFAULT_RF_DRIVER_GAIN: Mapping[int, float] = {
    1: 5.0 / AWG_DEFAULT_HALF_SWING_V,
    2: 4.0 * 127 / 120 / AWG_DEFAULT_HALF_SWING_V,
    3: 4.0 * 127 / 120 / AWG_DEFAULT_HALF_SWING_V,
    4: 7.505 / AWG_DEFAULT_HALF_SWING_V,
}
_BASES = "XY"
_CACHED_PATTERNS = 4


def class_name(intensity: int, alice_basis: int, alice_bit: int, bob_basis: int,
               bob_setting: int) -> str:
    """The gate class's name, e.g. ``"mu.X.0.X0"`` (see the module docstring)."""
    return (f"{INTENSITY_NAMES[intensity]}.{_BASES[alice_basis]}.{alice_bit}."
            f"{_BASES[bob_basis]}{bob_setting}")


def receiver_class_names(receiver: Receiver) -> list[str]:
    """Every gate class of ``receiver``, in the row order of `GateClasses`."""
    return [class_name(*row) for row in
            itertools.product(*map(range, ALICE_CLASSES), range(2), receiver.settings)]


def gate_class_names(classes: GateClasses) -> list[str]:
    """The name of each row of ``classes``."""
    return [class_name(*map(int, row)) for row in zip(
        classes.intensity, classes.alice_basis, classes.alice_bit, classes.bob_basis,
        classes.bob_setting, strict=True)]


@dataclass(frozen=True)
class _Playing:
    """What the AWG plays on the four drive channels now: the segments and their scaling."""

    segments: tuple[Segment, ...]
    volts_per_unit: tuple[float, ...]  # AWG amplitude / 2 x RF driver gain
    sample_rate_hz: float

    def same_as(self, other: _Playing | None) -> bool:
        return (other is not None and all(map(_is, self.segments, other.segments))
                and self.volts_per_unit == other.volts_per_unit
                and self.sample_rate_hz == other.sample_rate_hz)

    def fingerprint(self) -> tuple[object, ...]:
        """The content: CRC-32 and length of each segment's codes, and the scaling."""
        return (tuple((zlib.crc32(np.ascontiguousarray(s.codes).data), s.codes.size)
                      for s in self.segments), self.volts_per_unit, self.sample_rate_hz)

    def drives(self) -> ModulatorDrives:
        """The voltages at the modulators over one period (codes / 127 x volts per unit)."""
        im1, pm_random, pm_encode, im2 = (
            s.codes.astype(np.float64) * (v / 127.0)
            for s, v in zip(self.segments, self.volts_per_unit, strict=True))
        return ModulatorDrives(self.sample_rate_hz, im1, pm_random, pm_encode, im2)


def _is(a: object, b: object) -> bool:
    return a is b


@dataclass
class AwgDrive:
    """One transmitter and the AWG driving it: the pattern it plays, reduced and cached."""

    transmitter: Transmitter
    awg: ArbitraryWaveformGenerator
    rf_driver_gain: Mapping[int, float]
    optics: PatternOptics | None = field(default=None, init=False)
    uncalibrated: bool = field(default=False, init=False)  # a new pattern awaits light
    decodes: int = field(default=0, init=False)  # patterns reduced so far (diagnostic)
    _playing: _Playing | None = field(default=None, init=False)
    _patterns: OrderedDict[tuple[object, ...], PatternOptics] = field(
        default_factory=OrderedDict, init=False)

    def follow(self, dt_s: float) -> bool:
        """Follow the AWG over ``dt_s``; True if the pattern changed (or stopped)."""
        optics = self._pattern(dt_s)
        if optics is self.optics:
            return False
        self.optics, self.uncalibrated = optics, optics is not None
        return True

    def _pattern(self, dt_s: float) -> PatternOptics | None:
        """The reduced pattern the AWG plays now, None if it plays none (see the docstring)."""
        playing = self._now_playing()
        if playing is None:
            self._playing = None
            return None
        restarted = self.awg.played_for_s <= dt_s  # started since the last update
        if playing.same_as(self._playing) and not restarted and self.optics is not None:
            return self.optics
        self._playing = playing
        key = playing.fingerprint()
        optics = self._patterns.get(key)
        if optics is None:
            try:
                optics = self.transmitter.pattern_optics(playing.drives())
            except ValueError:  # not whole samples per slot or slots per segment
                return None
            self.decodes += 1
            self._patterns[key] = optics
            while len(self._patterns) > _CACHED_PATTERNS:
                self._patterns.popitem(last=False)
        self._patterns.move_to_end(key)
        return optics

    def _now_playing(self) -> _Playing | None:
        awg = self.awg
        segments, scale = [], []
        for channel in AWG_DRIVE_CHANNELS:
            if not _plays(awg, channel):
                return None
            source = awg.dac_mode.source_channel(channel)
            assert source is not None
            segment = awg.segments[source][awg.selected_segment[source]]
            segments.append(segment)
            scale.append(awg.amplitude_vpp[channel] / 2.0 * self.rf_driver_gain[channel])
        if len({s.codes.size for s in segments}) != 1:
            return None
        return _Playing(tuple(segments), tuple(scale), awg.sample_rate_hz)


@dataclass
class QkdFeed:
    """The QKD link's gate classes, from each AWG's pattern, as the counting systems' flux."""

    link: QkdLink
    awgs: Mapping[int, ArbitraryWaveformGenerator]  # ITU channel -> AWG driving its transmitter
    detector_inputs: dict[tuple[int, int], int]  # (ITU channel, detector) -> controller input
    rf_driver_gain: Mapping[int, Mapping[int, float]] = field(default_factory=dict)  # per channel
    tolerance: float = 1e-3
    refresh_s: float = 1.0
    drives: dict[int, AwgDrive] = field(init=False)
    gate_classes: dict[int, GateClasses] = field(default_factory=dict, init=False)
    emissions: dict[int, Emission] = field(default_factory=dict, init=False)
    recomputes: int = field(default=0, init=False)  # gate-class recomputes so far (diagnostic)
    _stale: bool = field(default=True, init=False)
    _age_s: float = field(default=0.0, init=False)
    _flux: dict[tuple[int, int], dict[str, ClassFlux]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.drives = {
            channel: AwgDrive(self.link.transmitters[channel], awg,
                              self.rf_driver_gain.get(channel, DEFAULT_RF_DRIVER_GAIN))
            for channel, awg in self.awgs.items()}

    @property
    def decodes(self) -> int:
        """Patterns reduced so far, all transmitters (diagnostic)."""
        return sum(drive.decodes for drive in self.drives.values())

    # --- what the counting systems read -------------------------------------------------------

    def flux(self, channel: int, input_: int) -> Mapping[str, ClassFlux]:
        """The gate classes reaching the detector on input ``input_`` of ``channel``'s receiver."""
        return self._flux.get((channel, input_), {})

    def add_class_counters(self, channel: int,
                           counting: CountingSystem) -> dict[tuple[int, str], Counter]:
        """A gated counter per gate class on every detector of ``channel``, by (input, class)."""
        counters = {}
        for (wired, _), input_ in sorted(self.detector_inputs.items()):
            if wired == channel:
                for name in receiver_class_names(self.link.receivers[channel]):
                    counters[input_, name] = counting.add_counter(input_, name)
        return counters

    def sifted_gates(self, channel: int, intensity: int, basis: int,
                     error: bool) -> tuple[tuple[int, str], ...]:
        """(input, gate class) pairs whose clicks are sifted ``basis`` detections of
        ``intensity`` that are errors (``error``) or not: Alice's and Bob's bases agree, and
        Bob's bit (setting XOR detector) differs from Alice's bit, or not."""
        receiver = self.link.receivers[channel]
        return tuple(
            (input_, class_name(intensity, basis, bit, basis, setting))
            for (wired, detector), input_ in sorted(self.detector_inputs.items())
            if wired == channel
            for bit in range(2) for setting in receiver.settings
            if (bit != setting ^ detector) == error)

    # --- advancing ---------------------------------------------------------------------------

    def update(self, lights: Mapping[int, Light], dt_s: float) -> None:
        """Follow the AWGs, the light at the transmitters (``lights``, per ITU channel) and the
        modulators' state after ``dt_s`` more seconds; recompute the flux if needed."""
        self._age_s += dt_s
        emissions = {}
        for channel, drive in self.drives.items():
            self._stale |= drive.follow(dt_s)
            if drive.optics is None:
                continue
            transmitter, light = drive.transmitter, lights[channel]
            if drive.uncalibrated and light.total_power_mw > 0.0:
                transmitter.calibrate_attenuator(light, drive.optics)
                drive.uncalibrated, self._stale = False, True
            if transmitter.attenuation_db is not None:
                emissions[channel] = transmitter.emit(light, drive.optics)
        if not emissions:
            self._go_dark()
        elif (self._stale or self._age_s >= self.refresh_s
              or emissions.keys() != self.emissions.keys()
              or any(map(self._moved, emissions.items()))):
            self._recompute(emissions)

    def calibrate_attenuators(self, lights: Mapping[int, Light]) -> None:
        """Set the attenuators again on ``lights`` now (an operator's action)."""
        for channel, drive in self.drives.items():
            if drive.optics is not None:
                drive.transmitter.calibrate_attenuator(lights[channel], drive.optics)
                drive.uncalibrated, self._stale = False, True

    def invalidate(self) -> None:
        """Recompute the gate classes at the next update (e.g. after changing a receiver)."""
        self._stale = True

    # --- internals ---------------------------------------------------------------------------

    def _go_dark(self) -> None:
        if self._flux or self.gate_classes:
            self._flux, self.gate_classes, self.emissions = {}, {}, {}
        self._stale = True

    def _moved(self, item: tuple[int, Emission]) -> bool:
        """Whether any class's photons per pulse or phasor moved beyond the tolerance."""
        channel, emission = item
        last = self.emissions.get(channel)
        if last is None or last.photons.shape != emission.photons.shape:
            return True
        photons = bool(np.any(np.abs(emission.photons - last.photons)
                              > self.tolerance * np.abs(last.photons)))
        return photons or bool(np.any(np.abs(emission.phasor - last.phasor) > self.tolerance))

    def _recompute(self, emissions: dict[int, Emission]) -> None:
        self.emissions = emissions
        self.gate_classes = self.link.gate_classes(emissions)
        self._flux = {}
        for channel, classes in self.gate_classes.items():
            names = gate_class_names(classes)
            rate_hz = classes.clock_hz * classes.gate_fraction
            photons = classes.photons
            for detector in range(classes.detectors):
                input_ = self.detector_inputs.get((channel, detector))
                if input_ is None:
                    continue
                self._flux[channel, input_] = {
                    name: ClassFlux(gate_rate_hz=float(rate), mean_photons=float(n))
                    for name, rate, n in zip(names, rate_hz, photons[:, detector], strict=True)
                    if rate > 0.0}
        self._stale, self._age_s = False, 0.0
        self.recomputes += 1


def _plays(awg: ArbitraryWaveformGenerator, channel: int) -> bool:
    """Whether ``awg.played(channel)`` is not None, without building the samples (it copies
    the whole segment): the same conditions."""
    source = awg.dac_mode.source_channel(channel)
    return (awg.running and awg.function_mode == "ARB" and awg.output_on[channel]
            and source is not None and awg.selected_segment[source] in awg.segments[source])

