"""Soliton-state recognition from measurements, checked on synthetic but physical inputs.

Spectra: comb lines from the LLE (sim_backends.world.lle, stationary solitons at random angles)
or a chaotic stand-in, rendered by the AQ6370 optics model (RBW 0.02 nm, noise floor -80 dBm rms,
20001 points over 1470-1650 nm). The analysis sees only the trace. Device population: four
(F^2, zeta, d2) points, d2 = D2 / kappa for D2/2pi = 0.31 ... 0.48 MHz, 3-dB widths 3.1 to
6.3 THz; comb level +-6 dB; pump 1550 to 1562 nm at 0 to +10 dBm; solitons at least 0.1 rad
apart (the world's minimum, ~ 6 pulse widths). Stated tolerances: >= 95 % correct per class
(30 cases each: at most one miss), spacing within 0.1 % of the FSR, 3-dB bandwidth within 5 % of
the LLE's own (half-maximum of its line powers), lines_20db within 2 % (>= 6 lines) of the
rendered truth, floor within 1 dB.

Power levels: staircases P = P_cw + N P1 sqrt(delta / delta_ref) + noise after a rising
triangle and a noisy MI plateau (physics.md, section 3), and streams of readings with spikes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labd.soliton.analysis import (
    C_NM_GHZ,
    LevelChangeDetector,
    SolitonCalibration,
    SpectrumAnalysis,
    SpectrumConfig,
    analyse_spectrum,
    count_solitons,
    estimate_floor_dbm,
    fit_sech2_envelope,
    read_soliton_steps,
)
from sim_backends.world import lle
from sim_backends.world.light import Light
from sim_backends.world.osa import Monochromator

FSR_HZ = 48.987e9  # ring of radius 592.1 um, group index 1.645 (seed)
#: mW at the OSA per unit |psi_mu|^2: 4 eta^2 P_th (eta = 1/2, P_th = 58 mW), 2.25 dB output
#: facet, 20 dB monitor tap: central lines of a single soliton near -31 dBm.
MW_PER_UNIT = 0.345
FLOOR_DBM = -80.0
RBW_NM = 0.02
GRID_NM = np.linspace(1470.0, 1650.0, 20001)
OPTICS = Monochromator()
#: (F^2, zeta, d2): the population of devices and operating points.
DEVICES = ((30.0, 14.0, 0.0031), (36.0, 12.5, 0.0042), (36.0, 22.0, 0.0035), (43.0, 30.0, 0.0027))
CASES = 30
C_M_PER_S = 299_792_458.0


@dataclass(frozen=True)
class Case:
    light: Light
    result: SpectrumAnalysis
    device: tuple[float, float, float]


def render(light: Light, rng: np.random.Generator) -> np.ndarray:
    return OPTICS.render_dbm(light, GRID_NM, RBW_NM, FLOOR_DBM, rng)


def pump_hz(rng: np.random.Generator) -> float:
    return C_M_PER_S / (rng.uniform(1550.0, 1562.0) * 1e-9)


def soliton_positions(rng: np.random.Generator, n: int, min_separation: float = 0.1) -> list[float]:
    while True:
        angles = np.sort(rng.uniform(-math.pi, math.pi, n))
        if n == 1 or np.diff(np.r_[angles, angles[0] + 2 * math.pi]).min() >= min_separation:
            return [float(a) for a in angles]


def soliton_light(rng: np.random.Generator, n: int) -> tuple[Light, tuple[float, float, float]]:
    """N solitons at random angles on a random device; the pump line is the EDFA light."""
    device = DEVICES[rng.integers(len(DEVICES))]
    f2, zeta, d2 = device
    spectrum = lle.comb_line_powers(lle.LLEParams(zeta=zeta, f=math.sqrt(f2), d2=d2),
                                    soliton_positions(rng, n))
    power = spectrum.line_power * MW_PER_UNIT * 10 ** rng.uniform(-0.6, 0.6)
    power[spectrum.mode_number == 0] = 10 ** rng.uniform(0.0, 1.0)
    frequency = pump_hz(rng) + spectrum.mode_number.astype(np.float64) * FSR_HZ
    return Light(frequency, power), device


def mi_light(rng: np.random.Generator) -> Light:
    """A chaotic comb: random (exponentially distributed) line powers, i.e. random phases of the
    field's Fourier components, under an exponential or sech^2 envelope, plus a continuum of
    0 to 20 % of the comb power."""
    centre = pump_hz(rng)
    mu = np.arange(-400.0, 401.0)
    width = rng.uniform(25.0, 80.0)
    shape = np.exp(-np.abs(mu) / width) if rng.random() < 0.5 else np.cosh(mu / width) ** -2
    power = 0.01 * MW_PER_UNIT * 10 ** rng.uniform(-0.6, 0.6) * shape * rng.exponential(1, mu.size)
    power[mu == 0] = 10 ** rng.uniform(0.0, 1.0)
    continuum = rng.uniform(0.0, 0.2) * power[mu != 0].sum() * np.exp(-np.abs(mu) / width)
    continuum /= np.trapezoid(np.exp(-np.abs(mu) / width), mu) * FSR_HZ
    frequency = centre + mu * FSR_HZ
    return Light(frequency, power, frequency, continuum)


def halfmax_width_lines(mode: np.ndarray, power: np.ndarray) -> float:
    """3-dB full width of comb line powers, in lines, crossings interpolated in dB."""
    db = 10 * np.log10(power)
    half = db.max() - 10 * math.log10(2)
    top = int(np.argmax(db))
    right = int(np.flatnonzero((mode > mode[top]) & (db < half))[0])
    left = int(np.flatnonzero((mode < mode[top]) & (db < half))[-1])

    def crossing(inside: int, outside: int) -> float:
        return float(mode[inside] + (half - db[inside]) * (mode[outside] - mode[inside])
                     / (db[outside] - db[inside]))

    return crossing(right - 1, right) - crossing(left + 1, left)


@pytest.fixture(scope="module")
def population() -> dict[str, list[Case]]:
    rng = np.random.default_rng(20240)
    cases: dict[str, list[Case]] = {}
    for n in (1, 2, 3):
        cases[f"n{n}"] = []
        for _ in range(CASES):
            light, device = soliton_light(rng, n)
            cases[f"n{n}"].append(Case(light, analyse_spectrum(GRID_NM, render(light, rng)),
                                       device))
    cases["mi"] = []
    for _ in range(CASES):
        light = mi_light(rng)
        cases["mi"].append(Case(light, analyse_spectrum(GRID_NM, render(light, rng)), (0, 0, 0)))
    return cases


def share(cases: list[Case], classification: str) -> float:
    return sum(c.result.classification == classification for c in cases) / len(cases)


# --- spectrum: classification ---------------------------------------------------------------------


def test_single_solitons_read_as_single(population: dict[str, list[Case]]) -> None:
    assert share(population["n1"], "single_soliton") >= 0.95


@pytest.mark.parametrize("n", [2, 3])
def test_two_and_three_solitons_read_as_multi(population: dict[str, list[Case]], n: int) -> None:
    assert share(population[f"n{n}"], "multi_soliton") >= 0.95


def test_chaotic_combs_read_as_mi(population: dict[str, list[Case]]) -> None:
    assert share(population["mi"], "mi") >= 0.95


def test_scores_separate_the_classes(population: dict[str, list[Case]]) -> None:
    """Medians: N = 1 smooth (< 0.3 dB, scores < 0.1); fringes dominate N = 2, 3; noise MI."""
    def median(key: str, attribute: str) -> float:
        return float(np.median([getattr(c.result, attribute) for c in population[key]]))

    assert median("n1", "envelope_residual_db") < 0.3
    assert median("n1", "fringe_score") < 0.1 and median("n1", "noise_score") < 0.1
    for key in ("n2", "n3"):
        assert median(key, "fringe_score") > 0.7 > median(key, "noise_score") + 0.4
    assert median("mi", "noise_score") > 0.5 > median("mi", "fringe_score")


def test_pump_alone_is_no_comb() -> None:
    """A pump line, bare or on an ASE pedestal (-55 dBm per RBW over the erbium band)."""
    rng = np.random.default_rng(3)
    band_nm = np.linspace(1580.0, 1515.0, 300)
    band = 1 / (1 + np.exp((1528 - band_nm) / 1.0)) / (1 + np.exp((band_nm - 1567) / 1.0))
    ase = Light(np.zeros(0), np.zeros(0), C_M_PER_S / (band_nm * 1e-9), 10**-5.5 / 2.75e9 * band)
    for background in (Light.dark(), ase):
        centre = pump_hz(rng)
        light = Light(np.array([centre]), np.array([5.0]), background.background_frequency_hz,
                      background.background_mw_per_hz)
        result = analyse_spectrum(GRID_NM, render(light, rng))
        assert result.classification == "no_comb"
        assert result.pump_nm == pytest.approx(C_NM_GHZ / (centre / 1e9), abs=2e-3)
        assert result.lines_20db == 1


# --- spectrum: figures ---------------------------------------------------------------------------


def test_single_soliton_figures(population: dict[str, list[Case]]) -> None:
    for case in population["n1"]:
        r, light = case.result, case.light
        f2, zeta, d2 = case.device
        truth = lle.comb_line_powers(lle.LLEParams(zeta=zeta, f=math.sqrt(f2), d2=d2), [0.0])
        comb = truth.mode_number != 0
        width_thz = halfmax_width_lines(truth.mode_number[comb], truth.line_power[comb]) \
            * FSR_HZ / 1e12
        seen = (light.line_wavelength_nm > GRID_NM[0]) & (light.line_wavelength_nm < GRID_NM[-1])
        lines_20db = int(np.count_nonzero(light.line_power_mw[seen] >= 10 ** (FLOOR_DBM / 10 + 2)))
        assert r.spacing_ghz == pytest.approx(FSR_HZ / 1e9, rel=1e-3)
        assert r.bandwidth_3db_thz == pytest.approx(width_thz, rel=0.05)
        assert abs(r.lines_20db - lines_20db) <= max(6, 0.02 * lines_20db)
        assert r.floor_dbm == pytest.approx(FLOOR_DBM, abs=1.0)
        pump = int(np.argmax(light.line_power_mw))
        assert r.pump_nm == pytest.approx(light.line_wavelength_nm[pump], abs=2e-3)
        assert np.all(np.diff(r.line_index) > 0) and 0 in r.line_index


def test_spacing_is_the_fsr_for_every_state(population: dict[str, list[Case]]) -> None:
    for cases in population.values():
        for case in cases:
            assert case.result.spacing_ghz == pytest.approx(FSR_HZ / 1e9, rel=1e-3)


def test_pump_given_by_wavelength_when_it_is_not_the_strongest_line() -> None:
    """Pump notched 30 dB below the comb (a fibre Bragg grating): found from its wavelength."""
    rng = np.random.default_rng(8)
    light, _ = soliton_light(rng, 1)
    power = light.line_power_mw.copy()
    pump = int(np.argmax(power))
    power[pump] = np.sort(power)[-2] * 1e-3
    pump_nm = float(light.line_wavelength_nm[pump])
    trace = render(Light(light.line_frequency_hz, power), rng)
    result = analyse_spectrum(GRID_NM, trace, pump_nm=pump_nm + 0.05)
    assert result.pump_nm == pytest.approx(pump_nm, abs=2e-3)
    assert result.classification == "single_soliton"
    assert analyse_spectrum(GRID_NM, trace).pump_nm != pytest.approx(pump_nm, abs=0.1)


def test_thresholds_are_configuration() -> None:
    """A tolerance of 10 dB rms calls a two-soliton comb smooth; unknown keys are refused."""
    rng = np.random.default_rng(9)
    light, _ = soliton_light(rng, 2)
    trace = render(light, rng)
    assert analyse_spectrum(GRID_NM, trace).classification == "multi_soliton"
    lax = SpectrumConfig(smooth_tolerance_db=10.0)
    assert analyse_spectrum(GRID_NM, trace, config=lax).classification == "single_soliton"
    with pytest.raises(ValueError):
        SpectrumConfig(smooth_tolerance=1.0)  # type: ignore[call-arg]


def test_analysis_of_a_20001_point_trace_takes_well_under_a_second() -> None:
    rng = np.random.default_rng(10)
    trace = render(soliton_light(rng, 1)[0], rng)
    start = time.perf_counter()
    analyse_spectrum(GRID_NM, trace)
    assert time.perf_counter() - start < 0.5


def test_floor_from_clipped_and_from_unclipped_noise() -> None:
    """Pure noise: the mirror estimate is the rms within 0.2 dB; with no clipped readings (an
    instrument logging |noise|) the 10th percentile stands in: 0.126 sigma, i.e. -9 dB."""
    rng = np.random.default_rng(11)
    noise = 10 ** (FLOOR_DBM / 10) * rng.standard_normal(20001)
    clipped = np.where(noise > 0, 10 * np.log10(np.abs(noise)), -210.0)
    assert estimate_floor_dbm(clipped) == pytest.approx(FLOOR_DBM, abs=0.2)
    assert estimate_floor_dbm(10 * np.log10(np.abs(noise))) == pytest.approx(FLOOR_DBM - 9.0,
                                                                            abs=0.3)


@settings(max_examples=40, deadline=None)
@given(st.floats(-40.0, 0.0), st.floats(-2.0, 2.0), st.floats(0.5, 5.0))
def test_sech2_fit_recovers_exact_envelopes(peak_db: float, centre: float, width: float) -> None:
    f = np.linspace(-4.0, 4.0, 81) * width + 0.3 * width
    level = peak_db + 10 * np.log10(np.cosh((f - centre) / width) ** -2)
    fitted = fit_sech2_envelope(f, level)
    assert fitted[:3] == pytest.approx((peak_db, centre, width), abs=1e-6 * (1 + width))
    assert fitted[3] < 1e-6


# --- power levels ---------------------------------------------------------------------------------


def staircase(rng: np.random.Generator, p1: float, p_cw: float, ref: float
              ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Blue-to-red sweep in normalised detuning: triangle, noisy MI plateau, then steps.

    N starts at 1 ... 7 and drops by 1 or 2 at random detunings at least 1.5 apart, down to 0.
    Reading noise 2 to 8 % of P1, MI fluctuations 8 % of the level.
    """
    x = np.linspace(-2.0, 44.0, 3000)
    mi_start, collapse = rng.uniform(3.0, 6.0), rng.uniform(12.0, 15.0)
    numbers = [int(rng.integers(1, 8))]
    while numbers[-1] > 0:
        numbers.append(max(0, numbers[-1] - int(rng.integers(1, 3))))
    while True:
        edges = np.sort(rng.uniform(collapse + 1.5, 43.0, len(numbers) - 1))
        if np.all(np.diff(np.r_[collapse, edges]) >= 1.5):
            break
    triangle = p_cw + (numbers[0] + 4) * p1 * (x + 2.0) / (collapse + 2.0)
    steps = p_cw + np.array(numbers)[np.searchsorted(edges, x)] * p1 \
        * np.sqrt(np.clip(x, 0.0, None) / ref)
    power = np.where(x < collapse, triangle, steps)
    power += rng.uniform(0.02, 0.08) * abs(p1) * rng.standard_normal(x.size)
    chaotic = (x >= mi_start) & (x < collapse)
    power[chaotic] += 0.08 * triangle[chaotic] * rng.standard_normal(np.count_nonzero(chaotic))
    return x, power, numbers


