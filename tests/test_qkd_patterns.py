"""Transmitter patterns: exact random choices, AWG segment rules, and the world decoding them.

Statistical checks are chi-square goodness-of-fit tests on 2^17 symbols with the exact chi-square
tail (closed forms for integer degrees of freedom), failing below p = 1e-6. With the seeded source
they are deterministic; with the OS CSPRNG each may fail falsely once in 10^6 runs (5 such checks
here: ~ 5e-6 per run).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray
from pydantic import ValidationError

import labd.qkd.patterns as patterns
from drivers.keysight_m8195a import (
    MARKER_MODES,
    SIGNAL_CHANNELS,
    M8195AAwg,
    dac_codes,
    marker_bits,
)
from labd.qkd.patterns import (
    AWG_CHANNEL,
    AWG_DAC_MODE,
    SYNC_MARKER_SAMPLES,
    TR1,
    TR2,
    Drive,
    ModulatorCalibration,
    OsRandom,
    Pattern,
    RandomSource,
    SeededRandom,
    SymbolRecord,
    TransmitterSettings,
    draw_symbols,
    encode,
    generate,
    mzm_drive_v,
    mzm_transmission,
    suggest_im2_gain,
    uniform_below,
)
from labd.qkd.transmitter import play, upload_drive
from sim_backends.instruments.keysight_m8195a import M8195AEmulator
from sim_backends.world import qkd_link
from sim_backends.world.awg import ArbitraryWaveformGenerator
from sim_backends.world.demux import itu_frequency_hz
from sim_backends.world.light import Light
from sim_backends.world.modulator import MachZehnderModulator
from sim_backends.world.qkd_link import ModulatorDrives, SymbolTable, Transmitter
from tests.conftest import EmulatorThread

ALPHA = 1e-6
N_STAT = 1 << 17
SOURCES: dict[str, Callable[[], RandomSource]] = {
    "seeded": lambda: SeededRandom(20240601), "secure": OsRandom}


def chi2_sf(x: float, df: int) -> float:
    """P(chi^2_df > x), exact for integer df: a Poisson sum, plus an erfc term for odd df."""
    if x <= 0:
        return 1.0
    half = x / 2.0
    if df % 2 == 0:
        return sum(math.exp(-half + i * math.log(half) - math.lgamma(i + 1))
                   for i in range(df // 2))
    return math.erfc(math.sqrt(half)) + sum(
        math.exp(-half + (i + 0.5) * math.log(half) - math.lgamma(i + 1.5))
        for i in range(df // 2))


def chi2_p(counts: NDArray[np.int64], probabilities: NDArray[np.float64]) -> float:
    expected = counts.sum() * probabilities / probabilities.sum()
    return chi2_sf(float(((counts - expected) ** 2 / expected).sum()), counts.size - 1)


def test_chi2_tail_matches_tables() -> None:
    for x, df in ((3.841459, 1), (5.991465, 2), (7.814728, 3), (24.99579, 15)):
        assert chi2_sf(x, df) == pytest.approx(0.05, rel=1e-5)
    assert chi2_sf(27.631021, 2) == pytest.approx(ALPHA, rel=1e-6)


def joint_counts(record: SymbolRecord) -> NDArray[np.int64]:
    cell = (record.intensity.astype(np.int64) * 2 + record.basis) * 2 + record.bit
    return np.bincount(cell, minlength=12)


def joint_probabilities(settings: TransmitterSettings) -> NDArray[np.float64]:
    weights = np.asarray(settings.class_weights, float)
    p_x = float(settings.basis_probability)
    return np.einsum("k,b,c->kbc", weights / weights.sum(), [p_x, 1 - p_x], [0.5, 0.5]).ravel()


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("settings", [
    TR1.replace(pattern_slots=N_STAT),
    TR1.replace(pattern_slots=N_STAT, p_x=0.9, class_weights=(6, 1, 1), phase_levels=7),
], ids=["seed", "pX0.9-6:1:1-7phases"])
def test_choices_follow_their_distributions(source: str, settings: TransmitterSettings) -> None:
    record = draw_symbols(settings, SOURCES[source]())
    # intensity x basis x bit: ratios, basis and bit balance and their independence (df 11)
    assert chi2_p(joint_counts(record), joint_probabilities(settings)) > ALPHA
    levels = settings.phase_levels
    assert levels is not None and record.phase_levels == levels
    assert chi2_p(np.bincount(record.phase_index, minlength=levels), np.ones(levels)) > ALPHA


def test_p_x_is_drawn_as_an_exact_fraction() -> None:
    assert TR1.replace(p_x=0.9).basis_probability.as_integer_ratio() == (9, 10)
    assert TR1.basis_probability.as_integer_ratio() == (1, 2)


@pytest.mark.parametrize("source", SOURCES)
def test_continuous_global_phase_is_uniform(source: str) -> None:
    settings = TR1.replace(pattern_slots=N_STAT, phase_levels=None)
    record = draw_symbols(settings, SOURCES[source]())
    phase = record.global_phase_rad
    assert record.phase_levels == 1 << 53 and np.all((phase >= 0) & (phase < 2 * math.pi))
    assert np.unique(phase).size > N_STAT - 10  # not a coarse grid
    bins = np.bincount((phase / (2 * math.pi) * 16).astype(np.int64), minlength=16)
    assert chi2_p(bins, np.ones(16)) > ALPHA


class Enumerating:
    """Every ``width``-byte word once per cycle, in order: any bias of a mapping shows exactly."""

    secure = False

    def __init__(self, width: int) -> None:
        self.words = np.arange(1 << (8 * width), dtype=f"<u{width}").tobytes()
        self.at = 0

    def read(self, n: int) -> bytes:
        out = (self.words * (1 + (self.at + n) // len(self.words)))[self.at:self.at + n]
        self.at = (self.at + n) % len(self.words)
        return out


@pytest.mark.parametrize(("n", "width", "per_value"), [(3, 1, 256), (29, 1, 8), (1000, 2, 64)])
def test_uniform_below_has_no_modulo_bias(n: int, width: int, per_value: int) -> None:
    # one cycle of all words (n = 3: four 2-bit words per byte, 256 bytes): rejection maps them
    # to exactly equal counts
    drawn = uniform_below(Enumerating(width), n, n * per_value)
    assert np.all(np.bincount(drawn, minlength=n) == per_value)  # byte % 29 would not be


def test_uniform_below_edges() -> None:
    source = SeededRandom(1)
    assert np.all(uniform_below(source, 1, 100) == 0)
    assert uniform_below(source, 1 << 64, 10).dtype == np.dtype("<u8")
    assert uniform_below(source, 32, 10).dtype == np.uint8
    with pytest.raises(ValueError, match="n <= 2"):
        uniform_below(source, 0, 1)


def test_secure_source_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[int] = []
    real = secrets.token_bytes

    def spy(n: int) -> bytes:
        drawn.append(n)
        return real(n)

    monkeypatch.setattr(secrets, "token_bytes", spy)
    settings = TR1.replace(pattern_slots=64)
    assert settings.seed is None
    first = generate(settings)
    assert drawn and first.symbols.secure
    assert first.pattern_id != generate(settings).pattern_id  # fresh choices every time
    drawn.clear()
    seeded = generate(settings.replace(seed=5))
    assert not drawn and not seeded.symbols.secure
    assert "INSECURE" in (SeededRandom.__doc__ or "")


def test_seeded_mode_is_reproducible() -> None:
    settings = TR2.replace(pattern_slots=4096, seed=11)
    a, b = generate(settings), generate(settings)
    assert a.pattern_id == b.pattern_id
    for drive in Drive:
        np.testing.assert_array_equal(a.codes(drive), b.codes(drive))
    np.testing.assert_array_equal(a.symbols.phase_index, b.symbols.phase_index)
    assert generate(settings.replace(seed=12)).pattern_id != a.pattern_id
    # the id covers the calibration too: same choices at another gain are another pattern
    other = encode(settings.replace(im1=ModulatorCalibration(v_pi_v=4.5, rf_gain_v=6.0)),
                   a.symbols)
    assert other.pattern_id != a.pattern_id


@pytest.mark.parametrize("slots", [20, 24, 4096])
def test_awg_samples_obey_the_m8195a_segment_rules(slots: int) -> None:
    pattern = generate(TR1.replace(pattern_slots=slots, seed=slots))
    n = slots * 64
    assert pattern.n_samples == n and n % 256 == 0 and n >= 1280
    for drive in Drive:
        samples = pattern.samples(drive)
        assert samples.shape == (n,) and np.abs(samples).max() <= 1.0
        # on the DAC grid: the driver's rounding gives back exactly these codes
        np.testing.assert_array_equal(dac_codes(samples), pattern.codes(drive))
    sync = pattern.sync_marker()
    marker_bits(np.column_stack([np.zeros(n, bool), sync]), n)  # edge spacing accepted
    edges = np.flatnonzero(np.diff(sync.astype(np.int8), prepend=sync[-1]) == 1)
    assert edges.tolist() == [0] and sync.sum() == SYNC_MARKER_SAMPLES


@pytest.mark.parametrize("slots", [20, 1 << 14])
def test_the_transmitter_uploads_segments_the_m8195a_accepts(slots: int) -> None:
    """Through the driver to the emulator, which refuses a segment off the rules with its own
    error (tests/test_keysight_m8195a.py): each drive's segment is played bit-exactly."""
    pattern = generate(TR1.replace(pattern_slots=slots, seed=slots))
    world = ArbitraryWaveformGenerator()
    served = EmulatorThread(M8195AEmulator(world))
    awg = M8195AAwg(served.resource, name="awg", timeout_s=5.0)
    try:
        for channel in AWG_CHANNEL.values():
            upload_drive(awg, pattern, channel)
        play(awg)
        assert awg.dac_mode == AWG_DAC_MODE
    finally:
        awg.close()
        served.close()
    for drive, channel in AWG_CHANNEL.items():
        played = world.played(channel)
        assert played is not None, drive
        n = played.samples.size
        assert n == pattern.n_samples and n % 256 == 0 and n >= 1280
        np.testing.assert_array_equal(np.rint(played.samples * 127), pattern.codes(drive))


