"""Start the simulated testbed: the world and one loopback server per emulated instrument."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.roles import Role
from sim_backends.registry import EMULATORS
from sim_backends.server import Emulator, Server, server_for
from sim_backends.world.testbed import Testbed


@dataclass(frozen=True)
class EmulatedInstrument:
    """Where one simulated instrument listens."""

    name: str
    role: Role
    model: str
    host: str
    port: int


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
    speed: float = 1.0,
) -> RunningTestbed:
    """Build the world (its clock ``speed`` times the wall's) and listen for every instrument
    that has an emulator."""
    testbed = RunningTestbed(Testbed(seed=seed, clock=scaled_clock(speed)))
    for inst in instruments:
        factory = EMULATORS.get(inst.model)
        if factory is None:
            testbed.lines.append(f"{inst.name:<12} {inst.model:<20} not implemented")
            continue
        emulator = factory(testbed.world, inst.role)
        for knob, value in faults.get(inst.name, {}).items():
            setattr(emulator.faults, knob, value)
        server = server_for(emulator)
        await server.start(inst.host, inst.port)
        testbed.emulators[inst.name] = emulator
        testbed.servers.append(server)
        testbed.lines.append(
            f"{inst.name:<12} {inst.model:<20} listening on {inst.host}:{inst.port}")
    return testbed
