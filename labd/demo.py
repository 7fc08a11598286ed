"""``labd demo``: the main job on the simulated testbed, end to end, with a printed summary.

It starts the daemon on the station file (simulated testbed included), shows the station, then
does what the seed's operators did by hand: ``soliton.start`` from a cold bench to a verified,
locked single soliton, watching ``soliton.state``; then ``qkd.start`` with no channel list (the
seed's TR1 and TR2, each on its channel of the live comb), counting for ``QKD_RUN_S`` while
watching ``qkd.<channel>``, and ``qkd.stop``. It writes a report folder (``summary.txt``: what it
printed; ``soliton.json``: the state transitions and the soliton's figures; ``osa_spectrum.csv``:
the last OSA sweep; ``qkd.json``: each channel's last estimate and every published one) and shuts
down cleanly.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from labd.client import Client, DaemonTimeout, Subscription
from labd.config import StationConfig
from labd.rpc import RpcError

SOLITON_TIMEOUT_S = 600.0
QKD_PROGRESS_S = 5.0
#: Wall time QKD counts for: at the default station's speed 10 and 10 s windows, a 200 s block.
QKD_RUN_S = 20.0
#: Replies while QKD runs: qkd.start draws, uploads and starts a pattern per channel (seconds).
QKD_START_TIMEOUT_S = 120.0


def run_demo(config: StationConfig, config_path: Path, report: Path) -> int:
    """Run the demo against a daemon in a child process; return the exit code."""
    daemon = subprocess.Popen([sys.executable, "-m", "labd", "--log-level", "WARNING", "serve",
                               "--config", str(config_path)])
    try:
        with Client(config.daemon.rpc, timeout_s=1.0) as client:
            _wait_until_serving(client, daemon, config)
            client.timeout_s = 10.0
            client.acquire_lease("labd demo", ttl_s=600)
            _session(client, config, report)
        return 0
    except (RpcError, DaemonTimeout, RuntimeError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
        print(f"daemon stopped (exit code {code}); lasers left in their safe state")


def _wait_until_serving(client: Client, daemon: subprocess.Popen[bytes],
                        config: StationConfig) -> None:
    timeout_s = config.simulation.startup_timeout_s if config.simulation else 20.0
    wait_until_serving(client, daemon, timeout_s + 10)


def wait_until_serving(client: Client, daemon: subprocess.Popen[bytes], timeout_s: float,
                       every_instrument: bool = False) -> None:
    """Until ``daemon`` answers on ``client`` and, with ``every_instrument``, has every
    implemented instrument connected (what an operator checks before starting)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"labd serve exited with code {daemon.returncode}")
        with contextlib.suppress(DaemonTimeout):
            instruments = client.call("station.list")["instruments"]
            if not every_instrument or all(i["connected"] for i in instruments
                                           if i["implemented"]):
                return
            time.sleep(0.5)
    what = "connect every instrument" if every_instrument else "answer"
    raise RuntimeError(f"labd did not {what} on {client.endpoint} within {timeout_s:.0f} s")


def _session(client: Client, config: StationConfig, report: Path) -> None:
    print(f"labd serving on {config.daemon.rpc}, telemetry on {config.daemon.pub}\n")
    for inst in client.call("station.list")["instruments"]:
        state = "connected" if inst["connected"] else inst["last_error"]
        print(f"  {inst['name']:<12} {inst['role']:<12} {inst['model']:<20} {state}")
    print("\nsoliton.start: from a cold bench to one locked soliton")
    states = Subscription(config.daemon.pub, ("soliton.state",), timeout_s=1.0)
    spectra = Subscription(config.daemon.pub, ("osa.spectrum",), timeout_s=0.1)
    started = time.monotonic()
    client.call("soliton.start")
    transitions, spectrum = [], None
    while time.monotonic() - started < SOLITON_TIMEOUT_S:
        try:
            _, event = next(states)
        except DaemonTimeout:
            continue
        finally:
            spectrum = _latest(spectra, spectrum)
        transitions.append(event)
        print(f"  {time.monotonic() - started:6.1f} s  {event['previous']:>16} -> "
              f"{event['state']:<16} {event['reason']}")
        if event["state"] in ("locked", "fault"):
            break
    status = client.call("soliton.status")
    spectrum = _latest(spectra, spectrum)
    states.close()
    spectra.close()
    summary = _soliton_summary(status, time.monotonic() - started)
    _write_report(report, status, transitions, spectrum)
    _add_to_summary(report, summary)
    if status["state"] != "locked":
        raise RuntimeError(f"no locked soliton: {status['state']} ({status['reason']})")
    _add_to_summary(report, _qkd_session(client, config, report))
    print(f"\n  report written to {report}/")


