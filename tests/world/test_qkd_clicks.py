"""SPD clicks from the pattern the AWG plays, through the Testbed's QKD wiring (qkd_feed.py).

TR1's pattern (labd.qkd.patterns at the seed's TR1 settings, seeded) is put straight into the
world's AWG (DAC mode FOUR, no socket); the comb is injected at Alice's DEMUX with the Testbed's
``comb_override`` seam (the seed comb of test_demux: 0.1 mW lines 49 GHz apart), since the ring
is never pumped here. For the same reason the ring's LLE table is replaced by a dummy (building
it takes ~ 1.5 s alone and far longer on a loaded machine; nothing here reads it). The decoy
modulator's drift is frozen so that the realised intensities hold over an integration.

Counts are sampled by the counting system in aggregate (gates are never looped over): 10 s of
world time is 1e10 gates. Tolerances: 4 standard errors of the sample (Poisson without dead time;
the renewal-process variance with it), stated at each assertion.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pytest

from labd.qkd import estimation, patterns
from labd.qkd.patterns import TR1, Pattern
from sim_backends.world import resonator
from sim_backends.world import testbed as world_testbed
from sim_backends.world.awg import DacMode, Segment
from sim_backends.world.counters import ClassFlux, Counter, SinglePhotonDetector
from sim_backends.world.demux import seed_comb
from sim_backends.world.light import Light
from sim_backends.world.qkd_feed import AWG_DRIVE_CHANNELS, _plays, class_name
from sim_backends.world.qkd_link import GateClasses

CHANNEL = 31  # TR1
INPUT = 1  # TR1's SPD on the time controller
SEED_QBER = 0.0266
SECONDS = 10.0  # 1e10 gates at 1 GHz


@dataclass
class Clock:
    now_s: float = 0.0

    def __call__(self) -> float:
        return self.now_s


@dataclass
class World:
    testbed: world_testbed.Testbed
    clock: Clock
    singles: Counter
    class_counters: dict[tuple[int, str], Counter]  # a world-side counter per (input, class)

    def step(self, seconds: float) -> None:
        self.clock.now_s += seconds
        self.testbed.sync()

    def integrate(self, seconds: float) -> tuple[int, dict[str, int]]:
        """All clicks of TR1's SPD and the clicks in each gate class over ``seconds``."""
        counters = [self.singles, *self.class_counters.values()]
        for counter in counters:
            counter.integration_time_s = seconds
            counter.restart(self.testbed.counting.time_s)
        self.step(seconds)
        return self.singles.value, {name: c.value for (_, name), c in
                                    self.class_counters.items()}

    @property
    def classes(self) -> GateClasses:
        return self.testbed.qkd_feed.gate_classes[CHANNEL]

    @property
    def detector(self) -> SinglePhotonDetector:
        detector = self.testbed.counting.inputs[INPUT].detector
        assert detector is not None
        return detector


def play(world: World, pattern: Pattern) -> None:
    """Stop the AWG, load the pattern's four drives in mode FOUR, start, sync once."""
    awg = world.testbed.awg
    awg.running = False
    world.step(1e-3)
    awg.dac_mode = DacMode.FOUR
    for drive, channel in patterns.AWG_CHANNEL.items():
        awg.segments[channel] = {1: Segment(np.array(pattern.codes(drive)),
                                            np.zeros(pattern.n_samples, np.uint8))}
        awg.selected_segment[channel] = 1
        awg.output_on[channel] = True
    awg.start()
    world.step(1e-3)


@pytest.fixture(scope="module")
def tr1_pattern() -> Pattern:
    return patterns.generate(TR1.replace(seed=11))


@pytest.fixture(scope="module")
def module_world(tr1_pattern: Pattern) -> Iterator[World]:
    dummy = resonator.SolitonCalibration(1.0, (1.0, 2.0), (1.0, 1.0), 1.0, 0.5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resonator, "soliton_calibration", lambda *_: dummy)
        clock = Clock()
        testbed = world_testbed.Testbed(seed=1, clock=clock)
    testbed.comb_override = seed_comb()
    testbed.bias.modulator.drift_v_per_sqrt_s = 0.0
    world = World(testbed, clock, testbed.counting.add_counter(INPUT),
                  testbed.qkd_feed.add_class_counters(CHANNEL, testbed.counting))
    play(world, tr1_pattern)
    yield world


