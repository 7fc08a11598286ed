"""The counting side of the testbed: single-photon detectors on the inputs of a time controller,
and counters integrating their clicks over windows.

Detectors are free running: a click is followed by a dead time in which nothing registers, and
may be followed by an afterpulse. Efficiency, dark-count rate, dead time and afterpulse
probability are parameters (physics.md §5 asks for them as per-channel calibration knobs).

Click statistics are drawn in aggregate, exactly, never per pulse. Over a stretch of time the
true events of a detector are a Poisson process: dark counts at their rate, plus, for each gate
class, ``gate_rate_hz * (1 - exp(-efficiency * mean_photons))`` (at most one click per slot).
The events a non-paralysable detector registers form a renewal process with intervals
``dead_time + Exp(rate)``; their number is sampled exactly by bisection on the arrival times,
drawn from gamma increments and gamma bridges (O(log N) draws, see ``registered_events``). Which
source each registered click came from is multinomial in the source rates (dead time does not
look at labels), and afterpulses follow registered clicks binomially (first order, as in Lim et
al. 2014: R = D (1 + p_ap)). Dark clicks and afterpulses fall at random times, so each lands in a
class's gates with probability ``gate_rate_hz * gate_window_s``. The slot clock (1 GHz) is treated
as continuous beside the dead time (tens of ns): the error is of the order of the click
probability per slot, below 1e-2 for a QKD link.

Gated counters. Decoy-state analysis needs counts split by the transmitter's intensity class
and basis (and the bit sent, for errors): a *gate class* names one such class of pattern slots,
e.g. ``"mu.X.0"``. The photon-flux callable supplied by the Testbed tells, per detector input,
which classes arrive and their mean photon number per slot at the detector; it is ``dark`` (no
classes) until the QKD pattern exists. A ``Counter`` counts either every click of its input (a
singles counter) or only the clicks inside the gates of one class (a gated counter): each gated
counter is one detector input x one marker class (intensity x basis x outcome), the outcome
being the detector.

On a real ID1000 a singles counter is an input's own counter (``INPU#:COUN?``). A gated counter
is a combiner block (``TSCO#``) whose FIRst port takes the detector's input (through a DELAy
block that aligns its clicks with the gates), whose WINDow BEGIn/END ports take the input that
carries the AWG marker of that class, with OPIN ONLYFIR (clicks pass inside the window) and
OPOUT MUTE (none outside); ``TSCO#:COUN?`` reads it. The controller has four inputs, so one
detector leaves three marker lines: more classes than that need markers combined in chained
combiners or timestamps sifted in software. Window alignment (delays) is assumed right here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

_EPS_S = 1e-9  # tolerance when comparing times with window ends (windows last >= 1 ms)


@dataclass
class SinglePhotonDetector:
    """A free-running single-photon detector, as the time controller sees it: a pulse per click."""

    efficiency: float = 0.15  # seed: "SPD efficiency > 15 %"
    dark_count_rate_hz: float = 500.0  # assumed: Y0 ~ 1e-6 per 1 GHz slot for two detectors
    dead_time_s: float = 50e-9  # assumed (physics.md §5: 50 ns costs ~13 % of the key)
    afterpulse_probability: float = 0.01  # assumed
    output_amplitude_v: float = 2.0  # assumed: height of a click pulse at the counter's input


@dataclass(frozen=True)
class ClassFlux:
    """The pattern slots of one gate class as they reach a detector."""

    gate_rate_hz: float  # slots of this class per second
    mean_photons: float  # mean photon number per slot at the detector, before its efficiency


PhotonFlux = Callable[[int], Mapping[str, ClassFlux]]
"""Per detector input: the gate classes that reach it, by class name."""


def dark(_input: int) -> Mapping[str, ClassFlux]:
    """No pattern running: no gates and no photons at any input."""
    return {}


@dataclass
class DetectorInput:
    """An input of the time controller: its discriminator and the detector wired to it, if any."""

    detector: SinglePhotonDetector | None = None
    enabled: bool = True
    threshold_v: float = 0.5

    @property
    def sees_clicks(self) -> bool:
        """Whether click pulses (positive, of fixed height) cross the discriminator."""
        return (self.enabled and self.detector is not None
                and 0.0 < self.threshold_v < self.detector.output_amplitude_v)


@dataclass(frozen=True)
class Clicks:
    """The clicks of one input over a stretch of time: all, and those inside each class's gates."""

    total: int = 0
    in_gates: Mapping[str, int] = field(default_factory=dict)


