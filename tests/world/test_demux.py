"""DWDM units against the seed's specification, on the seed's comb (49 GHz lines, 100 GHz grid).

Tolerances: crosstalk limits are the seed's (adjacent <= -20 dB, non-adjacent <= -40 dB) checked
for every channel pair of five drawn units; insertion loss of a MUX + DEMUX pair within the seed's
4.7 to 5.2 dB; passband and background integrals against closed forms to 1e-3.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim_backends.world.demux import (
    C_BAND_40,
    Dwdm,
    comb_crosstalk_db,
    itu_frequency_hz,
    own_lines,
    pair_insertion_loss_db,
    seed_comb,
)
from sim_backends.world.light import Light

SEED_CHANNELS = (30, 31, 32, 33, 34)  # the seed's CH1 to CH5, taken here on ITU C30 to C34


def test_itu_grid() -> None:
    assert itu_frequency_hz(31) == pytest.approx(193.1e12)
    assert itu_frequency_hz(21) == pytest.approx(192.1e12)


def test_passband_is_flat_top_with_steep_skirts() -> None:
    unit = Dwdm(centre_hz={31: itu_frequency_hz(31)}, insertion_loss_db={31: 2.5})
    detuning = np.array([0.0, 13.7e9, 30e9, 50e9, 100e9, 200e9, 1e12])
    loss_db = -10 * np.log10(unit.transmission(31, itu_frequency_hz(31) + detuning))
    assert loss_db[0] == pytest.approx(2.5, abs=1e-9)
    assert loss_db[1] - 2.5 < 0.5  # the ITU passband +-0.11 nm within 0.5 dB
    assert loss_db[2] - 2.5 == pytest.approx(3.01, abs=0.01)  # 3-dB full width 60 GHz
    assert 10 < loss_db[3] - 2.5 < 20  # the channel edge, where guard lines sit
    assert loss_db[4] - 2.5 > 30  # adjacent channel centre
    assert loss_db[5] - 2.5 > 45  # next-but-one
    assert loss_db[6] - 2.5 == pytest.approx(55.0)  # isolation floor
    assert np.all(np.diff(loss_db) > 0)


def test_every_channel_holds_an_own_line_of_the_49_ghz_comb() -> None:
    comb = seed_comb()
    for channel in C_BAND_40:
        assert 1 <= own_lines(comb.line_frequency_hz, channel).sum() <= 2


@pytest.mark.parametrize("seed", range(5))
def test_crosstalk_on_the_seed_comb_meets_the_seed_spec(seed: int) -> None:
    unit = Dwdm.draw(np.random.default_rng(seed))
    comb = seed_comb()
    adjacent: list[float] = []
    far: list[float] = []
    for port in SEED_CHANNELS:
        for source in SEED_CHANNELS:
            if source != port:
                xt = comb_crosstalk_db(unit, comb, port, source)
                (adjacent if abs(source - port) == 1 else far).append(xt)
    assert max(adjacent) <= -20.0
    assert max(far) <= -40.0
    # the model's typical values, for the report: adjacent ~ -28 to -33 dB, far ~ -48 to -50 dB
    assert min(adjacent) > -36.0
    assert min(far) > -56.0


def test_crosstalk_spec_holds_across_the_band() -> None:
    unit = Dwdm.draw(np.random.default_rng(11))
    comb = seed_comb()
    for port in C_BAND_40[1:-1]:
        assert comb_crosstalk_db(unit, comb, port, port - 1) <= -20.0
        assert comb_crosstalk_db(unit, comb, port, port + 1) <= -20.0
        if port + 2 in unit.centre_hz:
            assert comb_crosstalk_db(unit, comb, port, port + 2) <= -40.0


@pytest.mark.parametrize("seed", range(5))
def test_mux_plus_demux_insertion_loss_in_seed_range(seed: int) -> None:
    rng = np.random.default_rng(seed)
    loss = pair_insertion_loss_db(Dwdm.draw(rng), Dwdm.draw(rng))
    values = np.array(list(loss.values()))
    assert set(loss) == set(C_BAND_40)
    assert np.all((values >= 4.7) & (values <= 5.2))
    assert values.max() - values.min() > 0.1  # depends on the channel, as in the seed


def test_draw_is_reproducible() -> None:
    a = Dwdm.draw(np.random.default_rng(3))
    b = Dwdm.draw(np.random.default_rng(3))
    assert a == b
    assert all(abs(a.centre_hz[c] - itu_frequency_hz(c)) <= 3e9 for c in a.channels)


def test_split_filters_lines_and_conserves_power() -> None:
    unit = Dwdm.draw(np.random.default_rng(0))
    comb = seed_comb(pump_excess_db=0.0)
    ports = unit.split(comb, SEED_CHANNELS)
    assert set(ports) == set(SEED_CHANNELS)
    for channel, light in ports.items():
        expected = comb.line_power_mw * unit.transmission(channel, comb.line_frequency_hz)
        np.testing.assert_allclose(light.line_power_mw, expected)
        own = own_lines(light.line_frequency_hz, channel)
        # the own line dominates; the two guard lines at the channel edges come next
        assert light.line_power_mw[own].sum() > 0.8 * light.total_power_mw
    assert sum(p.total_power_mw for p in unit.split(comb).values()) < comb.total_power_mw


def test_broadband_background_through_a_port() -> None:
    """Flat ASE through a port: power = PSD x IL x noise bandwidth, B (pi / 2N) / sin(pi / 2N)."""
    unit = Dwdm(centre_hz={31: itu_frequency_hz(31)}, insertion_loss_db={31: 2.5},
                isolation_floor_db=-200.0)
    psd = 1e-12  # mW/Hz
    ase = Light(background_frequency_hz=np.array([190e12, 196e12]),
                background_mw_per_hz=np.array([psd, psd]))
    out = unit.output(ase, 31)
    n = unit.cavities
    noise_bandwidth = unit.bandwidth_3db_hz * (math.pi / (2 * n)) / math.sin(math.pi / (2 * n))
    expected = psd * 10 ** (-0.25) * noise_bandwidth
    assert out.total_power_mw == pytest.approx(expected, rel=1e-3)


def test_the_pump_bandpass_keeps_the_pump_and_cuts_the_ase() -> None:
    """The EDFA's ASE 3.6 nm from the pump (where C31 sits) falls by the filter's 40 dB floor;
    the pump line passes whole, the -3 dB points are at +-width/2."""
    pump_hz, width_hz = 192.66e12, 125e9
    ase = Light(np.array([pump_hz]), np.array([3500.0]),
                np.array([pump_hz - 500e9, pump_hz - 450e9, pump_hz - width_hz / 2, pump_hz]),
                np.full(4, 1.4e-13))
    out = ase.bandpass(pump_hz, width_hz, 40.0)
    assert out.line_power_mw[0] == pytest.approx(3500.0)
    assert out.background_mw_per_hz / 1.4e-13 == pytest.approx([1e-4, 1e-4, 0.5, 1.0], rel=1e-3)
