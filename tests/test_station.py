"""The station in-process against emulators on real sockets: ramps, abort order, the watchdog."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from labd.config import StationConfig, parse_config
from labd.safety import Safety, Watchdog
from labd.station import Station
from sim_backends.instruments.santec_tsl570 import TSL570Emulator
from sim_backends.world.laser import TunableLaser
from tests.conftest import EmulatorThread


@pytest.fixture
def lasers() -> Iterator[dict[str, tuple[TunableLaser, EmulatorThread]]]:
    made = {}
    for name in ("pump", "aux"):
        laser = TunableLaser()
        made[name] = (laser, EmulatorThread(TSL570Emulator(laser)))
    yield made
    for _, thread in made.values():
        thread.close()


def station_config(lasers: dict[str, Any], pump_extra: str = "") -> StationConfig:
    return parse_config(f"""
[instruments.pump]
role = "pump_laser"
model = "santec.TSL570"
resource = "{lasers['pump'][1].resource}"
{pump_extra}
[instruments.aux]
role = "aux_laser"
model = "santec.TSL570"
resource = "{lasers['aux'][1].resource}"
""")


def test_ramped_parameter_moves_in_steps_at_the_configured_rate(lasers: dict[str, Any]) -> None:
    config = station_config(lasers, "ramps = { power_mw = 10.0 }")
    world_pump = lasers["pump"][0]
    seen: list[float] = []

    async def scenario() -> float:
        station = Station(config, lambda *_: None)
        await station.connect()
        await station.set("pump", "power_mw", 1.0)
        started = time.monotonic()

        async def watch() -> None:
            while True:
                seen.append(world_pump.power_setpoint_mw)
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch())
        await station.set("pump", "power_mw", 5.0)
        watcher.cancel()
        station.close()
        return time.monotonic() - started

    elapsed = asyncio.run(scenario())
    assert world_pump.power_setpoint_mw == pytest.approx(5.0)
    intermediate = {round(v, 3) for v in seen if 1.0 < v < 5.0}
    assert len(intermediate) >= 3, seen  # 4 mW at 10 mW/s: 4 ticks of 1 mW
    assert elapsed >= 0.3  # 0.4 s nominal, at least three sleeps of 0.1 s


def test_abort_stops_a_ramp_and_turns_sources_off(lasers: dict[str, Any]) -> None:
    config = station_config(lasers, "ramps = { power_mw = 2.0 }")

    async def scenario() -> dict[str, Any]:
        station = Station(config, lambda *_: None)
        await station.connect()
        for name in ("pump", "aux"):
            await station.set(name, "output_enabled", True)
        ramp = asyncio.create_task(station.set("pump", "power_mw", 10.0))
        await asyncio.sleep(0.35)
        published: list[tuple[str, dict[str, Any]]] = []
        event = await Safety(station, lambda *m: published.append(m)).abort("test")
        await ramp
        station.close()
        return {"event": event, "published": published}

    result = asyncio.run(scenario())
    pump = lasers["pump"][0]
    assert pump.power_setpoint_mw < 3.0  # the ramp stopped early, not at 10 mW
    assert [s["instrument"] for s in result["event"]["steps"]] == ["aux", "pump"]
    assert not pump.diode_on and not lasers["aux"][0].diode_on
    assert result["published"][0][0] == "safety"


def test_watchdog_turns_sources_off_when_the_loop_stalls(lasers: dict[str, Any]) -> None:
    config = station_config(lasers)
    trips: list[str] = []

    async def scenario() -> None:
        station = Station(config, lambda *_: None)
        await station.connect()
        for name in ("pump", "aux"):
            await station.set(name, "output_enabled", True)
        watchdog = Watchdog(station, 0.5, trips.append)
        beat = asyncio.create_task(watchdog.heartbeat())
        watchdog.start()
        await asyncio.sleep(0.3)
        assert not trips
        time.sleep(2.0)  # the loop is stuck: no heartbeat
        beat.cancel()
        watchdog.stop()
        station.close()

    asyncio.run(scenario())
    assert len(trips) == 1 and "stalled" in trips[0]
    assert not lasers["pump"][0].diode_on and not lasers["aux"][0].diode_on
