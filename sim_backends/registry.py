"""Which instrument models have an emulator, and which device of the world each role drives."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from drivers.roles import Role
from sim_backends.instruments.amonics_aedfa import AedfaEmulator
from sim_backends.instruments.idquantique_id1000 import GatedCounterWiring, ID1000Emulator
from sim_backends.instruments.keysight_m8195a import M8195AEmulator
from sim_backends.instruments.santec_tsl570 import TSL570Emulator
from sim_backends.instruments.thorlabs_mbx import MBXEmulator
from sim_backends.instruments.thorlabs_pm100usb import PM100USBEmulator
from sim_backends.instruments.thorlabs_ted4015 import TED4015Emulator
from sim_backends.instruments.yokogawa_aq6370 import AQ6370Emulator
from sim_backends.server import Emulator, LineEmulator, ServedEmulator
from sim_backends.world.testbed import Testbed

#: The line carrying the AWG markers the combiners gate on (the sifted classes' markers).
MARKER_LINK = "INPU4"


@dataclass(frozen=True)
class EmulatedInstrument:
    """Where one simulated instrument listens, and for a QKD system's AWG or time controller,
    which system (ITU channel) and how the combiners are wired."""

    name: str
    role: Role
    model: str
    host: str
    port: int
    qkd_channel: int | None = None
    combiners: Mapping[int, tuple[int, int, bool]] = field(default_factory=dict)
    # combiner -> (intensity 0 mu / 1 nu1 / 2 nu2, basis 0 X / 1 Y, errors or correct clicks)


EmulatorFactory = Callable[[Testbed, EmulatedInstrument], Emulator]


def _tsl570(world: Testbed, inst: EmulatedInstrument) -> LineEmulator:
    return TSL570Emulator(world.pump if inst.role is Role.PUMP_LASER else world.aux, world.sync)


def _aq6370(world: Testbed, inst: EmulatedInstrument) -> LineEmulator:
    return AQ6370Emulator(world.osa_light, world.sync, world.rng_for("osa"))


def _m8195a(world: Testbed, inst: EmulatedInstrument) -> LineEmulator:
    awg = world.awg if inst.qkd_channel is None else world.awgs[inst.qkd_channel]
    return M8195AEmulator(awg, world.sync)


def _ted4015(world: Testbed, inst: EmulatedInstrument) -> LineEmulator:
    return TED4015Emulator(world.tec, world.sync)


def _pm100usb(world: Testbed, inst: EmulatedInstrument) -> LineEmulator:
    return PM100USBEmulator(world.power_meter_light, world.sync, world.rng_for("power_meter"))


def _mbx(world: Testbed, inst: EmulatedInstrument) -> LineEmulator:
    return MBXEmulator(world.bias, world.sync)


def _id1000(world: Testbed, inst: EmulatedInstrument) -> ServedEmulator:
    if inst.qkd_channel is None:
        return ID1000Emulator(world.counting, world.sync)
    channel = inst.qkd_channel
    gated = {k: GatedCounterWiring(world.qkd_feed.sifted_gates(channel, *sifted), MARKER_LINK)
             for k, sifted in inst.combiners.items()}
    return ID1000Emulator(world.countings[channel], world.sync, gated)


def _aedfa(world: Testbed, inst: EmulatedInstrument) -> LineEmulator:
    return AedfaEmulator(world.edfa, world.sync)


EMULATORS: dict[str, EmulatorFactory] = {
    "amonics.AEDFA": _aedfa,
    "idquantique.ID1000": _id1000,
    "thorlabs.PM100USB": _pm100usb,
    "thorlabs.MBX": _mbx,
    "thorlabs.TED4015": _ted4015,
    "keysight.M8195A": _m8195a,
    "santec.TSL570": _tsl570,
    "yokogawa.AQ6370D": _aq6370,
}
