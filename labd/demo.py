"""``labd demo``: the main job on the simulated testbed, end to end, with a printed summary.

It starts the daemon on the station file (simulated testbed included), shows the station, then
does what the seed's operators did by hand: ``soliton.start`` from a cold bench to a verified,
locked single soliton, watching ``soliton.state``. It writes a report folder (the state
transitions, the last OSA spectrum, the soliton's figures) and shuts down cleanly. Two-channel
QKD joins it with the QKD issue.
"""

from __future__ import annotations

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
    deadline = time.monotonic() + timeout_s + 10
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"labd serve exited with code {daemon.returncode}")
        try:
            client.call("station.list")
            return
        except DaemonTimeout:
            continue
    raise RuntimeError(f"labd did not answer on {config.daemon.rpc}")


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
    _summary(status, time.monotonic() - started)
    _write_report(report, status, transitions, spectrum)
    if status["state"] != "locked":
        raise RuntimeError(f"no locked soliton: {status['state']} ({status['reason']})")


def _latest(spectra: Subscription, spectrum: dict[str, Any] | None) -> dict[str, Any] | None:
    """The newest OSA spectrum published so far."""
    while True:
        try:
            _, spectrum = next(spectra)
        except DaemonTimeout:
            return spectrum


def _summary(status: dict[str, Any], elapsed_s: float) -> None:
    print(f"\n  state {status['state']} after {elapsed_s:.1f} s; soliton number "
          f"{status['soliton_number']}")
    if status["spacing_ghz"] is not None:
        print(f"  line spacing {status['spacing_ghz']:.3f} GHz (seed: ~49 GHz), 3-dB bandwidth "
              f"{status['bandwidth_3db_thz']:.2f} THz (seed: 3.2 THz), "
              f"{status['lines_20db']} lines 20 dB over the floor (seed: > 200)")


def _write_report(report: Path, status: dict[str, Any], transitions: list[dict[str, Any]],
                  spectrum: dict[str, Any] | None) -> None:
    report.mkdir(parents=True, exist_ok=True)
    (report / "soliton.json").write_text(json.dumps(
        {"status": status, "transitions": transitions}, indent=2))
    if spectrum is not None:
        with (report / "osa_spectrum.csv").open("w") as out:
            out.write("wavelength_nm,power_dbm\n")
            for x, y in zip(spectrum["wavelength_nm"], spectrum["power_dbm"], strict=True):
                out.write(f"{x:.6f},{y:.3f}\n")
    print(f"  report written to {report}/")