def test_channel_plan_needs_four_mode_and_an_external_sync() -> None:
    assert sorted(AWG_CHANNEL.values()) == list(SIGNAL_CHANNELS[AWG_DAC_MODE]) == [1, 2, 3, 4]
    assert AWG_DAC_MODE not in MARKER_MODES  # hence the sync marker on another output
    assert all(len(SIGNAL_CHANNELS[mode]) < 4 for mode in MARKER_MODES)


@pytest.mark.parametrize(("changes", "message"), [
    ({"pattern_slots": 18}, "multiple of 4 slots, at least 20"),
    ({"pattern_slots": 22}, "multiple of 4 slots, at least 20"),
    ({"pattern_slots": 16}, "multiple of 4 slots, at least 20"),
    ({"pattern_slots": 36, "sample_rate_hz": 32e9}, "multiple of 8 slots, at least 40"),
    ({"sample_rate_hz": 63.5e9}, "whole number of samples"),
    ({"pulse_fwhm_ps": 300.0}, "quarter slot"),
    ({"intensities": (0.5, 0.4, 0.2)}, "nu1 \\+ nu2 < mu"),
    ({"intensities": (0.5, 0.1, 0.0)}, "vacuum"),
    ({"class_weights": (29, 0, 1)}, "positive"),
])
def test_invalid_settings_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TR1.replace(**changes)