def test_sweep_steps_give_the_soliton_numbers_exactly() -> None:
    """100 random staircases in comb power (P1 > 0) and transmission (P1 < 0, falling steps)."""
    rng = np.random.default_rng(12)
    for trial in range(100):
        p1, p_cw = (1.0, 0.2) if trial % 2 else (-0.05, 1.0)
        x, power, numbers = staircase(rng, p1, p_cw, ref=20.0)
        calibration = SolitonCalibration(detuning_ref=20.0, p1_ref=p1, p_cw=p_cw,
                                         noise=0.05 * abs(p1))
        steps = read_soliton_steps(x, power, calibration)
        assert [s.count.n for s in steps] == numbers
        assert min(s.count.confidence for s in steps) > 0.99


def test_calibration_learns_p1_on_one_step_and_predicts_by_sqrt_detuning() -> None:
    rng = np.random.default_rng(13)
    detuning = np.linspace(14.0, 24.0, 200)
    readings = 0.3 + 1.2 * np.sqrt(detuning / 20.0) + 0.02 * rng.standard_normal(detuning.size)
    calibration = SolitonCalibration.fit(detuning, readings, p_cw=0.3, detuning_ref=20.0)
    assert calibration.p1_ref == pytest.approx(1.2, rel=0.005)
    assert calibration.noise == pytest.approx(0.02, rel=0.15)
    assert float(calibration.p1(36.0)) == pytest.approx(1.2 * math.sqrt(1.8), rel=0.005)
    far = count_solitons(0.3 + 3 * 1.2 * math.sqrt(36.0 / 20.0), 36.0, calibration)
    assert far.n == 3 and far.confidence > 0.999
    between = count_solitons(0.3 + 2.5 * float(calibration.p1(20.0)), 20.0, calibration)
    assert between.n in (2, 3) and 0.4 < between.confidence < 0.6
    with pytest.raises(ValueError):
        calibration.p1(-1.0)