class CounterMode(StrEnum):
    CYCLE = "cycle"  # value: the clicks of the last completed window
    ACCUMULATE = "accumulate"  # value: all clicks since the reset, as of the last window end


@dataclass
class Counter:
    """One counter: the clicks of an input (``input`` None: nothing linked), or those in one
    class's gates. Its value changes only when a window completes."""

    input: int | None
    gate_class: str | None = None
    integration_time_s: float = 1.0
    mode: CounterMode = CounterMode.CYCLE
    value: int = 0
    running: int = 0
    window_end_s: float = 1.0

    def restart(self, now_s: float) -> None:
        """Clear the counts and open a window at ``now_s``."""
        self.value = self.running = 0
        self.window_end_s = now_s + self.integration_time_s

    def cuts(self, start_s: float, end_s: float) -> tuple[float, ...]:
        """Times in (start, end] where the clicks must be split for this counter: the bounds of
        the last window completed by ``end_s`` (older windows are overwritten anyway)."""
        if end_s < self.window_end_s - _EPS_S:
            return ()
        later = math.floor((end_s - self.window_end_s + _EPS_S) / self.integration_time_s)
        last_end_s = self.window_end_s + later * self.integration_time_s
        wanted = ((last_end_s - self.integration_time_s, last_end_s)
                  if self.mode is CounterMode.CYCLE else (last_end_s,))
        return tuple(t for t in wanted if t > start_s + _EPS_S)

    def record(self, end_s: float, clicks: int) -> None:
        """Add the clicks of a stretch ending at ``end_s``, closing the windows it completes."""
        self.running += clicks
        if end_s < self.window_end_s - _EPS_S:
            return
        ended = math.floor((end_s - self.window_end_s + _EPS_S) / self.integration_time_s) + 1
        self.window_end_s += ended * self.integration_time_s
        self.value = self.running
        if self.mode is CounterMode.CYCLE:
            self.running = 0


def registered_events(rng: np.random.Generator, rate_hz: float, duration_s: float,
                      dead_time_s: float) -> int:
    """Events a non-paralysable detector registers in ``duration_s`` of Poisson arrivals.

    Exact in distribution. The window opens in the stationary state: dead with probability
    R tau / (1 + R tau), with a uniform residual dead time. Then the n-th event registers iff
    G_n + (n - 1) tau <= T, G_n being the n-th arrival in live time (Gamma(n, R)); the largest such
    n is found by bisection, drawing G at new points from gamma increments beyond the bracket
    and from the gamma bridge (Beta) inside it.
    """
    if rate_hz <= 0.0 or duration_s <= 0.0:
        return 0
    busy = rate_hz * dead_time_s
    window_s = duration_s
    if rng.random() < busy / (1.0 + busy):
        window_s -= rng.uniform(0.0, dead_time_s)
    if window_s <= 0.0:
        return 0
    scale_s = 1.0 / rate_hz

    def registers(n: int, arrival_s: float) -> bool:
        return arrival_s + (n - 1) * dead_time_s <= window_s

    expected = rate_hz * window_s / (1.0 + busy)
    low, low_s = 0, 0.0
    high = int(expected + 6.0 * math.sqrt(expected)) + 8
    high_s = float(rng.gamma(high, scale_s))
    while registers(high, high_s):
        low, low_s = high, high_s
        high *= 2
        high_s = low_s + float(rng.gamma(high - low, scale_s))
    while high - low > 1:
        mid = (low + high) // 2
        mid_s = low_s + (high_s - low_s) * float(rng.beta(mid - low, high - mid))
        if registers(mid, mid_s):
            low, low_s = mid, mid_s
        else:
            high, high_s = mid, mid_s
    return low