@pytest.fixture
def world(module_world: World, tr1_pattern: Pattern) -> Iterator[World]:
    """The module's world with TR1's pattern, the seed comb and the default detector."""
    testbed = module_world.testbed
    testbed.comb_override = seed_comb()
    module_world.step(1e-3)
    if testbed.awg.segments[1][1].codes.size != tr1_pattern.n_samples:
        play(module_world, tr1_pattern)  # decoded before: from the cache, attenuator set again
    yield module_world
    detector = module_world.detector
    default = SinglePhotonDetector()
    detector.dead_time_s, detector.afterpulse_probability = (
        default.dead_time_s, default.afterpulse_probability)


def expected_in_gates(world: World, flux: Mapping[str, ClassFlux]) -> dict[str, float]:
    """Mean clicks per class over SECONDS by the detector model (counters.py): photon clicks
    and, at random times, dark counts and afterpulses, all through the non-paralysable dead
    time (live share 1 / (1 + R tau) of the true events at total rate R)."""
    d = world.detector
    window = world.testbed.counting.gate_window_s
    photon_hz = {n: f.gate_rate_hz * -math.expm1(-d.efficiency * f.mean_photons)
                 for n, f in flux.items()}
    true_hz = d.dark_count_rate_hz + sum(photon_hz.values())
    registered_hz = true_hz / (1 + true_hz * d.dead_time_s)
    live = registered_hz / true_hz
    untimed_hz = live * d.dark_count_rate_hz + d.afterpulse_probability * registered_hz
    return {n: SECONDS * (live * photon_hz[n] + untimed_hz * f.gate_rate_hz * window)
            for n, f in flux.items()}


def sifted(classes: GateClasses) -> list[tuple[str, int, bool]]:
    """(class name, intensity, error) of every sifted class of TR1's single SPD."""
    rows = zip(classes.intensity, classes.alice_basis, classes.alice_bit, classes.bob_basis,
               classes.bob_setting, strict=True)
    return [(class_name(*map(int, r)), int(r[0]), bool(r[2] != classes.bob_bit(0)[i]))
            for i, r in enumerate(rows) if r[1] == r[3]]


# --- wiring ------------------------------------------------------------------------------------


def test_the_played_pattern_is_decoded_and_the_attenuator_set_on_the_comb(
    world: World, tr1_pattern: Pattern
) -> None:
    feed = world.testbed.qkd_feed
    assert world.testbed.qkd.fibre.length_km == 25.0
    emission = feed.emissions[CHANNEL]
    record = tr1_pattern.symbols
    sent = np.zeros((3, 2, 2), np.int64)
    np.add.at(sent, (record.intensity, record.basis, record.bit), 1)
    np.testing.assert_array_equal(emission.slots, sent)  # labels decoded from the waveforms
    assert emission.intensity[0] == pytest.approx(0.5, rel=1e-12)  # the attenuator sets mu
    # decoys: the codes' levels, lifted by IM2's 30 dB ER floor (nu2 +6 %, qkd_link.py)
    np.testing.assert_allclose(emission.intensity[1:] / tr1_pattern.expected_intensities[1:],
                               [1.002, 1.061], atol=2e-3)
    flux = feed.flux(CHANNEL, INPUT)
    assert len(flux) == 48 and "mu.X.0.X0" in flux and "nu2.Y.1.X1" in flux
    assert sum(f.gate_rate_hz for f in flux.values()) == pytest.approx(1e9, rel=1e-12)
    assert feed.flux(CHANNEL, 2) == {}  # nothing wired there
    assert set(world.class_counters) == {(INPUT, name) for name in flux}
    for channel in AWG_DRIVE_CHANNELS:  # the shortcut agrees with the AWG's own rule
        assert _plays(world.testbed.awg, channel) == (world.testbed.awg.played(channel)
                                                      is not None)


# --- clicks -------------------------------------------------------------------------------------


