"""Decoy-state estimates (labd.qkd.estimation) against hand computations and the seed's numbers.

The hand computations below use plain math on the published formulas (design/physics.md sec. 5,
Ma et al. PRA 72, 012326 (2005), Lim et al. PRA 89, 022307 (2014)), not the module's helpers.
Seed link (physics.md): f_rep 1 GHz, eta = 0.15 x 10^-1.0, Y0 = 1e-6, e_d set so E_mu = 2.66 %,
f_EC 1.16, p = (29, 2, 1) / 32, p_X = 1/2; TR1 mu/nu1/nu2 = 0.50/0.16/0.008, TR2 0.60/0.06/0.008.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labd.qkd.estimation import (
    BasisCounts,
    BlockCounts,
    ClassCounts,
    LinkModel,
    Protocol,
    block_time_s,
    dark_yield,
    decoy_bounds,
    estimate,
    expected_block,
    expected_classes,
    finite_key_block,
    finite_key_length,
)

ETA = 0.15 * 10**-1.0
Y0 = 1e-6
QBER = 0.0266
F_EC = 1.16
P_K = (29 / 32, 2 / 32, 1 / 32)
TR1 = (0.50, 0.16, 0.008)
TR2 = (0.60, 0.06, 0.008)
SEED = Protocol()


# --- hand computations (plain math) ------------------------------------------------------------


def h(x: float) -> float:
    return 0.0 if x in (0.0, 1.0) else -x * math.log2(x) - (1 - x) * math.log2(1 - x)


def misalignment(mu: float) -> float:
    """e_d with E_mu = 2.66 %: solve E Q = Y0 / 2 + e_d (1 - e^-eta mu), Q = Y0 + 1 - e^-eta mu."""
    signal = 1 - math.exp(-ETA * mu)
    return (QBER * (Y0 + signal) - 0.5 * Y0) / signal


def hand_gain_qber(k: float, e_d: float) -> tuple[float, float]:
    signal = 1 - math.exp(-ETA * k)
    gain = Y0 + signal
    return gain, (0.5 * Y0 + e_d * signal) / gain


def hand_asymptotic(mu: float, nu1: float, nu2: float) -> dict[str, float]:
    """Ma 2005 two-weak-decoy bounds and the GLLP rate, q = 1/2, p_mu = 29/32, f_rep = 1 GHz."""
    e_d = misalignment(mu)
    qm, em = hand_gain_qber(mu, e_d)
    q1, e1 = hand_gain_qber(nu1, e_d)
    q2, e2 = hand_gain_qber(nu2, e_d)
    y0 = max((nu1 * q2 * math.exp(nu2) - nu2 * q1 * math.exp(nu1)) / (nu1 - nu2), 0)
    y1 = mu / (mu * (nu1 - nu2) - (nu1**2 - nu2**2)) * (
        q1 * math.exp(nu1) - q2 * math.exp(nu2)
        - (nu1**2 - nu2**2) / mu**2 * (qm * math.exp(mu) - y0))
    e1u = (e1 * q1 * math.exp(nu1) - e2 * q2 * math.exp(nu2)) / ((nu1 - nu2) * y1)
    rate = 0.5 * (29 / 32) * 1e9 * (y1 * mu * math.exp(-mu) * (1 - h(e1u)) - F_EC * qm * h(em))
    return {"Q_mu": qm, "E_mu": em, "Q_nu1": q1, "E_nu1": e1, "Q_nu2": q2, "E_nu2": e2,
            "Y0_L": y0, "Y1_L": y1, "e1_U": e1u, "R": rate}


def hand_lim_length(ks: tuple[float, float, float], n_key: list[float], m_key: list[float],
                    n_test: list[float], m_test: list[float], eps_sec: float,
                    eps_cor: float) -> float:
    """Lim 2014 Eqs. (1)-(5) for one key basis; n^- and m^- floored at 0 (documented)."""
    m1, m2, m3 = ks
    eps = eps_sec / 21
    tau0 = sum(p * math.exp(-k) for k, p in zip(ks, P_K, strict=True))
    tau1 = sum(p * math.exp(-k) * k for k, p in zip(ks, P_K, strict=True))

    def pm(x: list[float]) -> tuple[list[float], list[float]]:
        d = math.sqrt(sum(x) / 2 * math.log(1 / eps))
        lo = [math.exp(k) / p * max(c - d, 0) for k, p, c in zip(ks, P_K, x, strict=True)]
        hi = [math.exp(k) / p * (c + d) for k, p, c in zip(ks, P_K, x, strict=True)]
        return lo, hi

    def s0_s1(n: list[float]) -> tuple[float, float]:
        lo, hi = pm(n)
        s0 = max(tau0 * (m2 * lo[2] - m3 * hi[1]) / (m2 - m3), 0)
        s1 = tau1 * m1 * (lo[1] - hi[2] - (m2**2 - m3**2) / m1**2 * (hi[0] - s0 / tau0)) / (
            m1 * (m2 - m3) - m2**2 + m3**2)
        return s0, s1

    s0x, s1x = s0_s1(n_key)
    _, s1z = s0_s1(n_test)
    mlo, mhi = pm(m_test)
    v1z = tau1 * (mhi[1] - mlo[2]) / (m2 - m3)
    b = v1z / s1z
    gamma = math.sqrt((s1z + s1x) * (1 - b) * b / (s1z * s1x * math.log(2)) * math.log2(
        (s1z + s1x) / (s1z * s1x * (1 - b) * b) * 21**2 / eps_sec**2))
    leak = F_EC * sum(n_key) * h(sum(m_key) / sum(n_key))
    length = (s0x + s1x * (1 - h(b + gamma)) - leak - 6 * math.log2(21 / eps_sec)
              - math.log2(2 / eps_cor))
    return max(math.floor(length), 0)


def seed_link(ks: tuple[float, float, float], dead_time_s: float = 0.0,
              detectors: int = 2) -> LinkModel:
    return LinkModel(transmittance=ETA, dark_yield=Y0, misalignment=misalignment(ks[0]),
                     dead_time_s=dead_time_s, detectors=detectors)


def seed_block(ks: tuple[float, float, float], seconds: float) -> BlockCounts:
    return expected_block(seed_link(ks), ks, SEED, seconds)


# --- the seed's asymptotic numbers -------------------------------------------------------------


@pytest.mark.parametrize(("ks", "published_bps"), [(TR1, 0.85e6), (TR2, 0.93e6)])
def test_seed_asymptotic_rate_matches_hand_computation_and_physics_md(
        ks: tuple[float, float, float], published_bps: float) -> None:
    hand = hand_asymptotic(*ks)
    est = estimate(seed_block(ks, 3600.0), SEED)
    assert hand["Y0_L"] == 0.0  # nu2 = 0.008 is not vacuum: the Y0 bound is vacuous here
    assert est.gain == pytest.approx(hand["Q_mu"], rel=1e-12)
    assert est.qber == pytest.approx(QBER, rel=1e-12)
    for name, cls in est.classes.items():
        assert cls.gain == pytest.approx(hand[f"Q_{name}"], rel=1e-12)
        assert cls.qber == pytest.approx(hand[f"E_{name}"], rel=1e-12)
    assert est.y1_lower == pytest.approx(hand["Y1_L"], rel=1e-9)
    assert est.e1_upper == pytest.approx(hand["e1_U"], rel=1e-9)
    assert est.skr_asymptotic_bps == pytest.approx(hand["R"], rel=1e-9)
    # physics.md: ~0.85 Mbps (TR1), ~0.93 Mbps (TR2); we get 0.847 and 0.932 Mbps
    assert est.skr_asymptotic_bps == pytest.approx(published_bps, rel=0.02)
    # sifted key: q sum_k p_k Q_k f_rep, every class
    sifted = 0.5 * 1e9 * sum(p * hand[f"Q_{n}"] for p, n in zip(P_K, ("mu", "nu1", "nu2"),
                                                                 strict=True))
    assert est.sifted_bps == pytest.approx(sifted, rel=1e-12)


def test_q_follows_p_x() -> None:
    """Sifting share q = p_X^2 + p_Y^2: at p_X = 0.8 the same link gives 0.68 / 0.5 the rate."""
    biased = Protocol(p_x=0.8)
    base = estimate(seed_block(TR1, 3600.0), SEED)
    est = estimate(expected_block(seed_link(TR1), TR1, biased, 3600.0), biased)
    assert est.gain == pytest.approx(base.gain, rel=1e-12)
    assert est.skr_asymptotic_bps == pytest.approx(base.skr_asymptotic_bps * 0.68 / 0.5, rel=1e-9)


def test_estimate_from_integer_counts_by_hand() -> None:
    """Q_k = (n_X + n_Y) / (q sent), E_k = (m_X + m_Y) / (n_X + n_Y), rates per block time."""
    block = BlockCounts(
        mu=ClassCounts(0.5, 29_000_000, BasisCounts(54_000, 1_500), BasisCounts(54_300, 1_380)),
        nu1=ClassCounts(0.16, 2_000_000, BasisCounts(1_210, 30), BasisCounts(1_190, 36)),
        nu2=ClassCounts(0.008, 1_000_000, BasisCounts(31, 2), BasisCounts(29, 1)),
    )
    est = estimate(block, SEED)
    seconds = 32e6 / 1e9
    assert block_time_s(block, SEED) == pytest.approx(seconds)
    assert est.gain == pytest.approx((54_000 + 54_300) / (0.5 * 29e6))
    assert est.qber == pytest.approx((1_500 + 1_380) / (54_000 + 54_300))
    assert est.classes["nu2"].gain == pytest.approx(60 / 0.5e6)
    assert est.classes["nu1"].qber == pytest.approx(66 / 2_400)
    assert est.sifted_bps == pytest.approx((108_300 + 2_400 + 60) / seconds)
    assert est.skr_bps == 0.0  # 32 ms of counts: far too few for the finite key


def test_status_shape_matches_architecture() -> None:
    status = dataclasses.asdict(estimate(seed_block(TR2, 100.0), SEED))
    assert set(status) == {"qber", "gain", "sifted_bps", "skr_bps", "skr_asymptotic_bps",
                           "y1_lower", "e1_upper", "classes"}
    assert set(status["classes"]) == {"mu", "nu1", "nu2"}
    assert status["classes"]["nu1"] == pytest.approx(
        {"intensity": 0.06, "gain": hand_asymptotic(*TR2)["Q_nu1"],
         "qber": hand_asymptotic(*TR2)["E_nu1"]}, rel=1e-12)


# --- finite key (Lim 2014) ---------------------------------------------------------------------


@pytest.mark.parametrize(("ks", "p_x"), [(TR1, 0.5), (TR2, 0.5), (TR1, 0.7)])
def test_finite_key_matches_hand_computation(ks: tuple[float, float, float], p_x: float) -> None:
    """100 s of expected counts; each basis keys with the other testing, eps split in two."""
    protocol = Protocol(p_x=p_x)
    block = expected_block(seed_link(ks), ks, protocol, 100.0)
    nx, mx = [c.x.detections for c in block.classes], [c.x.errors for c in block.classes]
    ny, my = [c.y.detections for c in block.classes], [c.y.errors for c in block.classes]
    key_x = hand_lim_length(ks, nx, mx, ny, my, eps_sec=1e-10 / 2, eps_cor=1e-15 / 2)
    key_y = hand_lim_length(ks, ny, my, nx, mx, eps_sec=1e-10 / 2, eps_cor=1e-15 / 2)
    assert key_x > 0 and key_y > 0
    assert (key_x == key_y) == (p_x == 0.5)
    assert finite_key_block(block, protocol, "x").key_length == pytest.approx(key_x, abs=1)
    assert finite_key_block(block, protocol, "y").key_length == pytest.approx(key_y, abs=1)
    assert finite_key_length(block, protocol) == pytest.approx(key_x + key_y, abs=2)
    assert estimate(block, protocol).skr_bps == pytest.approx((key_x + key_y) / 100.0, abs=0.02)


SECONDS = (1.0, 3.0, 10.0, 30.0, 100.0, 1000.0, 3600.0)


@pytest.mark.parametrize(("ks", "zero_up_to_s"), [(TR1, 3.0), (TR2, 10.0)])
def test_finite_key_rises_with_block_size_and_vanishes_for_small_blocks(
        ks: tuple[float, float, float], zero_up_to_s: float) -> None:
    """Zero for blocks of a few seconds (TR1) to 10 s (TR2), then rising towards the limit."""
    rates = [estimate(seed_block(ks, t), SEED).skr_bps for t in SECONDS]
    assert all(r == 0.0 for t, r in zip(SECONDS, rates, strict=True) if t <= zero_up_to_s)
    assert all(b > a for a, b in itertools.pairwise(rates) if b > 0.0)
    assert rates[-1] > 0.0
    asymptotic = estimate(seed_block(ks, 3600.0), SEED).skr_asymptotic_bps
    # 1 h blocks are within 10 % of the asymptotic rate; Lim's key also uses the decoys' bits,
    # so its own limit lies a few per cent above the mu-only GLLP rate
    assert rates[-1] == pytest.approx(asymptotic, rel=0.1)
    assert estimate(seed_block(ks, 1e7), SEED).skr_bps == pytest.approx(asymptotic, rel=0.06)


def test_post_processing_efficiency_scales_the_finite_key_only() -> None:
    block = seed_block(TR1, 600.0)
    full, tenth = estimate(block, SEED), estimate(block, Protocol(efficiency=0.1))
    assert tenth.skr_bps == pytest.approx(0.1 * full.skr_bps, rel=1e-12)
    assert tenth.skr_asymptotic_bps == full.skr_asymptotic_bps


# --- edge cases --------------------------------------------------------------------------------


def _uniform_block(ks: tuple[float, float, float], detections: float,
                   errors: float) -> BlockCounts:
    def cls(k: float) -> ClassCounts:
        return ClassCounts(k, 1e6, BasisCounts(detections, errors), BasisCounts(detections, errors))
    return BlockCounts(*(cls(k) for k in ks))


def test_no_detections_give_zero_rates_and_uninformative_qber() -> None:
    est = estimate(_uniform_block(TR1, 0.0, 0.0), SEED)
    assert (est.gain, est.qber, est.sifted_bps) == (0.0, 0.5, 0.0)
    assert (est.skr_bps, est.skr_asymptotic_bps, est.y1_lower, est.e1_upper) == (0, 0, 0, 0.5)


def test_all_errors_give_zero_rates() -> None:
    block = expected_block(seed_link(TR1), TR1, SEED, 3600.0)
    flipped = BlockCounts(*(dataclasses.replace(
        c, x=BasisCounts(c.x.detections, c.x.detections),
        y=BasisCounts(c.y.detections, c.y.detections)) for c in block.classes))
    est = estimate(flipped, SEED)
    assert est.qber == 1.0 and est.e1_upper == 0.5
    assert est.skr_bps == 0.0 and est.skr_asymptotic_bps == 0.0


def test_vacuum_weak_decoy_is_allowed_and_bounds_y0() -> None:
    ks = (0.5, 0.16, 0.0)
    est = estimate(expected_block(seed_link(ks), ks, SEED, 3600.0), SEED)
    bounds = decoy_bounds(list(est.classes.values()))
    assert bounds.y0_lower == pytest.approx(Y0, rel=1e-9)  # (nu1 Q_0 - 0) / nu1 = Y0
    assert est.skr_asymptotic_bps > estimate(seed_block(TR1, 3600.0), SEED).skr_asymptotic_bps
    assert est.skr_bps > 0.0


@pytest.mark.parametrize("ks", [(0.5, 0.3, 0.3), (0.2, 0.16, 0.08), (0.5, 0.16, -0.01),
                                (math.nan, 0.1, 0.0), (1e3, 0.1, 0.0)])
def test_intensities_outside_the_decoy_conditions_are_refused(
        ks: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match=r"intensities|decoy bounds"):
        _uniform_block(ks, 10.0, 1.0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"detections": 5.0, "errors": 6.0}, "errors <= detections"),
    ({"detections": -1.0, "errors": 0.0}, "errors <= detections"),
    ({"detections": math.inf, "errors": 0.0}, "finite"),
])
def test_inconsistent_basis_counts_are_refused(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BasisCounts(**kwargs)


def test_class_counts_are_checked() -> None:
    with pytest.raises(ValueError, match="sent at least once"):
        ClassCounts(0.5, 0, BasisCounts(), BasisCounts())
    with pytest.raises(ValueError, match="more sifted detections"):
        ClassCounts(0.5, 10, BasisCounts(6, 0), BasisCounts(6, 0))


@pytest.mark.parametrize("kwargs", [{"p_x": 1.0}, {"probabilities": (0.5, 0.5, 0.0)},
                                    {"probabilities": (0.5, 0.2, 0.2)}, {"f_ec": 0.9},
                                    {"eps_sec": 0.0}, {"efficiency": 1.5}, {"clock_hz": 0.0}])
def test_protocol_settings_are_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Protocol(**kwargs)  # type: ignore[arg-type]


# --- expected counts ---------------------------------------------------------------------------


def test_expected_counts_follow_physics_md_and_lim_afterpulsing() -> None:
    p_ap, e_d = 0.04, 0.01
    plain = LinkModel(transmittance=ETA, dark_yield=Y0, misalignment=e_d)
    after = dataclasses.replace(plain, afterpulse_probability=p_ap)
    for k, cls, cls_ap in zip(TR1, expected_classes(plain, TR1, SEED),
                              expected_classes(after, TR1, SEED), strict=True):
        signal = 1 - math.exp(-ETA * k)
        assert cls.gain == pytest.approx(Y0 + signal, rel=1e-12)
        assert cls.qber * cls.gain == pytest.approx(0.5 * Y0 + e_d * signal, rel=1e-12)
        # Lim 2014 Sec. IV: D_k = 1 - (1 - 2 p_dc) e^-eta k, R_k = D_k (1 + p_ap),
        # e_k = p_dc + e_mis (1 - e^-eta k) + p_ap D_k / 2 (error probability per gate)
        d_k = 1 - (1 - Y0) * math.exp(-ETA * k)
        assert cls_ap.gain == pytest.approx(d_k * (1 + p_ap), rel=1e-6)
        assert cls_ap.qber * cls_ap.gain == pytest.approx(
            Y0 / 2 + e_d * signal + p_ap * d_k / 2, rel=1e-6)


def test_dead_time_keeps_a_live_share_of_every_class() -> None:
    """Non-paralysable: live share 1 / (1 + r tau), r = f_rep sum p_k Q_k / detectors."""
    link = seed_link(TR2, dead_time_s=50e-9, detectors=2)
    dead = expected_classes(link, TR2, SEED)
    live = expected_classes(dataclasses.replace(link, dead_time_s=0.0), TR2, SEED)
    rate = 1e9 * sum(p * c.gain for p, c in zip(P_K, live, strict=True)) / 2
    for d, c in zip(dead, live, strict=True):
        assert d.gain == pytest.approx(c.gain / (1 + rate * 50e-9), rel=1e-12)
        assert d.qber == pytest.approx(c.qber, rel=1e-12)


def test_dark_yield_from_per_detector_probability() -> None:
    assert dark_yield(5e-7, 2) == pytest.approx(1e-6, rel=1e-6)
    assert dark_yield(1e-6, 1) == pytest.approx(1e-6, rel=1e-12)


# --- properties --------------------------------------------------------------------------------

links = st.builds(
    LinkModel,
    transmittance=st.floats(1e-4, 0.2),
    dark_yield=st.floats(0.0, 1e-4),
    misalignment=st.floats(0.0, 0.2),
)
intensity_sets = st.tuples(st.floats(0.2, 0.9), st.floats(0.05, 0.5), st.floats(0.0, 0.5)).map(
    lambda t: (t[0], t[0] * t[1] * 0.9, t[0] * t[1] * 0.9 * t[2]))
protocols = st.builds(Protocol, p_x=st.floats(0.2, 0.8))


def _add_errors(block: BlockCounts, index: int, basis: str, share: float) -> BlockCounts:
    classes = list(block.classes)
    c = classes[index]
    counts = c.x if basis == "x" else c.y
    added = counts.errors + share * (counts.detections - counts.errors)
    more = BasisCounts(counts.detections, min(added, counts.detections))
    classes[index] = (dataclasses.replace(c, x=more) if basis == "x"
                      else dataclasses.replace(c, y=more))
    return BlockCounts(*classes)


@settings(max_examples=150, deadline=None)
@given(link=links, ks=intensity_sets, protocol=protocols, seconds=st.floats(1.0, 1e4),
       index=st.sampled_from([0, 1]), basis=st.sampled_from(["x", "y"]),
       share=st.floats(0.0, 1.0))
def test_more_signal_or_nu1_errors_never_raise_the_rates(
        link: LinkModel, ks: tuple[float, float, float], protocol: Protocol, seconds: float,
        index: int, basis: str, share: float) -> None:
    """Errors added to mu or nu1 (either basis) never raise a rate. (nu2 errors enter the
    published bounds with a minus sign, so they are left out: see the module docstring.)"""
    block = expected_block(link, ks, protocol, seconds)
    before, after = estimate(block, protocol), estimate(_add_errors(block, index, basis, share),
                                                        protocol)
    assert after.skr_asymptotic_bps <= before.skr_asymptotic_bps * (1 + 1e-12) + 1e-9
    assert after.skr_bps <= before.skr_bps * (1 + 1e-12) + 1.0 / seconds


@st.composite
def arbitrary_blocks(draw: st.DrawFn) -> BlockCounts:
    """Any counts the checks accept, consistent with a link or not."""
    def cls(k: float) -> ClassCounts:
        sent = draw(st.floats(1.0, 1e12))
        nx, ny = draw(st.floats(0.0, sent / 2)), draw(st.floats(0.0, sent / 2))
        return ClassCounts(k, sent, BasisCounts(nx, draw(st.floats(0.0, 1.0)) * nx),
                           BasisCounts(ny, draw(st.floats(0.0, 1.0)) * ny))
    return BlockCounts(*(cls(k) for k in draw(intensity_sets)))


@settings(max_examples=200, deadline=None)
@given(block=arbitrary_blocks())
def test_any_accepted_counts_give_finite_bounded_estimates(block: BlockCounts) -> None:
    est = estimate(block, SEED)
    values = dataclasses.asdict(est)
    flat = [v for k, v in values.items() if k != "classes"] + [
        x for c in values["classes"].values() for x in c.values()]
    assert all(math.isfinite(v) for v in flat)
    assert 0.0 <= est.y1_lower <= 1.0 and 0.0 <= est.e1_upper <= 0.5
    assert est.skr_bps >= 0.0 and est.skr_asymptotic_bps >= 0.0
    assert all(0.0 <= c.qber <= 1.0 for c in est.classes.values())
