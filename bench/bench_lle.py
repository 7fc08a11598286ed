"""Benchmark: RK4IP (sim_backends.world.lle.integrate_lle) against a plain numpy split-step.

Both integrate the same 512-mode LLE from the sech ansatz to tau_end. The error of each is the
relative L2 distance to a reference (RK4IP at a far smaller step). For each target error the step
of each method is chosen (from its measured convergence order) so that it just reaches the
target; then both are timed. Run: python bench/bench_lle.py
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from sim_backends.world.lle import (
    ComplexArray,
    LLEParams,
    integrate_lle,
    sech_ansatz,
    spectral_width_lines,
)

Integrator = Callable[[ComplexArray, LLEParams, float, float], ComplexArray]

PARAMS = LLEParams(zeta=15.0, n_modes=512)  # device F and d2; b ~ 65 lines, stable soliton
TAU_END = 2.0
REFERENCE_DT = 1e-4
TARGET_ERRORS = (1e-3, 1e-4)


def split_step_baseline(
    psi0: ComplexArray, params: LLEParams, tau_end: float, dt: float
) -> ComplexArray:
    """First-order (Lie) split-step: exact linear step with numpy FFTs, Kerr phase, Euler pump."""
    n_steps = max(1, math.ceil(tau_end / dt - 1e-9))
    h = tau_end / n_steps
    mu = np.fft.fftfreq(params.n_modes, 1.0 / params.n_modes)
    linear = np.exp((-(1.0 + 1j * params.zeta) - 1j * params.d2 * mu**2) * h)
    psi = psi0.astype(np.complex128)
    for _ in range(n_steps):
        psi = np.fft.ifft(linear * np.fft.fft(psi))
        psi = psi * np.exp(1j * h * np.abs(psi) ** 2) + h * params.f
    return psi


def relative_error(psi: ComplexArray, reference: ComplexArray) -> float:
    return float(np.linalg.norm(psi - reference) / np.linalg.norm(reference))


def timed(integrate: Integrator, psi0: ComplexArray, dt: float) -> tuple[ComplexArray, float]:
    start = time.perf_counter()
    psi = integrate(psi0, PARAMS, TAU_END, dt)
    return psi, time.perf_counter() - start


def step_for_error(
    integrate: Integrator, psi0: ComplexArray, reference: ComplexArray, target: float, dt0: float
) -> tuple[float, float, float]:
    """(dt, error, seconds) at the largest step (on a 10 % ladder) whose error is <= target.

    The first guess comes from the convergence order measured at dt0 and dt0 / 2; the time is
    the best of at least three runs at the chosen step (more while they add up to under 1 s,
    as short runs are the noisiest).
    """
    coarse = relative_error(integrate(psi0, PARAMS, TAU_END, dt0), reference)
    fine = relative_error(integrate(psi0, PARAMS, TAU_END, dt0 / 2.0), reference)
    order = max(0.5, math.log2(coarse / fine))
    dt = dt0 * (target / coarse) ** (1.0 / order)
    psi, seconds = timed(integrate, psi0, dt)
    error = relative_error(psi, reference)
    while error > target:  # shrink until the target is met
        dt /= 1.1
        psi, seconds = timed(integrate, psi0, dt)
        error = relative_error(psi, reference)
    while True:  # grow while it is still met
        psi, trial_seconds = timed(integrate, psi0, dt * 1.1)
        trial_error = relative_error(psi, reference)
        if trial_error > target:
            break
        dt, error, seconds = dt * 1.1, trial_error, trial_seconds
    times = [seconds]
    while len(times) < 3 or (sum(times) < 1.0 and len(times) < 10):
        times.append(timed(integrate, psi0, dt)[1])
    return dt, error, min(times)


def main() -> None:
    psi0 = sech_ansatz(PARAMS)
    print(
        f"LLE, {PARAMS.n_modes} modes, zeta = {PARAMS.zeta}, F^2 = {PARAMS.f**2:.0f}, "
        f"d2 = {PARAMS.d2:.5f} (b = {spectral_width_lines(PARAMS.zeta, PARAMS.d2):.0f}), "
        f"from the sech ansatz to tau = {TAU_END}"
    )
    reference = integrate_lle(psi0, PARAMS, TAU_END, REFERENCE_DT)
    check = integrate_lle(psi0, PARAMS, TAU_END, 2.0 * REFERENCE_DT)
    print(
        f"reference: RK4IP dt = {REFERENCE_DT:g}; distance to dt = {2 * REFERENCE_DT:g}: "
        f"{relative_error(check, reference):.1e}"
    )
    methods: dict[str, tuple[Integrator, float]] = {
        "baseline split-step (1st order)": (split_step_baseline, 1e-3),
        "fast RK4IP (4th order)": (integrate_lle, 1e-2),
    }
    for target in TARGET_ERRORS:
        print(f"\ntarget relative L2 error {target:g}")
        seconds = []
        for name, (integrate, dt0) in methods.items():
            dt, error, elapsed = step_for_error(integrate, psi0, reference, target, dt0)
            steps = math.ceil(TAU_END / dt - 1e-9)
            seconds.append(elapsed)
            print(
                f"  {name:33s} dt = {dt:.2e}  steps = {steps:7d}  error = {error:.2e}  "
                f"time = {elapsed:7.3f} s  ({steps / elapsed:,.0f} steps/s)"
            )
        print(f"  speed-up at equal error: {seconds[0] / seconds[1]:.1f}x")


if __name__ == "__main__":
    main()
