"""Tests of the LLE core against analytic results and against its own time integration.

Most tests use a coarse ring (F^2 = 36, d2 = 0.08, 256 modes): by the d2 scaling of the LLE it
resolves the soliton about as well as the 1024-mode device ring does (n_modes / b = 13 to 21 for
zeta = 30 to 12) at 1/64 of the cost. Spectra use the device ring itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim_backends.world.lle import (
    DEVICE_D2,
    CombSpectrum,
    LLEParams,
    SolitonNotFoundError,
    analytic_soliton_energy,
    analytic_zeta_max,
    comb_line_powers,
    cw_field,
    cw_powers,
    integrate_lle,
    lower_branch_power,
    max_stable_step,
    mean_intracavity_power,
    multi_soliton_field,
    sech_ansatz,
    soliton_energy,
    soliton_existence_range,
    soliton_growth_rate,
    spectral_width_lines,
    stationary_soliton,
    tabulate_soliton_steps,
    theta_grid_rad,
)

F = 6.0  # F^2 = 36
COARSE_D2 = 0.08
COARSE_MODES = 256
FSR_GHZ = 49.0


def coarse(zeta: float) -> LLEParams:
    return LLEParams(zeta=zeta, f=F, d2=COARSE_D2, n_modes=COARSE_MODES)


def lle_rhs(psi: np.ndarray, p: LLEParams) -> np.ndarray:
    """Right-hand side of the LLE on the full ring, spectral second derivative."""
    mu = np.fft.fftfreq(p.n_modes, 1.0 / p.n_modes)
    d2psi = np.fft.ifft(-(mu**2) * np.fft.fft(psi))
    return -(1 + 1j * p.zeta) * psi + 1j * np.abs(psi) ** 2 * psi + 1j * p.d2 * d2psi + p.f


def fit_sech2_width(
    spectrum: CombSpectrum, b_guess: float, floor_db: float = 30.0
) -> tuple[float, float]:
    """Least-squares fit of ln P = c + 2 ln sech(pi mu / (2 b)): returns (b, rms residual).

    Pump line excluded; lines within floor_db of the strongest comb line; b scanned on a grid.
    """
    mu, power = spectrum.mode_number, spectrum.line_power
    comb = mu != 0
    keep = comb & (power > power[comb].max() * 10 ** (-floor_db / 10))
    x, y = mu[keep].astype(float), np.log(power[keep])
    widths = np.linspace(0.5 * b_guess, 1.5 * b_guess, 2001)
    model = -2.0 * np.log(np.cosh(np.pi * x[None, :] / (2.0 * widths[:, None])))
    resid = y[None, :] - model
    resid -= resid.mean(axis=1, keepdims=True)
    rms = np.sqrt(np.mean(resid**2, axis=1))
    best = int(np.argmin(rms))
    return float(widths[best]), float(rms[best])


# --- CW states -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zeta", "f", "n_roots"), [(1.0, 1.2, 1), (10.0, F, 3), (50.0, F, 1), (2.0, 1.4, 3)]
)
def test_cw_powers_solve_the_cubic_and_the_stationary_lle(zeta, f, n_roots):
    powers = cw_powers(zeta, f)
    assert len(powers) == n_roots
    assert list(powers) == sorted(powers)
    for y in powers:
        assert y * ((zeta - y) ** 2 + 1) == pytest.approx(f * f, rel=1e-10)
        psi = cw_field(zeta, f, y)
        assert abs(psi) ** 2 == pytest.approx(y, rel=1e-12)
        assert abs(-(1 + 1j * zeta) * psi + 1j * abs(psi) ** 2 * psi + f) < 1e-9 * f


def test_lower_branch_is_the_smallest_root_and_only_exists_where_bistable_or_red():
    assert lower_branch_power(10.0, F) == cw_powers(10.0, F)[0]
    assert lower_branch_power(50.0, F) == pytest.approx(F**2 / 50.0**2, rel=0.05)
    with pytest.raises(ValueError):
        lower_branch_power(5.0, F)  # below the fold: only the upper state, F^2 = 36
    with pytest.raises(ValueError):
        lower_branch_power(1.0, F)  # zeta < sqrt(3): no bistability


# --- single soliton ---------------------------------------------------------------------------


@pytest.mark.parametrize("zeta", [15.0, 20.0, 30.0])
def test_newton_soliton_solves_the_full_lle(zeta):
    p = coarse(zeta)
    psi = stationary_soliton(p)
    assert np.max(np.abs(lle_rhs(psi, p))) < 1e-8
    assert np.argmax(np.abs(psi)) == p.n_modes // 2  # centred at theta = 0
    assert theta_grid_rad(p.n_modes)[p.n_modes // 2] == 0.0


@pytest.mark.parametrize("zeta", [15.0, 20.0, 30.0])
def test_soliton_peak_is_sech_amplitude_on_the_cw_background(zeta):
    # |psi| peaks at sqrt(2 zeta) plus the background amplitude, with a relative phase:
    # (sqrt(2 zeta) - |psi_cw|)^2 <= peak <= (sqrt(2 zeta) + |psi_cw|)^2, and within 12 % of 2 zeta.
    p = coarse(zeta)
    peak = float(np.max(np.abs(stationary_soliton(p)) ** 2))
    background = math.sqrt(lower_branch_power(zeta, F))
    assert (
        (math.sqrt(2 * zeta) - background) ** 2 <= peak <= (math.sqrt(2 * zeta) + background) ** 2
    )
    assert peak == pytest.approx(2 * zeta, rel=0.12)


@pytest.mark.parametrize("zeta", [15.0, 20.0, 30.0])
def test_soliton_energy_matches_two_over_pi_sqrt_zeta_d2(zeta):
    # Within 4 %: the background-pulse cross term makes E1 1.5 to 3 % low in mid-range.
    assert soliton_energy(coarse(zeta)) == pytest.approx(
        analytic_soliton_energy(zeta, COARSE_D2), rel=0.04
    )


def test_soliton_is_cached_on_rounded_parameters_and_read_only():
    first = stationary_soliton(coarse(20.0))
    assert stationary_soliton(coarse(20.0 + 1e-13)) is first
    assert not first.flags.writeable


def test_newton_finds_no_soliton_beyond_zeta_max():
    with pytest.raises(SolitonNotFoundError):
        stationary_soliton(coarse(1.3 * analytic_zeta_max(F)))


def test_growth_rate_is_negative_when_stable_and_positive_when_breathing():
    assert soliton_growth_rate(coarse(20.0)) < -0.5
    assert soliton_growth_rate(coarse(10.0)) > 0.1


# --- integrator -------------------------------------------------------------------------------


def test_integrator_converges_to_the_newton_soliton():
    # From the sech ansatz to tau = 20 (20 damping times). Tolerance 3e-5 of the peak
    # amplitude: the O(dt^4) offset of the discrete steady state at dt = 2.4e-3 is ~ 1e-5.
    p = coarse(20.0)
    psi = integrate_lle(sech_ansatz(p), p, tau_end=20.0, dt=max_stable_step(p))
    newton = stationary_soliton(p)
    assert np.max(np.abs(psi - newton)) < 3e-5 * np.max(np.abs(newton))


def test_integrator_is_fourth_order():
    p = coarse(20.0)
    psi0 = sech_ansatz(p)
    reference = integrate_lle(psi0, p, 0.5, 2.5e-4)
    errors = [np.linalg.norm(integrate_lle(psi0, p, 0.5, dt) - reference) for dt in (2e-3, 1e-3)]
    assert 13.0 < errors[0] / errors[1] < 19.0  # 2^4 = 16


def test_step_is_capped_below_the_phase_wrap_of_the_edge_modes():
    p = coarse(20.0)
    assert max_stable_step(p) == pytest.approx(math.pi / (COARSE_D2 * 128**2))
    psi0 = sech_ansatz(p)
    capped = integrate_lle(psi0, p, 0.1, dt=1.0)
    assert np.array_equal(capped, integrate_lle(psi0, p, 0.1, dt=max_stable_step(p)))


@pytest.mark.parametrize(("zeta_offset", "breathes"), [(-0.8, True), (+1.0, False)])
def test_soliton_breathes_just_below_the_hopf_edge_and_settles_above(zeta_offset, breathes):
    zeta = soliton_existence_range(F, COARSE_D2, COARSE_MODES).zeta_low + zeta_offset
    p = coarse(zeta)
    kicked = stationary_soliton(p) * (1.0 + 1e-2 * np.cos(theta_grid_rad(p.n_modes)))
    psi = integrate_lle(kicked, p, tau_end=12.0, dt=max_stable_step(p))
    powers = []
    for _ in range(16):
        psi = integrate_lle(psi, p, tau_end=0.5, dt=max_stable_step(p))
        powers.append(mean_intracavity_power(psi))
    swing = (max(powers) - min(powers)) / soliton_energy(p)
    assert swing > 0.1 if breathes else swing < 1e-4


# --- existence range and table ----------------------------------------------------------------


@pytest.mark.parametrize("f_squared", [20.0, 36.0])
def test_existence_upper_edge_is_pi2_f2_over_8(f_squared):
    # Fold found by continuation to 0.01; pi^2 F^2 / 8 is asymptotic: allow 2 %.
    f = math.sqrt(f_squared)
    found = soliton_existence_range(f, COARSE_D2, COARSE_MODES)
    assert found.zeta_high == pytest.approx(analytic_zeta_max(f), rel=0.02)
    assert found.low_edge == "hopf"
    assert math.sqrt(3.0) < found.zeta_low < found.zeta_high


def test_step_table_spans_the_range_with_cw_background_and_soliton_energy():
    found = soliton_existence_range(F, COARSE_D2, COARSE_MODES)
    table = tabulate_soliton_steps(F, COARSE_D2, COARSE_MODES, n_points=24)
    assert table.zeta[0] == found.zeta_low
    assert table.zeta[-1] == found.zeta_high
    assert np.all(np.diff(table.zeta) > 0)
    np.testing.assert_allclose(table.p_cw, [lower_branch_power(z, F) for z in table.zeta])
    assert np.all(np.diff(table.e1) > 0)  # steps grow ~ sqrt(zeta)
    ratio = table.e1 / np.array([analytic_soliton_energy(z, COARSE_D2) for z in table.zeta])
    assert np.all((ratio > 0.92) & (ratio < 1.0))  # 6 % low at the fold, 2 to 3 % mid-range


def test_step_table_scales_with_sqrt_d2_at_equal_resolution():
    # Same n_modes * sqrt(d2): same range, and E1 scales as sqrt(d2) (to 1e-4).
    table = tabulate_soliton_steps(F, COARSE_D2, COARSE_MODES, n_points=12)
    half_ring = tabulate_soliton_steps(F, 4 * COARSE_D2, COARSE_MODES // 2, n_points=12)
    np.testing.assert_allclose(half_ring.zeta, table.zeta, atol=0.02)
    np.testing.assert_allclose(half_ring.e1 / 2.0, table.e1, rtol=1e-4)


# --- spectra and step heights -----------------------------------------------------------------


def test_single_soliton_spectrum_is_a_smooth_sech2():
    # Device ring; over the lines within 30 dB: ln-power rms residual < 0.05 (0.2 dB), power falls
    # monotonically away from the pump, and b within 7 % of sqrt(zeta / d2) (background makes the
    # pulse slightly narrower than the bare sech).
    zeta = 15.0
    spectrum = comb_line_powers(LLEParams(zeta=zeta), [0.0])
    b, rms = fit_sech2_width(spectrum, spectral_width_lines(zeta, DEVICE_D2))
    assert rms < 0.05
    assert b == pytest.approx(spectral_width_lines(zeta, DEVICE_D2), rel=0.07)
    upper = spectrum.line_power[spectrum.mode_number >= 1][:300]
    assert np.all(np.diff(upper) < 0)


def test_spectral_width_scales_as_sqrt_zeta_over_d2():
    # 1 / sqrt(d2): exact (0.5 %) at equal resolution; sqrt(zeta): within 5 % from zeta = 15 to 30.
    def width(zeta: float, d2: float, n_modes: int) -> float:
        p = LLEParams(zeta=zeta, f=F, d2=d2, n_modes=n_modes)
        return fit_sech2_width(comb_line_powers(p, [0.0]), spectral_width_lines(zeta, d2))[0]

    b_device = width(15.0, DEVICE_D2, 1024)
    assert b_device / width(15.0, 4 * DEVICE_D2, 512) == pytest.approx(2.0, rel=0.005)
    assert width(30.0, DEVICE_D2, 1024) / b_device == pytest.approx(math.sqrt(2.0), rel=0.05)


def test_device_single_soliton_spans_3p2_thz_and_over_200_lines():
    # physics.md: 3-dB bandwidth 3.2 THz (+- 10 %) at 49 GHz FSR, > 200 lines within 20 dB.
    spectrum = comb_line_powers(LLEParams(zeta=12.0), [0.0])
    comb = spectrum.line_power[spectrum.mode_number != 0]
    bandwidth_thz = np.count_nonzero(comb >= comb.max() / 2) * FSR_GHZ / 1e3
    assert bandwidth_thz == pytest.approx(3.2, rel=0.1)
    assert np.count_nonzero(comb >= comb.max() / 100) > 200


def test_two_solitons_fringe_the_envelope_and_one_does_not():
    # Line powers of N = 2 are those of N = 1 times 4 cos^2(mu dtheta / 2), exactly (1e-9).
    p = coarse(20.0)
    separation_rad = 1.0
    single = comb_line_powers(p, [0.0])
    double = comb_line_powers(p, [0.0, separation_rad])
    comb = single.mode_number != 0
    fringe = 4 * np.cos(single.mode_number[comb] * separation_rad / 2) ** 2
    np.testing.assert_allclose(
        double.line_power[comb], fringe * single.line_power[comb], rtol=1e-9, atol=1e-30
    )
    b = spectral_width_lines(20.0, COARSE_D2)
    assert fit_sech2_width(single, b)[1] < 0.05
    assert fit_sech2_width(double, b)[1] > 0.5


def test_parseval_line_powers_sum_to_mean_intracavity_power():
    p = coarse(20.0)
    positions = [0.0, 2.0, 4.0]
    total = float(np.sum(comb_line_powers(p, positions).line_power))
    assert total == pytest.approx(mean_intracavity_power(multi_soliton_field(p, positions)))


def test_step_heights_are_linear_in_soliton_number():
    # <|psi|^2> = P_cw + N E1 within 5 % for N = 1 ... 4 equally spaced solitons.
    p = coarse(20.0)
    p_cw = lower_branch_power(p.zeta, F)
    e1 = soliton_energy(p)
    for n in range(1, 5):
        positions = list(2 * np.pi * np.arange(n) / n)
        step = mean_intracavity_power(multi_soliton_field(p, positions)) - p_cw
        assert step == pytest.approx(n * e1, rel=0.05)


@pytest.mark.parametrize("n_solitons", [2, 3])
def test_superposed_solitons_are_stationary_under_the_lle(n_solitons):
    # The superposition stays put: after tau = 10 its mean power is P_cw + N E1 within 1 %.
    # (dt = 1e-2 is capped to max_stable_step; uncapped, three solitons go unstable by tau ~ 10.)
    p = coarse(20.0)
    positions = list(2 * np.pi * np.arange(n_solitons) / n_solitons + 0.3)
    psi = integrate_lle(multi_soliton_field(p, positions), p, tau_end=10.0, dt=1e-2)
    expected = lower_branch_power(p.zeta, F) + n_solitons * soliton_energy(p)
    assert mean_intracavity_power(psi) == pytest.approx(expected, rel=0.01)
