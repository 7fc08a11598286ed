"""``labd demo``: the main job on the simulated testbed, end to end, with a printed summary.

Today it starts the daemon on the station file (simulated testbed included), drives the pump laser
through the daemon like an operator would, reads the telemetry stream and shuts down cleanly.
Later issues extend it to the single soliton and two-channel QKD.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from labd.client import Client, DaemonTimeout, Subscription
from labd.config import StationConfig
from labd.rpc import RpcError


def run_demo(config: StationConfig, config_path: Path) -> int:
    """Run the demo against a daemon in a child process; return the exit code."""
    daemon = subprocess.Popen([sys.executable, "-m", "labd", "--log-level", "WARNING", "serve",
                               "--config", str(config_path)])
    try:
        with Client(config.daemon.rpc, timeout_s=1.0) as client:
            _wait_until_serving(client, daemon, config)
            client.timeout_s = 10.0
            client.acquire_lease("labd demo", ttl_s=120)
            _session(client, config)
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


def _session(client: Client, config: StationConfig) -> None:
    print(f"labd serving on {config.daemon.rpc}, telemetry on {config.daemon.pub}\n")
    for inst in client.call("station.list")["instruments"]:
        state = "connected" if inst["connected"] else inst["last_error"]
        print(f"  {inst['name']:<12} {inst['role']:<12} {inst['model']:<20} {state}")
    print()
    for parameter, value in (("wavelength_nm", 1556.0901), ("power_mw", 10.0),
                             ("output_enabled", True)):
        reply = client.call("station.set", instrument="pump", parameter=parameter, value=value)
        print(f"  set pump.{parameter} = {value!r:<10} read back {reply['value']!r} "
              f"{reply['unit']}")
    try:
        client.call("station.set", instrument="pump", parameter="power_mw", value=50.0)
    except RpcError as exc:
        print(f"  set pump.power_mw = 50.0       refused: {exc.message}")
    print()
    stream = Subscription(config.daemon.pub, ("instrument.pump",), timeout_s=10)
    for _, (topic, message) in zip(range(3), stream, strict=False):
        print(f"  telemetry {topic} seq={message['seq']} power_mw={message['power_mw']} "
              f"output_enabled={message['output_enabled']}")
    stream.close()