@pytest.mark.parametrize(("drive", "gain"), [(Drive.IM1, 4.0), (Drive.PM_RANDOM, 3.9),
                                             (Drive.PM_ENCODE, 3.9), (Drive.IM2, 4.0)])
def test_a_drive_that_would_clip_is_an_error(drive: Drive, gain: float) -> None:
    v_pi = TR1.calibration(drive).v_pi_v
    settings = TR1.replace(pattern_slots=64, seed=1,
                           **{drive.value: ModulatorCalibration(v_pi_v=v_pi, rf_gain_v=gain)})
    with pytest.raises(ValueError, match=f"{drive.value} drive would clip"):
        generate(settings)


def test_decoy_levels_after_dac_rounding() -> None:
    for preset in (TR1, TR2):
        expected = generate(preset.replace(pattern_slots=64, seed=0)).expected_intensities
        np.testing.assert_allclose(expected, preset.intensities, rtol=preset.intensity_tolerance)
    # at an arbitrary gain nu1 lands 1.8 % off: refused, with the gain that fits
    off = TR1.replace(pattern_slots=64, seed=0,
                      im2=ModulatorCalibration(v_pi_v=4.5, rf_gain_v=5.0))
    with pytest.raises(ValueError, match=r"nu1 .* IM2 RF gain of 7\.505"):
        generate(off)
    fitted = off.replace(im2=ModulatorCalibration(v_pi_v=4.5, rf_gain_v=suggest_im2_gain(off)))
    np.testing.assert_allclose(generate(fitted).expected_intensities, TR1.intensities, rtol=1e-3)


@given(
    relative=st.floats(0.0, 1.0),
    v_pi=st.floats(1.0, 10.0),
    operating_point=st.sampled_from([0.0, math.pi, -math.pi / 2, 1.0]),
    extinction_db=st.one_of(st.none(), st.floats(10.0, 40.0)),
)
def test_mzm_drive_inverts_the_transfer(relative: float, v_pi: float, operating_point: float,
                                        extinction_db: float | None) -> None:
    leak = 0.0 if extinction_db is None else 10 ** (-extinction_db / 10)
    r = max(relative, leak)
    volts = mzm_drive_v(r, v_pi, operating_point, extinction_db)
    assert abs(volts) <= v_pi * (1 + 1e-12)  # wrapped to [-V_pi, V_pi), up to rounding
    assert mzm_transmission(volts, v_pi, operating_point, extinction_db) == pytest.approx(
        r, abs=1e-9)