def _qkd_session(client: Client, config: StationConfig, report: Path) -> list[str]:
    """QKD on the default channels for ``QKD_RUN_S``; the summary table's lines."""
    print(f"\nqkd.start: the seed's TR1 and TR2 on the comb, counting for {QKD_RUN_S:.0f} s")
    estimates = Subscription(config.daemon.pub, ("qkd.",), timeout_s=0.0)
    published: list[dict[str, Any]] = []
    client.timeout_s = QKD_START_TIMEOUT_S
    try:
        started = client.call("qkd.start")
        print("  channels " + ", ".join(f"C{c['channel']} ({c['system']})"
                                        for c in started["channels"]))
        begun = time.monotonic()
        while time.monotonic() - begun < QKD_RUN_S:
            published += _drain(estimates)
            _progress(client.call("qkd.status")["channels"], time.monotonic() - begun)
            time.sleep(QKD_PROGRESS_S)
    finally:
        status = client.call("qkd.stop")
        published += _drain(estimates)
        estimates.close()
    (report / "qkd.json").write_text(json.dumps(
        {"status": status, "published": published}, indent=2))
    channels = status["channels"]
    failed = [c for c in channels if c["qber"] is None]
    if failed:
        raise RuntimeError("QKD gave no estimate on " + ", ".join(
            f"C{c['channel']} ({c['error'] or 'no window counted'})" for c in failed))
    return _qkd_table(channels)


def _drain(estimates: Subscription) -> list[dict[str, Any]]:
    """Every ``qkd.<channel>`` message that arrived so far."""
    messages = []
    while True:
        try:
            messages.append(next(estimates)[1])
        except DaemonTimeout:
            return messages


def _progress(channels: list[dict[str, Any]], elapsed_s: float) -> None:
    print(f"  {elapsed_s:5.1f} s  " + "   ".join(
        f"C{c['channel']} " + ("counting" if c["qber"] is None else
                               f"QBER {100 * c['qber']:.2f} %, SKR {c['skr_bps'] / 1e3:.1f} kbps")
        for c in channels))


def _qkd_table(channels: list[dict[str, Any]]) -> list[str]:
    """Per channel: QBER, gains per class, rates (finite after post-processing, asymptotic),
    decoy bounds, and the block they come from."""
    lines = [f"{'':8}{'QBER':>7}{'Q_mu':>10}{'Q_nu1':>10}{'Q_nu2':>10}{'sifted':>10}"
             f"{'SKR':>10}{'SKR asym':>10}{'Y1_L':>10}{'e1_U':>8}{'block':>8}",
             f"{'':8}{'%':>7}{'':>30}{'kbps':>10}{'kbps':>10}{'kbps':>10}{'':>10}{'%':>8}"
             f"{'s':>8}"]
    for c in channels:
        gains = [c["classes"][k]["gain"] for k in ("mu", "nu1", "nu2")]
        lines.append(f"C{c['channel']} {c['system']:<4}{100 * c['qber']:7.2f}"
                     + "".join(f"{g:10.3e}" for g in gains)
                     + "".join(f"{c[k] / 1e3:10.1f}" for k in ("sifted_bps", "skr_bps",
                                                                "skr_asymptotic_bps"))
                     + f"{c['y1_lower']:10.3e}{100 * c['e1_upper']:8.2f}{c['block_s']:8.0f}")
    return ["QKD: SKR is the finite key of the run's block, after post-processing (seed: QBER "
            "2.66 %, SKR 78.8 and 195.4 kbps over a one-hour block)", *lines]


def _latest(spectra: Subscription, spectrum: dict[str, Any] | None) -> dict[str, Any] | None:
    """The newest OSA spectrum published so far."""
    while True:
        try:
            _, spectrum = next(spectra)
        except DaemonTimeout:
            return spectrum


def _soliton_summary(status: dict[str, Any], elapsed_s: float) -> list[str]:
    lines = [f"state {status['state']} after {elapsed_s:.1f} s; soliton number "
             f"{status['soliton_number']}"]
    if status["spacing_ghz"] is not None:
        lines.append(f"line spacing {status['spacing_ghz']:.3f} GHz (seed: ~49 GHz), 3-dB "
                     f"bandwidth {status['bandwidth_3db_thz']:.2f} THz (seed: 3.2 THz), "
                     f"{status['lines_20db']} lines 20 dB over the floor (seed: > 200)")
    return lines


def _add_to_summary(report: Path, lines: list[str]) -> None:
    """Print ``lines`` and append them to the report's ``summary.txt``."""
    print("", *(f"  {line}" for line in lines), sep="\n")
    with (report / "summary.txt").open("a") as out:
        out.write("\n".join(lines) + "\n")


def _write_report(report: Path, status: dict[str, Any], transitions: list[dict[str, Any]],
                  spectrum: dict[str, Any] | None) -> None:
    report.mkdir(parents=True, exist_ok=True)
    (report / "summary.txt").write_text("")
    (report / "soliton.json").write_text(json.dumps(
        {"status": status, "transitions": transitions}, indent=2))
    if spectrum is not None:
        with (report / "osa_spectrum.csv").open("w") as out:
            out.write("wavelength_nm,power_dbm\n")
            for x, y in zip(spectrum["wavelength_nm"], spectrum["power_dbm"], strict=True):
                out.write(f"{x:.6f},{y:.3f}\n")
