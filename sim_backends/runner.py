"""Start the simulated testbed: the world and one loopback server per emulated instrument."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.roles import Role
from sim_backends.registry import EMULATORS
from sim_backends.server import LineServer
from sim_backends.world.testbed import Testbed


@dataclass(frozen=True)
class EmulatedInstrument:
    """Where one simulated instrument listens."""

    name: str
    role: Role
    model: str
    host: str
    port: int


async def start_testbed(
    instruments: list[EmulatedInstrument], seed: int
) -> tuple[Testbed, list[LineServer], list[str]]:
    """Build the world and listen for every instrument that has an emulator.

    Returns the world, the servers, and one human-readable line per instrument.
    """
    world = Testbed(seed=seed)
    servers, lines = [], []
    for inst in instruments:
        factory = EMULATORS.get(inst.model)
        if factory is None:
            lines.append(f"{inst.name:<12} {inst.model:<20} not implemented")
            continue
        server = LineServer(factory(world, inst.role))
        await server.start(inst.host, inst.port)
        servers.append(server)
        lines.append(f"{inst.name:<12} {inst.model:<20} listening on {inst.host}:{inst.port}")
    return world, servers, lines