def test_conventions_are_the_worlds() -> None:
    assert patterns.CARVER_OPERATING_POINT_RAD == qkd_link.CARVER_OPERATING_POINT_RAD
    assert patterns.DECOY_OPERATING_POINT_RAD == qkd_link.DECOY_OPERATING_POINT_RAD
    modulator = MachZehnderModulator(np.random.default_rng(0), v_pi_v=4.5)
    levels = np.array([1.0, 0.32, 0.016, 1e-3])
    for point in (patterns.CARVER_OPERATING_POINT_RAD, patterns.DECOY_OPERATING_POINT_RAD):
        np.testing.assert_allclose(mzm_drive_v(levels, 4.5, point, None),
                                   qkd_link.rf_for_transmission(modulator, levels, point),
                                   atol=1e-12)


# --- the world decodes the pattern ---------------------------------------------------------------


def world_drives(pattern: Pattern) -> ModulatorDrives:
    return ModulatorDrives(pattern.settings.sample_rate_hz, pattern.volts(Drive.IM1),
                           pattern.volts(Drive.PM_RANDOM), pattern.volts(Drive.PM_ENCODE),
                           pattern.volts(Drive.IM2))


def world_table(record: SymbolRecord) -> SymbolTable:
    return SymbolTable(record.intensity.astype(np.int64), record.basis.astype(np.int64),
                       record.bit.astype(np.int64), record.global_phase_rad)


@pytest.mark.parametrize("name", ["TR1", "TR2"])
@pytest.mark.parametrize("er_compensated", [False, True])
def test_the_world_decodes_the_intended_classes_and_intensities(
    name: str, er_compensated: bool
) -> None:
    rng = np.random.default_rng(0)
    tx = Transmitter.seed_tr1(rng) if name == "TR1" else Transmitter.seed_tr2(rng)
    settings = {"TR1": TR1, "TR2": TR2}[name].replace(pattern_slots=4096, seed=3)
    leak = 10 ** (-tx.im2.extinction_ratio_db / 10)  # 30 dB
    if er_compensated:
        settings = settings.replace(decoy_extinction_db=tx.im2.extinction_ratio_db)
        settings = settings.replace(im2=ModulatorCalibration(
            v_pi_v=4.5, rf_gain_v=suggest_im2_gain(settings)))
    pattern = generate(settings)
    record = pattern.symbols
    drives = world_drives(pattern)

    decoded = tx.pattern_optics(drives)  # labels from the waveforms and the physics alone
    labelled = tx.pattern_optics(drives, world_table(record))
    sent = np.zeros((3, 2, 2), np.int64)
    np.add.at(sent, (record.intensity, record.basis, record.bit), 1)
    np.testing.assert_array_equal(decoded.slots, sent)
    # a slot decoded into another class would move its moments there
    np.testing.assert_array_equal(decoded.moments, labelled.moments)

    light = Light.line(itu_frequency_hz(31), 0.1)
    tx.calibrate_attenuator(light, decoded)
    emission = tx.emit(light, decoded)
    expected = pattern.expected_intensities
    if er_compensated:
        np.testing.assert_allclose(emission.intensity, expected, rtol=1e-9)
    else:  # the world's IM2 floor: T = (1 - leak) T_ideal + leak, the documented +6 % on nu2
        relative = expected / expected[0]
        np.testing.assert_allclose(emission.intensity,
                                   expected * ((1 - leak) + leak / relative), rtol=1e-9)
    np.testing.assert_allclose(expected, settings.intensities, rtol=settings.intensity_tolerance)
    # encoding phases land exactly (PM gains put pi/8 on whole codes); global phase uniform
    phase = np.arange(2)[:, None] * (math.pi / 2) + np.arange(2)[None, :] * math.pi
    np.testing.assert_allclose(emission.phasor, np.broadcast_to(np.exp(1j * phase), (3, 2, 2)),
                               atol=1e-9)
    assert decoded.phase_randomisation_bias < 0.07  # 4 harmonics, |mean| ~ 1/64; P(>0.07) < 1e-8


def test_generation_is_vectorised() -> None:
    settings = TR1.replace(pattern_slots=1 << 20, seed=1)
    record = draw_symbols(settings, SeededRandom(1))
    start = time.perf_counter()
    pattern = encode(settings, record)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0  # ~ 0.1 s; a Python loop over 2^20 symbols takes seconds
    assert pattern.codes(Drive.IM2).size == 64 << 20
