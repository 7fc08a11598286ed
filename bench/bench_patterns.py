"""Benchmark: transmitter patterns against their random source, and eight channels' estimates.

Patterns (labd.qkd.patterns): per size, Alice's choices are drawn from the OS CSPRNG through a
source that records every read, then the same reads are replayed on the bare source, so that both
figures cover the same random bytes in the same run. The source's rate is the limit: the ratio
says how close drawing comes to it. ``encode`` (the four drives' DAC codes and the record's hash)
and ``generate`` (both) follow, in symbols (1 GHz slots) per second on one core. The moonshot is
1e9 symbols per second per core; the OS source alone allows about 1.9e8 at 1.75 bytes a symbol.

Estimates (labd.qkd.service.ChannelRun): one update of eight channels, as the daemon does it
every ``update_interval_s``: add one window of the 12 combiners' counts to each channel's tally,
then estimate each from its whole tally (decoy bounds, asymptotic and Lim 2014 finite-key rates).

Run: python bench/bench_patterns.py

Measured on the shared 2-core development machine (numbers move by ~ 30 % between runs): at
2^22 slots the source gives ~ 320 MB/s, 1.75 bytes a slot: ~ 1.9e8 symbols/s; the choices are
drawn at ~ 1.2e8 symbols/s (ratio ~ 0.5); encode ~ 7e7, generate ~ 4e7 symbols/s (a 2^14-slot
pattern, the default, in ~ 0.5 ms). One update of eight channels takes ~ 1.2 to 1.9 ms.
"""

from __future__ import annotations

import functools
import secrets
import statistics
import time
from collections.abc import Callable

from labd.qkd import estimation
from labd.qkd.patterns import TR1, TR2, draw_symbols, encode, generate
from labd.qkd.receiver import COMBINERS
from labd.qkd.service import ChannelRun
from labd.qkd.sifting import Announcement

PATTERN_SLOTS = (1 << 16, 1 << 20, 1 << 22)
REPEATS = 5
CHANNELS = 8
WINDOW_S = 10.0
#: TR1 on the simulated testbed (labd demo): gain and QBER of mu, nu1, nu2.
GAINS, QBERS = (1.07e-3, 3.45e-4, 2.37e-5), (0.0287, 0.0337, 0.135)


class RecordingSource:
    """The OS CSPRNG (``secrets.token_bytes``, as ``OsRandom``), remembering each read's size."""

    secure = True

    def __init__(self) -> None:
        self.reads: list[int] = []

    def read(self, n: int) -> bytes:
        self.reads.append(n)
        return secrets.token_bytes(n)


def best_seconds(job: Callable[[], object], repeats: int = REPEATS) -> float:
    """The fastest of ``repeats`` runs: the least disturbed by the other work on the machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_patterns() -> None:
    print(f"{'slots':>9} {'bytes/slot':>10} {'source MB/s':>11} {'source sym/s':>12} "
          f"{'choices sym/s':>13} {'ratio':>6} {'encode sym/s':>12} {'generate sym/s':>14}")
    for slots in PATTERN_SLOTS:
        settings = TR1.replace(pattern_slots=slots)
        ratios, drawn, sourced = [], [], []
        for _ in range(REPEATS):  # drawing and its bytes alternate: the same load on both
            source = RecordingSource()
            start = time.perf_counter()
            record = draw_symbols(settings, source)
            drawn.append(time.perf_counter() - start)
            start = time.perf_counter()
            for n in source.reads:
                secrets.token_bytes(n)
            sourced.append(time.perf_counter() - start)
            ratios.append(sourced[-1] / drawn[-1])
        n_bytes = sum(source.reads)
        encoded = best_seconds(functools.partial(encode, settings, record))
        generated = best_seconds(functools.partial(generate, settings))
        print(f"{slots:9d} {n_bytes / slots:10.2f} {n_bytes / min(sourced) / 1e6:11.0f} "
              f"{slots / min(sourced):12.3g} {slots / min(drawn):13.3g} "
              f"{statistics.median(ratios):6.2f} {slots / encoded:12.3g} "
              f"{slots / generated:14.3g}")


def bench_estimates() -> None:
    runs = []
    for channel in range(CHANNELS):
        system = ("TR1", "TR2")[channel % 2]
        settings = {"TR1": TR1, "TR2": TR2}[system].replace(pattern_slots=1 << 14, seed=channel)
        announcement = Announcement.of(31 + channel, generate(settings))
        protocol = estimation.Protocol(clock_hz=announcement.clock_hz, p_x=announcement.p_x,
                                       probabilities=announcement.class_shares,
                                       efficiency=0.8)
        runs.append(ChannelRun(31 + channel, system, announcement, protocol, WINDOW_S))
    counts = {}  # one window's combiners: sifted clicks per class and basis, correct or error
    for name, (k, _, error) in COMBINERS.items():
        per_basis = GAINS[k] * WINDOW_S * 1e9 * runs[0].announcement.class_shares[k] / 4
        counts[name] = round(per_basis * (QBERS[k] if error else 1 - QBERS[k]))

    def update() -> None:
        for run in runs:
            run.add(counts)
            run.status()

    seconds = best_seconds(update, repeats=50)
    status = runs[0].status()
    print(f"\none update of {CHANNELS} channels (tally + estimate each): {seconds * 1e3:.2f} ms "
          f"({seconds / CHANNELS * 1e3:.2f} ms a channel); C31 after {runs[0].tally.windows} "
          f"windows: QBER {100 * status['qber']:.2f} %, SKR {status['skr_bps'] / 1e3:.1f} kbps")


def main() -> None:
    print("Transmitter patterns (TR1: 29:2:1, p_X 1/2, 16 global phases), OS CSPRNG, one core")
    bench_patterns()
    bench_estimates()


if __name__ == "__main__":
    main()