def test_signal_qber_and_decoy_gains_from_1e10_gates(world: World) -> None:
    """(a) the seed's signal QBER; (b) Q_k = Y0 + 1 - exp(-eta k) per intensity, eta the chain's
    (detector efficiency x transmittance to both ports / 2 for the one four-phase SPD), k the
    realised intensities, Y0 the dark counts inside a gate. Ideal timing: no dead time, no
    afterpulses (those are the next test's)."""
    detector = world.detector
    detector.dead_time_s, detector.afterpulse_probability = 0.0, 0.0
    flux = dict(world.testbed.qkd_feed.flux(CHANNEL, INPUT))
    classes = world.classes
    _, counts = world.integrate(SECONDS)
    expected = expected_in_gates(world, flux)

    rows = sifted(classes)
    mu_rows = [(n, err) for n, k, err in rows if k == 0]
    clicks = sum(counts[n] for n, _ in mu_rows)
    qber = sum(counts[n] for n, err in mu_rows if err) / clicks
    assert qber == pytest.approx(SEED_QBER, abs=0.005)  # seed: 2.66 +- 0.48 %
    mean_clicks = sum(expected[n] for n, _ in mu_rows)
    mean_qber = sum(expected[n] for n, err in mu_rows if err) / mean_clicks
    assert abs(qber - mean_qber) < 4 * math.sqrt(mean_qber * (1 - mean_qber) / clicks)

    window = world.testbed.counting.gate_window_s
    link = estimation.LinkModel(
        transmittance=detector.efficiency * classes.transmittance / 2,
        dark_yield=detector.dark_count_rate_hz * window, detectors=1)
    analytic = estimation.expected_classes(link, [float(k) for k in classes.intensity_realised],
                                           estimation.Protocol())
    for k, model in enumerate(analytic):
        names = [n for n, kk, _ in rows if kk == k]
        gates = SECONDS * sum(flux[n].gate_rate_hz for n in names)
        n_k = sum(counts[n] for n in names)
        error = 4 * math.sqrt(n_k) / gates
        assert abs(n_k / gates - model.gain) < error, (k, n_k / gates, model.gain)
        assert abs(n_k - sum(expected[n] for n in names)) < 4 * math.sqrt(n_k)
    # the counts are not thin: the signal gain is known to 0.05 %, nu2's to 2 %
    assert sum(counts[n] for n, k, _ in rows if k == 2) > 2000


@pytest.mark.parametrize(("dead_time_s", "afterpulse_probability", "live_range"),
                         [(50e-9, 0.01, (0.95, 0.97)), (1e-6, 0.05, (0.5, 0.6))])
def test_dead_time_and_afterpulses_follow_the_detector_model(
    world: World, dead_time_s: float, afterpulse_probability: float,
    live_range: tuple[float, float]
) -> None:
    """(c) The default SPD (50 ns, 1 %) and a slow one (1 us, 5 %) at ~ 0.8 Mcps: every class
    keeps the live share 1 / (1 + R tau) of its photon clicks; afterpulses add p_ap per click at
    random times, landing in a class's gates by their share of time. Totals against the renewal
    process's spread: Var N = T sigma^2 / m^3 for intervals of mean m = tau + 1 / R and deviation
    sigma = 1 / R, plus the afterpulses' binomial spread."""
    detector = world.detector
    detector.dead_time_s, detector.afterpulse_probability = dead_time_s, afterpulse_probability
    flux = dict(world.testbed.qkd_feed.flux(CHANNEL, INPUT))
    total, counts = world.integrate(SECONDS)

    rate_hz = detector.dark_count_rate_hz + sum(
        f.gate_rate_hz * -math.expm1(-detector.efficiency * f.mean_photons) for f in flux.values())
    tau, p_ap = detector.dead_time_s, detector.afterpulse_probability
    interval_s = tau + 1 / rate_hz
    registered = SECONDS / interval_s
    variance = SECONDS / rate_hz**2 / interval_s**3 * (1 + p_ap) ** 2 + registered * p_ap
    live = 1 / (1 + rate_hz * tau)
    assert live_range[0] < live < live_range[1]
    assert abs(total - registered * (1 + p_ap)) < 4 * math.sqrt(variance)

    expected = expected_in_gates(world, flux)
    for k in range(3):  # per intensity, the sum of its classes
        names = [n for n in flux if n.startswith(("mu.", "nu1.", "nu2.")[k])]
        n_k = sum(counts[n] for n in names)
        assert abs(n_k - sum(expected[n] for n in names)) < 4 * math.sqrt(n_k), k
    # dead time does not look at labels; afterpulses (half of them errors) raise the signal
    # QBER by ~ p_ap R_reg w / 2 / Q: + 0.2 % for the default SPD, still the seed's
    rows = [(n, err) for n, k, err in sifted(world.classes) if k == 0]
    clicks = sum(counts[n] for n, _ in rows)
    qber = sum(counts[n] for n, err in rows if err) / clicks
    mean = sum(expected[n] for n, e in rows if e) / sum(expected[n] for n, _ in rows)
    assert abs(qber - mean) < 4 * math.sqrt(mean * (1 - mean) / clicks)
    if dead_time_s == SinglePhotonDetector().dead_time_s:
        assert qber == pytest.approx(SEED_QBER, abs=0.005)


