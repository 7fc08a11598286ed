"""Start the simulated testbed: the world and one loopback server per emulated instrument."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim_backends.registry import EMULATORS, EmulatedInstrument
from sim_backends.server import Emulator, Server, server_for
from sim_backends.world.demux import seed_comb
from sim_backends.world.resonator import draw_device
from sim_backends.world.testbed import QkdSystem, Testbed

#: Centre line of the ideal comb: a comb of a few tens of mW, as a watt-pumped microring gives,
#: enough for an MBX to lock an IM2 at its peak (its dither's second harmonic is weak there).
IDEAL_COMB_LINE_MW = 1.0


@dataclass
class RunningTestbed:
    """The world, its emulators by instrument name, and the servers carrying them."""

    world: Testbed
    emulators: dict[str, Emulator] = field(default_factory=dict)
    servers: list[Server] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # what listens where, for people

    async def close(self) -> None:
        for server in self.servers:
            await server.close()


def scaled_clock(speed: float) -> Callable[[], float]:
    """A monotonic clock running ``speed`` times faster than the wall."""
    origin = time.monotonic()
    return lambda: origin + speed * (time.monotonic() - origin)


async def start_testbed(
    instruments: list[EmulatedInstrument], seed: int, faults: dict[str, dict[str, Any]],
    speed: float = 1.0, qkd_systems: tuple[QkdSystem, ...] = (), ideal_comb: bool = False,
    device: int | None = None,
) -> RunningTestbed:
    """Build the world (its clock ``speed`` times the wall's; its QKD systems, if given; the
    seed's ideal comb at Alice's DEMUX instead of the chip's light, if ``ideal_comb``; chip number
    ``device`` of the fabrication population instead of the seed's) and listen for every
    instrument that has an emulator."""
    options: dict[str, Any] = {"qkd_systems": qkd_systems} if qkd_systems else {}
    if device is not None:
        options["device"] = draw_device(np.random.default_rng([device, zlib.crc32(b"chip")]))
    world = Testbed(seed=seed, clock=scaled_clock(speed), **options)
    world.comb_override = seed_comb(IDEAL_COMB_LINE_MW) if ideal_comb else None
    testbed = RunningTestbed(world)
    for inst in instruments:
        factory = EMULATORS.get(inst.model)
        if factory is None:
            testbed.lines.append(f"{inst.name:<12} {inst.model:<20} not implemented")
            continue
        emulator = factory(testbed.world, inst)
        for knob, value in faults.get(inst.name, {}).items():
            setattr(emulator.faults, knob, value)
        server = server_for(emulator)
        await server.start(inst.host, inst.port)
        testbed.emulators[inst.name] = emulator
        testbed.servers.append(server)
        testbed.lines.append(
            f"{inst.name:<12} {inst.model:<20} listening on {inst.host}:{inst.port}")
    return testbed
