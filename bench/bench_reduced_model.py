"""Benchmark and calibration of the reduced microresonator model (sim_backends/world/resonator.py).

Default run (python bench/bench_reduced_model.py, ~ 1 min):
1. Simulated seconds per wall second with the ring parked in a state (solitons with the aux laser
   locked; chaotic MI; cold) and the world synced every 1 ms ... 1 s (instrument polling).
2. Wall time of the whole lab procedure synced every 1 ms: aux lock, blue-to-red pump sweep into
   a multi-soliton state, backward tuning down to the single soliton, and the same sweep without
   the aux laser (thermal triangle, MI, soliton lost in microseconds).

--calibrate (~ 10 min single-threaded) reruns the LLE integrations behind the model's MI and
soliton-birth constants on the coarse ring (256 modes, d2 scaled as in lle.py):
- blue-to-red sweeps at F^2 = 25, 36, 49 (dzeta/dtau = 0.05, 4 seeds at 36): mean MI power / upper
  CW root against zeta, where the MI state collapses, MI pulses before and solitons after it;
- adiabatic down-sweeps of one stationary soliton: where it decays, relative to the Hopf edge;
- the MI spectrum at fixed zeta: fraction of power in the comb, e-folding width of the envelope.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from sim_backends.world import lle
from sim_backends.world.laser import C_M_PER_S
from sim_backends.world.resonator import Branch, Microresonator, Regime
from sim_backends.world.rig import AUX_PARK_M, Rig, rig


def bench_rig(seed: int, aux_on: bool) -> Rig:
    """The resonator tests' rig, the aux laser on or off, polled as the power meter polls."""
    r = rig(seed)
    r.aux.diode_on = aux_on
    r.poll_power_meter = True
    return r


def procedure(sync_s: float, seed: int = 1) -> dict[str, float]:
    """Aux lock, sweep into solitons at 50 pm/s, backward tuning at 1 pm/s down to N = 1."""
    rig = bench_rig(seed, aux_on=True)
    start = time.perf_counter()
    rig.sweep(rig.aux, AUX_PARK_M, 1.0)
    simulated = rig.run(0.45, min(sync_s, 0.01))
    rig.sweep(rig.pump, 1556.20e-9, 0.05)
    simulated += rig.run(4.0, sync_s, lambda r: r.ring.soliton_number > 0
                         and r.ring.zeta_eff > 16.0)
    rig.pump.stop_sweep()
    born = rig.ring.soliton_number
    rig.sweep(rig.pump, rig.pump.emitted_wavelength_m - 10e-12, 0.001)
    simulated += rig.run(10.0, sync_s, lambda r: r.ring.soliton_number <= 1)
    rig.pump.stop_sweep()
    simulated += rig.run(1.0, sync_s)
    wall = time.perf_counter() - start
    start = time.perf_counter()
    rig.ring.monitor_light()  # an OSA trace: the LLE spectrum on the 1024-mode ring
    return {"wall_s": wall, "simulated_s": simulated, "born": born,
            "final_n": rig.ring.soliton_number, "syncs": rig.syncs,
            "substeps": rig.ring.substeps, "osa_s": time.perf_counter() - start}


def no_aux_sweep(sync_s: float) -> dict[str, float]:
    rig = bench_rig(1, aux_on=False)
    start = time.perf_counter()
    rig.sweep(rig.pump, 1556.30e-9, 1.0)
    simulated = rig.run(0.35, sync_s)
    kinds = [e.kind for e in rig.ring.events]
    return {"wall_s": time.perf_counter() - start, "simulated_s": simulated,
            "collapses": kinds.count("collapse"), "losses": kinds.count("soliton_lost")}


