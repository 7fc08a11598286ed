"""Faults and aborts in every soliton state leave the sources safe.

The controller runs in-process over real drivers and sockets against emulators of one simulated
world. Each soliton state is entered through the machine's state (a test seam: reaching every
state for real takes a whole bring-up each) with what runs in that state running: a sequence in
the automated states, the lock when locked. Then either the operator aborts or the pump laser's
connection drops while the EDFA runs (the safety watch's case); either way the machine ends in
fault, the automation has stopped, and the world's EDFA and lasers are dark: a laser that could
not be reached is switched off as soon as it is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labd.config import StationConfig, parse_config
from labd.safety import Safety
from labd.soliton.controller import ATTEMPTS, SolitonController
from labd.soliton.machine import SolitonMachine, State
from labd.station import Station
from sim_backends.instruments.amonics_aedfa import AedfaEmulator
from sim_backends.instruments.santec_tsl570 import TSL570Emulator
from sim_backends.instruments.thorlabs_pm100usb import PM100USBEmulator
from sim_backends.world.edfa import Status
from sim_backends.world.testbed import Testbed as World
from tests.conftest import ROOT, EmulatorThread

HOLD = '[sequence]\nname = "hold"\ndescription = "runs"\n[[steps]]\nkind = "wait"\nseconds = 600\n'
AUTOMATED = {State.PREPARING, State.SWEEPING, State.SOLITON_DETECTED, State.STEPPING_DOWN,
             State.VERIFYING, State.SINGLE_SOLITON, State.RECOVERING}


@dataclass
class Bench:
    world: World
    emulators: dict[str, Any]
    threads: dict[str, EmulatorThread]

    def config(self) -> StationConfig:
        models = {"pump": ("pump_laser", "santec.TSL570"), "aux": ("aux_laser", "santec.TSL570"),
                  "edfa": ("edfa", "amonics.AEDFA"),
                  "power_meter": ("power_meter", "thorlabs.PM100USB")}
        return parse_config("[daemon]\ncall_timeout_s = 3.0\n" + "".join(
            f'[instruments.{name}]\nrole = "{role}"\nmodel = "{model}"\n'
            f'resource = "{self.threads[name].resource}"\n'
            for name, (role, model) in models.items()))

    def sources_dark(self) -> bool:
        return (self.world.edfa.master == Status.OFF and not self.world.pump.diode_on
                and not self.world.aux.diode_on)


@pytest.fixture
def bench() -> Iterator[Bench]:
    world = World(seed=3)
    emulators = {"pump": TSL570Emulator(world.pump, world.sync),
                 "aux": TSL570Emulator(world.aux, world.sync),
                 "edfa": AedfaEmulator(world.edfa, world.sync),
                 "power_meter": PM100USBEmulator(world.power_meter_light, world.sync,
                                                 world.rng_for("power_meter"))}
    threads = {name: EmulatorThread(emulator) for name, emulator in emulators.items()}
    yield Bench(world, emulators, threads)
    for thread in threads.values():
        thread.close()


async def _sources_on(controller: SolitonController) -> None:
    for laser in ("pump", "aux"):
        await controller.set(laser, "output_enabled", True)
    await asyncio.sleep(0.7)  # the EDFA confirms its seed after 0.5 s
    await controller.set("edfa", "output_w", 0.5)
    await controller.set("edfa", "enabled", True)


async def _in_state(bench: Bench, state: State, cause: str) -> dict[str, Any]:
    station = Station(bench.config(), lambda *_: None)
    await station.connect()
    published: list[tuple[str, dict[str, Any]]] = []
    safety = Safety(station, lambda *message: published.append(message))
    machine = SolitonMachine(lambda *message: published.append(message), lambda *_: None)
    controller = SolitonController(station, safety, machine, lambda *message: None,
                                   ROOT / "sequences")
    safety.listeners.append(controller.on_safety_abort)
    try:
        await _sources_on(controller)
        assert not bench.sources_dark()
        machine.state = state
        if state is State.LOCKED:
            await controller.lock("aux_wavelength", -5.0, -20.0, 0.0, -1.5, 1.5, None)
        elif state in AUTOMATED:
            controller._launch(controller.load("hold", HOLD))
        await asyncio.sleep(0.3)
        if cause == "abort":
            await safety.abort("operator abort")
        else:
            bench.emulators["pump"].faults.drop_connection = True
            await safety.watch()
            assert bench.world.edfa.master == Status.OFF  # the watts are off at once
            bench.emulators["pump"].faults.clear()
            await station.worker("pump").connect()  # what Station.supervise does
            await safety.watch()  # the next round of the daemon's watch
        return {"state": machine.state, "running": controller.running,
                "locked": controller.lock_state is not None, "abort": safety.last_abort}
    finally:
        bench.emulators["pump"].faults.clear()
        await controller.stop("test over")
        station.close()


@pytest.mark.parametrize("cause", ["abort", "instrument fault"])
@pytest.mark.parametrize("state", list(State))
def test_every_state_ends_safe(bench: Bench, state: State, cause: str) -> None:
    outcome = asyncio.run(_in_state(bench, state, cause))
    world = bench.world
    assert bench.sources_dark(), (world.edfa.master, world.pump.diode_on, world.aux.diode_on)
    assert outcome["state"] is State.FAULT
    assert not outcome["running"] and not outcome["locked"]
    steps = outcome["abort"]["steps"]
    assert steps[0] == {"instrument": "edfa", "ok": True}  # the watts go first
    if cause == "instrument fault":
        assert "pump" in outcome["abort"]["reason"]


FAILING_RECOVER = """[sequence]
name = "recover"
description = "a step-down that finds no soliton: what a failed attempt looks like"
[[steps]]
kind = "step_down_until"
soliton_number = 1
actuator = "pump_wavelength"
step_pm = 0.1
settle_s = 0.0
max_steps = 1
"""


def test_failed_attempts_are_retried_a_bounded_number_of_times_then_fault(
        bench: Bench, tmp_path: Path) -> None:
    """An attempt the physics refuses goes back through the sweep (recover.toml), at most
    ATTEMPTS times in all, then ends in fault with the sources safe: never a loop."""
    (tmp_path / "recover.toml").write_text(FAILING_RECOVER)

    async def scenario() -> list[tuple[str, str]]:
        station = Station(bench.config(), lambda *_: None)
        await station.connect()
        moves: list[tuple[str, str]] = []
        safety = Safety(station, lambda *_: None)
        machine = SolitonMachine(lambda _, body: moves.append((body["event"], body["state"])),
                                 lambda *_: None)
        controller = SolitonController(station, safety, machine, lambda *_: None, tmp_path)
        safety.listeners.append(controller.on_safety_abort)
        try:
            await _sources_on(controller)
            machine.state, controller.attempt = State.SWEEPING, 1
            controller._launch(controller.load("recover"))
            while machine.state is not State.FAULT:
                await asyncio.sleep(0.05)
            while controller.running or controller.pending:
                await asyncio.sleep(0.05)
            return moves
        finally:
            station.close()

    moves = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert moves == [("retry", "recovering")] * (ATTEMPTS - 1) + [("fault", "fault")], moves
    assert bench.sources_dark()
