"""Shared fixtures: free loopback ports, station files, daemon and emulators as real processes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labd.client import Client, DaemonTimeout
from labd.population import free_ports, relocated_station
from labd.rpc import RpcError
from sim_backends.server import LineEmulator, server_for

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    return free_ports(1)[0]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class StationFile:
    """A station file on free ports: lasers and EDFA simulated, a TEC model without a driver."""

    path: Path
    rpc: str
    pub: str
    ports: dict[str, int]

    @property
    def control(self) -> str:
        return f"tcp://127.0.0.1:{self.ports['control']}"


def write_station(directory: Path, simulated: bool = True) -> StationFile:
    names = ("rpc", "pub", "control", "pump", "aux", "edfa", "spare")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    rpc, pub = f"tcp://127.0.0.1:{ports['rpc']}", f"tcp://127.0.0.1:{ports['pub']}"
    text = f"""
[daemon]
rpc = "{rpc}"
pub = "{pub}"
database = "{directory / 'labd.sqlite'}"
poll_interval_s = 0.2
call_timeout_s = 1.0

{"[simulation]" if simulated else ""}
{"seed = 7" if simulated else ""}
{f'control = "tcp://127.0.0.1:{ports["control"]}"' if simulated else ""}

[instruments.pump]
role = "pump_laser"
model = "santec.TSL570"
resource = "TCPIP::127.0.0.1::{ports['pump']}::SOCKET"
limits = {{ power_mw = [0.0, 20.0], wavelength_nm = [1540.0, 1570.0] }}

[instruments.aux]
role = "aux_laser"
model = "santec.TSL570"
resource = "TCPIP::127.0.0.1::{ports['aux']}::SOCKET"

[instruments.edfa]
role = "edfa"
model = "amonics.AEDFA"
resource = "TCPIP::127.0.0.1::{ports['edfa']}::SOCKET"
limits = {{ output_w = [0.0, 3.5] }}
ramps = {{ output_w = 1.0 }}

[instruments.spare]
role = "tec"
model = "arroyo.5300"
resource = "TCPIP::127.0.0.1::{ports['spare']}::SOCKET"
"""
    path = directory / "instruments.toml"
    path.write_text(text)
    return StationFile(path, rpc, pub, ports)


def wait_until_serving(endpoint: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with Client(endpoint, timeout_s=0.5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"labd exited with {process.returncode}")
            try:
                client.call("station.list")
                return
            except (DaemonTimeout, RpcError):
                time.sleep(0.1)
    raise TimeoutError(f"labd did not serve {endpoint} within {timeout_s} s")


def labd(*args: str) -> list[str]:
    return [sys.executable, "-m", "labd", "--log-level", "WARNING", *args]


@dataclass
class RunningDaemon:
    station: StationFile
    process: subprocess.Popen[bytes]

    def operator(self, holder: str = "tester", ttl_s: float = 60.0) -> Client:
        """A client holding the operator lease (for ``ttl_s`` unless renewed)."""
        client = Client(self.station.rpc)
        client.acquire_lease(holder, ttl_s)
        return client

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=20)


@pytest.fixture
def station(tmp_path: Path) -> StationFile:
    return write_station(tmp_path)


@pytest.fixture
def daemon(station: StationFile) -> Iterator[RunningDaemon]:
    """``labd serve`` in a subprocess on the simulated testbed, stopped with SIGTERM afterwards."""
    with running_daemon(station) as running:
        yield running


@contextlib.contextmanager
def running_daemon(station: StationFile) -> Iterator[RunningDaemon]:
    process = subprocess.Popen(labd("serve", "--config", str(station.path)), cwd=ROOT)
    running = RunningDaemon(station, process)
    try:
        wait_until_serving(station.rpc, process, 30)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


class EmulatorThread:
    """An emulator served on a free loopback port by an event loop in a background thread."""

    def __init__(self, emulator: LineEmulator) -> None:
        self.server = server_for(emulator)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(
            self.server.start("127.0.0.1", self.port), self.loop).result(5)

    @property
    def resource(self) -> str:
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    def close(self) -> None:
        if self.loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


def write_default_station(directory: Path) -> StationFile:
    """The shipped instruments.toml with every port moved to a free one (and its record here)."""
    station = relocated_station(directory)
    ports = {name: int(endpoint.rsplit(":", 1)[1]) for name, endpoint in
             (("rpc", station.rpc), ("pub", station.pub), ("control", station.control))}
    return StationFile(station.path, station.rpc, station.pub, ports)


def raw_exchange(port: int, *messages: bytes, terminator: bytes = b"\r") -> list[bytes]:
    """Send terminated messages on a raw socket; return the replies to the queries."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        replies = []
        for message in messages:
            sock.sendall(message + terminator)
            if b"?" in message:
                replies.append(sock.recv(4096))
        return replies
