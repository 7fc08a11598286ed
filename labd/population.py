"""Soliton bring-up over a population of simulated chips: success rate and time to a soliton.

Each chip (``[simulation] device = k``: the seed's design with fabrication spread, see
``sim_backends/world/resonator.py``) gets its own daemon and simulated testbed on free ports,
runs ``soliton.start`` from cold with the shipped sequences, and ends locked, in fault, or
timed out (a hang: counted as a failure). Several chips run at once, each in its own processes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labd.client import Client, DaemonTimeout
from labd.demo import wait_until_serving
from labd.rpc import RpcError

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Outcome:
    """How one chip's bring-up ended."""

    device: int
    state: str  # locked, fault, or timeout
    reason: str
    wall_s: float
    world_s: float  # wall time times the simulation's speed factor

    @property
    def ok(self) -> bool:
        return self.state == "locked"


@dataclass(frozen=True)
class RelocatedStation:
    """The shipped station file, moved to free ports and a folder of its own."""

    path: Path
    rpc: str
    pub: str
    control: str


def relocated_station(directory: Path, device: int | None = None,
                      speed: float | None = None) -> RelocatedStation:
    """The shipped instruments.toml with every port moved to a free one, its record and
    sequences found from ``directory``; optionally chip ``device`` and another ``speed``."""
    text = (ROOT / "instruments.toml").read_text()
    old_ports = sorted({int(p) for p in re.findall(r"(?:::|:)(\d{4,5})(?:::SOCKET|\")", text)})
    *new_ports, control_port = free_ports(len(old_ports) + 1)
    for old, new in zip(old_ports, new_ports, strict=True):
        text = re.sub(rf"(?<=[:]){old}(?=::SOCKET|\")", str(new), text)
    control = f"tcp://127.0.0.1:{control_port}"
    extra = f'control = "{control}"\n' + ("" if device is None else f"device = {device}\n")
    text = text.replace("[simulation]\n", f"[simulation]\n{extra}")
    if speed is not None:
        text = re.sub(r"^speed = .*$", f"speed = {speed}", text, flags=re.MULTILINE)
    text = text.replace('database = "labd.sqlite"', f'database = "{directory / "labd.sqlite"}"')
    text = text.replace('sequences = "sequences"', "")
    text = text.replace("[daemon]\n", f'[daemon]\nsequences = "{ROOT / "sequences"}"\n')
    path = directory / "instruments.toml"
    path.write_text(text)
    rpc = re.search(r'rpc = "(tcp://[^"]+)"', text)
    pub = re.search(r'pub = "(tcp://[^"]+)"', text)
    assert rpc and pub
    return RelocatedStation(path, rpc[1], pub[1], control)


def free_ports(count: int) -> list[int]:
    """Distinct TCP ports on loopback that nothing listens on right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:  # held open together, so the OS hands out distinct ports
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def bring_up(device: int, speed: float = 10.0, timeout_s: float = 400.0) -> Outcome:
    """Chip ``device`` from cold to a locked single soliton (or not), in its own daemon."""
    with tempfile.TemporaryDirectory() as folder:
        station = relocated_station(Path(folder), device, speed)
        daemon = subprocess.Popen([sys.executable, "-m", "labd", "--log-level", "ERROR", "serve",
                                   "--config", str(station.path)], cwd=ROOT)
        try:
            with Client(station.rpc, timeout_s=2.0) as client:
                wait_until_serving(client, daemon, 120.0, every_instrument=True)
                client.acquire_lease(f"population chip {device}", ttl_s=timeout_s + 60)
                started = time.monotonic()
                client.call("soliton.start")
                status = _wait_settled(client, timeout_s)
                wall_s = time.monotonic() - started
                if status["state"] == "locked":
                    client.call("safety.abort", reason="population run: chip done")
            state = status["state"] if status["state"] in ("locked", "fault") else "timeout"
            return Outcome(device, state, str(status.get("reason", "")), wall_s, wall_s * speed)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()


def run_population(devices: range, parallel: int, speed: float = 10.0) -> list[Outcome]:
    """Every chip of ``devices``, ``parallel`` at a time."""
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda k: bring_up(k, speed), devices))


def summary(outcomes: list[Outcome]) -> str:
    good = [o for o in outcomes if o.ok]
    lines = [f"{len(good)} of {len(outcomes)} chips locked on one soliton "
             f"({100 * len(good) / len(outcomes):.0f} %)"]
    if good:
        world = [o.world_s for o in good]
        lines.append(f"time to a locked soliton: median {statistics.median(world):.0f} s, worst "
                     f"{max(world):.0f} s of simulated time (wall: median "
                     f"{statistics.median(o.wall_s for o in good):.0f} s)")
    lines += [f"  chip {o.device}: {o.state} after {o.wall_s:.0f} s wall: {o.reason}"
              for o in outcomes if not o.ok]
    return "\n".join(lines)


def _wait_settled(client: Client, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {"state": "starting"}
    while time.monotonic() < deadline:
        with contextlib.suppress(DaemonTimeout, RpcError):
            status = client.call("soliton.status")
        if status["state"] in ("locked", "fault"):
            return status
        time.sleep(0.5)
    return {"state": "timeout", "reason": f"not locked or fault within {timeout_s} s "
                                          f"(last: {status['state']})"}


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    parallel = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    outcomes = run_population(range(count), parallel)
    print(summary(outcomes))


if __name__ == "__main__":
    main()