def test_confidence_is_calibrated() -> None:
    """Readings with noise 0.3 P1: the mean confidence matches the share read right (+-3 %)."""
    rng = np.random.default_rng(14)
    calibration = SolitonCalibration(detuning_ref=20.0, p1_ref=1.0, noise=0.3, p1_rel_error=0.0)
    truth = rng.integers(0, 6, 4000)
    counts = [count_solitons(n + 0.3 * rng.standard_normal(), 20.0, calibration) for n in truth]
    right = np.mean([c.n == n for c, n in zip(counts, truth, strict=True)])
    assert np.mean([c.confidence for c in counts]) == pytest.approx(right, abs=0.03)


def test_live_detector_catches_each_step_down_despite_spikes() -> None:
    """Backward tuning: N = 6 -> 0 one or two at a time, every 300 readings, P1 = 8 sigma, 1 %
    of readings spikes of +-10 sigma. Every change is found within `persistence` readings of its
    start with the right count, and nothing else."""
    rng = np.random.default_rng(15)
    p1, sigma = 1.0, 0.125
    numbers = [6, 5, 3, 2, 1, 0]
    level = np.repeat(np.array(numbers, dtype=float) * p1 + 0.3, 300)
    readings = level + sigma * rng.standard_normal(level.size)
    spikes = rng.random(level.size) < 0.01
    readings[spikes] += rng.choice([-10.0, 10.0], np.count_nonzero(spikes)) * sigma
    detector = LevelChangeDetector(step=p1, noise=sigma)
    changes = [c for c in map(detector.update, readings) if c is not None]
    assert [c.solitons for c in changes] == list(np.diff(numbers))
    for change, start in zip(changes, range(300, level.size, 300), strict=True):
        assert start <= change.index <= start + detector.persistence
        assert change.detected_at - start <= 2 * detector.persistence