def parked_rate(state: str, sync_s: float, simulated_s: float) -> float:
    """Simulated seconds per wall second with the lasers parked in a given state."""
    rig = bench_rig(1, aux_on=state == "soliton")
    if state == "soliton":
        rig.sweep(rig.aux, AUX_PARK_M, 1.0)
        rig.run(0.45, 0.01)
        rig.sweep(rig.pump, 1556.25e-9, 0.5)
        rig.run(1.0, 1e-3, lambda r: r.ring.soliton_number > 0 and r.ring.zeta_eff > 20)
        rig.pump.stop_sweep()
    elif state == "mi":  # upper branch at zeta_eff = 3, in thermal equilibrium (fixed point)
        ring = rig.ring
        ring.branch = Branch.UPPER
        for _ in range(30):
            rig.inputs()
            shift = ring.zeta_eff - 3.0
            pump_hz = rig.pump.frequency_hz + shift / ring.constants.zeta_per_hz
            rig.pump.wavelength_m = C_M_PER_S / pump_hz
            rig.inputs()
            ring.delta_t_k = ring.params.thermal.resistance_k_per_w * ring.heat_load_w
    rig.advance(sync_s)
    expected = {"soliton": Regime.SOLITON, "mi": Regime.MI, "cold": Regime.CW_LOWER}[state]
    assert rig.ring.regime is expected, (state, rig.ring.regime)
    start = time.perf_counter()
    for _ in range(max(1, round(simulated_s / sync_s))):
        rig.advance(sync_s)
    return simulated_s / (time.perf_counter() - start)


# --- calibration against the LLE ----------------------------------------------------------------

COARSE_MODES = 256
COARSE_D2 = lle.DEVICE_D2 * (lle.DEVICE_N_MODES / COARSE_MODES) ** 2


def lle_up_sweep(f2: float, seed: int, rate: float = 0.05) -> np.ndarray:
    """Rows (zeta, <|psi|^2>, upper CW root, pulses above zeta) of a blue-to-red LLE sweep."""
    f, n = math.sqrt(f2), COARSE_MODES
    rng = np.random.default_rng(seed)
    zeta, chunk = -3.0, 0.5
    psi = lle.cw_field(zeta, f, lle.cw_powers(zeta, f)[-1]) + 1e-3 * (
        rng.standard_normal(n) + 1j * rng.standard_normal(n))
    rows = []
    while zeta < 14.0:
        psi = lle.integrate_lle(psi.astype(complex),
                                lle.LLEParams(zeta=zeta, f=f, d2=COARSE_D2, n_modes=n),
                                chunk, 2e-3)
        psi = psi + 1e-4 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
        power = np.abs(psi) ** 2
        peaks = int(np.sum((power > max(zeta, 2.0)) & (power >= np.roll(power, 1))
                           & (power > np.roll(power, -1))))
        rows.append((zeta, power.mean(), lle.cw_powers(zeta, f)[-1], peaks))
        zeta += rate * chunk
    return np.array(rows)


def lle_decay_edge(f2: float, rate: float = 0.01) -> tuple[float, float]:
    """(Hopf edge, zeta where a single soliton swept down slowly decays) on the coarse ring."""
    f, n = math.sqrt(f2), COARSE_MODES
    edge = lle.soliton_existence_range(f=f, d2=COARSE_D2, n_modes=n).zeta_low
    zeta = edge + 0.3
    psi = np.array(lle.stationary_soliton(lle.LLEParams(zeta=zeta, f=f, d2=COARSE_D2,
                                                        n_modes=n)), dtype=complex)
    while zeta > 2.0:
        psi = lle.integrate_lle(psi, lle.LLEParams(zeta=zeta, f=f, d2=COARSE_D2, n_modes=n),
                                0.5, 2e-3)
        if np.max(np.abs(psi) ** 2) < zeta:
            return edge, zeta
        zeta -= rate * 0.5
    return edge, math.nan


