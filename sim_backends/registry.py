"""Which instrument models have an emulator, and which device of the world each role drives."""

from __future__ import annotations

from collections.abc import Callable

from drivers.roles import Role
from sim_backends.instruments.amonics_aedfa import AedfaEmulator
from sim_backends.instruments.idquantique_id1000 import ID1000Emulator
from sim_backends.instruments.keysight_m8195a import M8195AEmulator
from sim_backends.instruments.santec_tsl570 import TSL570Emulator
from sim_backends.instruments.thorlabs_mbx import MBXEmulator
from sim_backends.instruments.thorlabs_pm100usb import PM100USBEmulator
from sim_backends.instruments.thorlabs_ted4015 import TED4015Emulator
from sim_backends.instruments.yokogawa_aq6370 import AQ6370Emulator
from sim_backends.server import Emulator, LineEmulator, ServedEmulator
from sim_backends.world.testbed import Testbed

EmulatorFactory = Callable[[Testbed, Role], Emulator]


def _tsl570(world: Testbed, role: Role) -> LineEmulator:
    return TSL570Emulator(world.pump if role is Role.PUMP_LASER else world.aux, world.sync)


def _aq6370(world: Testbed, role: Role) -> LineEmulator:
    return AQ6370Emulator(world.osa_light, world.sync, world.rng_for("osa"))


def _m8195a(world: Testbed, role: Role) -> LineEmulator:
    return M8195AEmulator(world.awg, world.sync)


def _ted4015(world: Testbed, role: Role) -> LineEmulator:
    return TED4015Emulator(world.tec, world.sync)


def _pm100usb(world: Testbed, role: Role) -> LineEmulator:
    return PM100USBEmulator(world.power_meter_light, world.sync, world.rng_for("power_meter"))


def _mbx(world: Testbed, role: Role) -> LineEmulator:
    return MBXEmulator(world.bias, world.sync)


def _id1000(world: Testbed, role: Role) -> ServedEmulator:
    return ID1000Emulator(world.counting, world.sync)


def _aedfa(world: Testbed, role: Role) -> LineEmulator:
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