def detect(detector: SinglePhotonDetector, flux: Mapping[str, ClassFlux], gate_window_s: float,
           duration_s: float, rng: np.random.Generator) -> Clicks:
    """The clicks of one detector over ``duration_s``, and how many fall in each class's gates."""
    names = list(flux)
    photon_rates_hz = [f.gate_rate_hz * -math.expm1(-detector.efficiency * f.mean_photons)
                       for f in flux.values()]
    rates_hz = np.array([detector.dark_count_rate_hz, *photon_rates_hz])
    total_hz = float(rates_hz.sum())
    registered = registered_events(rng, total_hz, duration_s, detector.dead_time_s)
    if registered == 0:
        return Clicks(0, dict.fromkeys(names, 0))
    by_source = rng.multinomial(registered, rates_hz / total_hz)
    afterpulses = int(rng.binomial(registered, detector.afterpulse_probability))
    coverage = np.array([f.gate_rate_hz * gate_window_s for f in flux.values()])
    coverage /= max(1.0, float(coverage.sum()))  # gate windows cannot cover more than all time
    untimed_in_gates = rng.multinomial(int(by_source[0]) + afterpulses,
                                       [*coverage, 1.0 - float(coverage.sum())])
    in_gates = {name: int(photons + untimed) for name, photons, untimed
                in zip(names, by_source[1:], untimed_in_gates[:-1], strict=True)}
    return Clicks(registered + afterpulses, in_gates)


def _four_inputs() -> dict[int, DetectorInput]:
    return {1: DetectorInput(SinglePhotonDetector()), 2: DetectorInput(), 3: DetectorInput(),
            4: DetectorInput()}


@dataclass
class CountingSystem:
    """Detectors on the inputs of a time controller, and its counters (by default one detector,
    on input 1, and no pattern: dark counts only)."""

    rng: np.random.Generator
    inputs: dict[int, DetectorInput] = field(default_factory=_four_inputs)
    flux: PhotonFlux = dark
    gate_window_s: float = 0.5e-9  # assumed: width of the marker windows gating the combiners
    time_s: float = 0.0
    counters: list[Counter] = field(default_factory=list)

    def add_counter(self, input_: int | None, gate_class: str | None = None) -> Counter:
        """A new counter of input ``input_`` (optionally gated on one class), window open now."""
        counter = Counter(input_, gate_class)
        counter.restart(self.time_s)
        self.counters.append(counter)
        return counter

    def advance(self, dt_s: float) -> None:
        """Count the clicks of the next ``dt_s``, once per stretch between needed window ends."""
        end_s = self.time_s + dt_s
        live = {n for n, inp in self.inputs.items() if inp.sees_clicks}
        cuts = {t for c in self.counters if c.input in live for t in c.cuts(self.time_s, end_s)}
        start_s = self.time_s
        for cut_s in sorted(cuts | {end_s}):
            if cut_s <= start_s:
                continue
            clicks = {n: self._detect(n, cut_s - start_s) for n in live}
            for counter in self.counters:
                counter.record(cut_s, _share(counter, clicks))
            start_s = cut_s
        self.time_s = max(self.time_s, end_s)

    def _detect(self, input_: int, duration_s: float) -> Clicks:
        detector = self.inputs[input_].detector
        assert detector is not None  # only inputs that see clicks are detected
        return detect(detector, self.flux(input_), self.gate_window_s, duration_s, self.rng)


def _share(counter: Counter, clicks: Mapping[int, Clicks]) -> int:
    seen = clicks.get(counter.input) if counter.input is not None else None
    if seen is None:
        return 0
    return seen.total if counter.gate_class is None else seen.in_gates.get(counter.gate_class, 0)