def lle_mi_spectrum(zeta: float, f2: float = 36.0) -> tuple[float, float]:
    """(comb fraction of <|psi|^2>, envelope e-folding / MI period) of the chaotic state."""
    f, n = math.sqrt(f2), COARSE_MODES
    rng = np.random.default_rng(0)
    params = lle.LLEParams(zeta=zeta, f=f, d2=COARSE_D2, n_modes=n)
    psi = lle.cw_field(zeta, f, lle.cw_powers(zeta, f)[-1]) + 1e-2 * (
        rng.standard_normal(n) + 1j * rng.standard_normal(n))
    psi = lle.integrate_lle(psi.astype(complex), params, 40.0, 2e-3)
    spectrum, total = np.zeros(n), 0.0
    for _ in range(60):
        psi = lle.integrate_lle(psi, params, 1.0, 2e-3)
        lines = np.abs(np.fft.fftshift(np.fft.fft(psi)) / n) ** 2
        spectrum += lines / 60
        total += lines.sum() / 60
    mu = np.arange(-n // 2, n // 2)
    comb = (mu != 0) & (spectrum > spectrum[mu != 0].max() * 1e-4)
    slope = np.polyfit(np.abs(mu[comb]), np.log(spectrum[comb]), 1)[0]
    period = math.sqrt((2 * lle.cw_powers(zeta, f)[-1] - zeta) / COARSE_D2)
    return 1 - spectrum[n // 2] / total, -1 / slope / period


def calibrate() -> None:
    print("MI power ratio and collapse (LLE blue-to-red sweeps, coarse ring):")
    births, pulses = [], []
    for f2, seeds in ((25.0, (2, 3)), (36.0, (2, 3, 4, 5)), (49.0, (2, 3))):
        for seed in seeds:
            rows = lle_up_sweep(f2, seed)
            zeta, mean, upper, peaks = rows.T
            ratio = mean / upper
            collapse = int(np.argmax(ratio < 0.3))
            bins = {z: ratio[(zeta >= z - 0.5) & (zeta < z + 0.5)].mean()
                    for z in range(-1, int(zeta[collapse]))}
            born = int(peaks[-1])
            m = math.sqrt((2 * upper[collapse] - zeta[collapse]) / COARSE_D2)
            births.append(born)
            pulses.append(m)
            print(f"  F^2 {f2:4.0f} seed {seed}: collapse at zeta {zeta[collapse]:5.2f}, "
                  f"N {born}, MI pulses {m:4.1f}; ratio "
                  + " ".join(f"{z}:{r:.2f}" for z, r in bins.items()))
    print(f"  survival probability N / M = {np.sum(births) / np.sum(pulses):.3f}")
    print("Breather decay edge (adiabatic down-sweep of one soliton):")
    for f2 in (25.0, 36.0, 49.0):
        hopf, decay = lle_decay_edge(f2)
        print(f"  F^2 {f2:4.0f}: Hopf {hopf:6.2f}, decays at {decay:6.2f}, "
              f"ratio {decay / hopf:.3f}")
    print("MI spectrum (F^2 = 36):")
    for zeta in (2.0, 5.0):
        fraction, width = lle_mi_spectrum(zeta)
        print(f"  zeta {zeta}: comb fraction {fraction:.2f}, e-folding {width:.2f} MI periods")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", action="store_true", help="rerun the LLE calibration")
    args = parser.parse_args()
    if args.calibrate:
        calibrate()
        return
    start = time.perf_counter()
    Microresonator().calibration  # noqa: B018 (the one-off LLE table)
    print(f"LLE soliton table: {time.perf_counter() - start:.2f} s (once per process)")
    print("Parked, simulated s per wall s:")
    for state in ("soliton", "mi", "cold"):
        rates = [f"{sync * 1e3:g} ms: {parked_rate(state, sync, max(2.0, 200 * sync)):8.0f}"
                 for sync in (1e-3, 1e-2, 1e-1, 1.0)]
        print(f"  {state:8s} " + ", ".join(rates))
    for sync in (1e-3, 1e-2, 1e-1):
        result = procedure(sync)
        print(f"Aux lock + sweep into solitons + step-down to N = 1, synced every "
              f"{sync * 1e3:g} ms: {result['wall_s']:.2f} s wall for "
              f"{result['simulated_s']:.2f} s simulated (born N = {result['born']}, "
              f"final N = {result['final_n']}, {result['syncs']} syncs, "
              f"{result['substeps']} sub-steps); then one OSA trace {result['osa_s']:.2f} s")
    result = no_aux_sweep(1e-3)
    print(f"Blue-to-red sweep without aux (0.35 nm at 1 nm/s, 1 ms syncs): "
          f"{result['wall_s']:.2f} s wall for {result['simulated_s']:.2f} s simulated "
          f"({result['collapses']} collapses, {result['losses']} solitons lost)")


if __name__ == "__main__":
    main()