def test_dark_counts_fall_in_the_gates_by_their_coverage(world: World) -> None:
    """No comb: the gates still run, with no photons. The SPD counts its dark rate (less the
    tiny dead time, plus afterpulses); each class catches them in proportion to its gate
    windows' share of time, gate rate x 0.5 ns (0.5 in all)."""
    world.testbed.comb_override = Light.dark()
    world.step(1e-3)
    flux = world.testbed.qkd_feed.flux(CHANNEL, INPUT)
    assert flux and all(f.mean_photons == 0.0 for f in flux.values())
    total, counts = world.integrate(100.0)
    detector = world.detector
    rate_hz = detector.dark_count_rate_hz
    mean = 100.0 * rate_hz / (1 + rate_hz * detector.dead_time_s) * (
        1 + detector.afterpulse_probability)
    assert abs(total - mean) < 4 * math.sqrt(mean)
    coverage = world.testbed.counting.gate_window_s * sum(f.gate_rate_hz for f in flux.values())
    in_gates = sum(counts.values())
    assert abs(in_gates - total * coverage) < 4 * math.sqrt(total * coverage * (1 - coverage))
    signal = sum(counts[n] for n in flux if n.startswith("mu."))
    share = sum(f.gate_rate_hz for n, f in flux.items() if n.startswith("mu.")) / 1e9
    assert abs(signal - in_gates * share) < 4 * math.sqrt(in_gates * share * (1 - share))


# --- cost and caching ---------------------------------------------------------------------------


def test_gate_classes_are_recomputed_only_on_change_or_at_the_refresh(world: World) -> None:
    feed = world.testbed.qkd_feed
    feed.invalidate()
    world.step(5e-3)
    start = feed.recomputes
    for _ in range(150):  # 0.75 s of 5 ms syncs, nothing changing
        world.step(5e-3)
    assert feed.recomputes == start
    before = feed.flux(CHANNEL, INPUT)["mu.X.0.X0"].mean_photons
    world.testbed.comb_override = seed_comb(line_mw=0.1 * 1.0005)  # below the 1e-3 tolerance
    world.step(5e-3)
    assert feed.recomputes == start
    world.testbed.comb_override = seed_comb(line_mw=0.1 * 1.01)  # above it: at once
    world.step(5e-3)
    assert feed.recomputes == start + 1
    assert feed.flux(CHANNEL, INPUT)["mu.X.0.X0"].mean_photons == pytest.approx(
        before * 1.01, rel=1e-9)
    for _ in range(40):  # the refresh, 1 s after the last recompute
        world.step(5e-3)
    assert feed.recomputes == start + 1
    world.step(0.81)
    assert feed.recomputes == start + 2


def test_patterns_are_decoded_once_and_each_new_one_recalibrates_the_attenuator(
    world: World, tr1_pattern: Pattern
) -> None:
    feed = world.testbed.qkd_feed
    tx = world.testbed.qkd.transmitters[CHANNEL]
    decodes, attenuation_db = feed.decodes, tx.attenuation_db
    assert attenuation_db is not None
    world.testbed.awg.running = False  # stopped: the transmitter sends nothing gated
    world.step(1e-3)
    assert feed.flux(CHANNEL, INPUT) == {}
    world.testbed.awg.start()  # the same segments again: no decode, no new attenuator setting
    world.step(1e-3)
    assert feed.decodes == decodes and tx.attenuation_db == attenuation_db

    world.testbed.comb_override = seed_comb(line_mw=0.2)  # brighter comb, then a new pattern
    short = patterns.generate(TR1.replace(seed=12, pattern_slots=1024))
    play(world, short)
    assert feed.decodes == decodes + 1
    assert tx.attenuation_db == pytest.approx(attenuation_db + 10 * math.log10(2), abs=1e-9)
    assert feed.emissions[CHANNEL].intensity[0] == pytest.approx(0.5, rel=1e-12)
    assert sum(f.gate_rate_hz for f in feed.flux(CHANNEL, INPUT).values()) == pytest.approx(1e9)

    awg = world.testbed.awg  # rewritten in place while stopped (nu1 slots sent as mu): decoded
    awg.running = False
    world.step(1e-3)
    im2 = awg.segments[4][1].codes.reshape(1024, -1)
    intensity = short.symbols.intensity
    im2[intensity == 1] = im2[intensity == 0][0]
    awg.start()
    world.step(1e-3)
    assert feed.decodes == decodes + 2
    # two levels left, ranked mu and "nu1" (the decoder names levels by rank)
    slots = feed.emissions[CHANNEL].slots.sum(axis=(1, 2))
    np.testing.assert_array_equal(slots, [np.sum(intensity <= 1), np.sum(intensity == 2), 0])
