"""The simulated testbed as a child process of the daemon, and the ``labd sim`` entry point.

The child runs ``labd sim`` and prints ``ready`` once every emulator listens. It exits when its
standard input closes, so it never outlives the daemon, however the daemon ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from labd.config import QkdChannelConfig, SimulationConfig, StationConfig
from labd.qkd.patterns import AWG_CHANNEL
from labd.qkd.receiver import COMBINERS
from labd.qkd.transmitter import SYSTEMS
from sim_backends.control import serve_control
from sim_backends.registry import EmulatedInstrument
from sim_backends.runner import RunningTestbed, start_testbed
from sim_backends.world.counters import SinglePhotonDetector
from sim_backends.world.qkd_feed import AWG_DEFAULT_HALF_SWING_V
from sim_backends.world.qkd_link import Receiver
from sim_backends.world.testbed import QkdSystem

log = logging.getLogger(__name__)
READY = "ready"


def emulated_instruments(config: StationConfig) -> list[EmulatedInstrument]:
    """The instruments of the config, with the loopback address each emulator listens on, and
    for the AWGs and time controllers of QKD systems their channel and combiner wiring."""
    channel_of = {getattr(qkd, role): int(key) for key, qkd in config.qkd.channels.items()
                  for role in ("awg", "counter")}
    counters = {qkd.counter for qkd in config.qkd.channels.values()}
    combiners = {int(name.removeprefix("tsco")): sifted for name, sifted in COMBINERS.items()}
    result = []
    for name, inst in config.instruments.items():
        address = inst.socket_address()
        if address is not None:
            result.append(EmulatedInstrument(
                name, inst.role, inst.model, *address, channel_of.get(name),
                combiners if name in counters else {}))
    return result


def qkd_systems(config: StationConfig) -> tuple[QkdSystem, ...]:
    """The world's QKD systems as ``[qkd.channels]`` describes the hardware; the one with a bias
    controller first (the world's MBX sits on the first system's IM2)."""
    channels = sorted(config.qkd.channels.items(), key=lambda item: item[1].bias is None)
    return tuple(_system(int(key), qkd) for key, qkd in channels)


def _system(channel: int, qkd: QkdChannelConfig) -> QkdSystem:
    settings = SYSTEMS[qkd.system]
    return QkdSystem(
        channel=channel, intensities=settings.intensities,
        receiver=Receiver(detectors=qkd.detectors, four_phase=qkd.detectors == 1,
                          excess_loss_db=qkd.excess_loss_db),
        detector=SinglePhotonDetector(dead_time_s=qkd.dead_time_s),
        rf_driver_gain={awg_channel: settings.calibration(drive).rf_gain_v
                        / AWG_DEFAULT_HALF_SWING_V for drive, awg_channel in AWG_CHANNEL.items()})


async def start_simulation(config: StationConfig) -> RunningTestbed:
    """The simulated testbed ``config``'s ``[simulation]`` describes, listening (in this loop)."""
    simulation = config.simulation or SimulationConfig()
    faults = {name: knobs.model_dump(exclude_unset=True)
              for name, knobs in simulation.faults.items()}
    return await start_testbed(emulated_instruments(config), simulation.seed, faults,
                               simulation.speed, qkd_systems(config),
                               ideal_comb=simulation.comb == "ideal",
                               device=None if simulation.device == "seed" else simulation.device)


async def run_sim(config: StationConfig, exit_on_stdin_eof: bool,
                  control_endpoint: str | None = None) -> None:
    """Serve the simulated testbed until SIGINT/SIGTERM (or stdin EOF, for a child process)."""
    simulation = config.simulation or SimulationConfig()
    testbed = await start_simulation(config)
    control_endpoint = control_endpoint or simulation.control
    control = asyncio.create_task(serve_control(control_endpoint, testbed.emulators))
    for line in testbed.lines:
        print(line, flush=True)
    print(f"{'control':<12} {'':<20} listening on {control_endpoint}", flush=True)
    print(READY, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if exit_on_stdin_eof:
        stdin = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
        eof = asyncio.create_task(stdin.read())
        eof.add_done_callback(lambda _: stop.set())
    await stop.wait()
    control.cancel()
    await testbed.close()


class SimulatedTestbed:
    """``labd sim`` in a child process, started and stopped by the daemon."""

    def __init__(self, config_path: Path, startup_timeout_s: float) -> None:
        self.config_path = config_path
        self.startup_timeout_s = startup_timeout_s
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> list[str]:
        """Start the child and wait until every emulator listens; return what it printed."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "labd", "sim", "--config", str(self.config_path),
            "--exit-on-stdin-eof",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS",
                                                                       "1")},
        )
        try:
            return await asyncio.wait_for(self._read_until_ready(), self.startup_timeout_s)
        except BaseException:
            await self.stop()
            raise

    async def _read_until_ready(self) -> list[str]:
        assert self.process is not None and self.process.stdout is not None
        lines: list[str] = []
        while (raw := await self.process.stdout.readline()):
            line = raw.decode().rstrip()
            if line == READY:
                return lines
            lines.append(line)
        raise RuntimeError(f"simulated testbed exited with code {await self.process.wait()}")

    async def stop(self) -> None:
        """End the child: close its stdin, then SIGTERM, then SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5.0)
        except TimeoutError:
            log.error("simulated testbed ignored SIGTERM; killing it")
            process.kill()
            await process.wait()