@pytest.mark.parametrize(("sigma", "persistence"), [(0.3, 4), (0.4, 4), (0.35, 3)])
def test_false_alarm_rate_is_as_stated(sigma: float, persistence: int) -> None:
    """Steady level, P1 only 2.5 to 3.3 sigma: over 400 streams of 500 readings (after 50 to
    fill the reference) the share with a false alarm is at most 1 - exp(-500 rate) + 3 s.e."""
    rng = np.random.default_rng(16)
    streams = 400
    alarmed = 0
    for _ in range(streams):
        detector = LevelChangeDetector(step=1.0, noise=sigma, persistence=persistence)
        readings = sigma * rng.standard_normal(550)
        for reading in readings[:50]:
            detector.update(reading)
        alarmed += any(detector.update(r) is not None for r in readings[50:])
    expected = 1.0 - math.exp(-500 * detector.false_alarm_rate)
    assert alarmed / streams <= expected + 3 * math.sqrt(expected * (1 - expected) / streams)


def test_no_false_alarm_at_realistic_noise() -> None:
    """P1 = 8 sigma with 1 % spikes of +-10 sigma: 50000 readings, stated rate < 1e-9, none."""
    rng = np.random.default_rng(17)
    detector = LevelChangeDetector(step=1.0, noise=0.125)
    readings = 2.0 + 0.125 * rng.standard_normal(50000)
    spikes = rng.random(readings.size) < 0.01
    readings[spikes] += rng.choice([-1.25, 1.25], np.count_nonzero(spikes))
    assert detector.false_alarm_rate < 1e-9
    assert all(detector.update(r) is None for r in readings)
