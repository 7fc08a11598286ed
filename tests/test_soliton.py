"""Soliton switching: the transition table, and the whole bring-up on the simulated testbed."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from labd.client import Client, Subscription
from labd.config import parse_config
from labd.soliton.machine import TRANSITIONS, Event, IllegalTransition, SolitonMachine, State
from sim_backends.control import send_control
from tests.conftest import RunningDaemon, running_daemon, write_default_station


def test_every_state_is_reachable_and_can_fault_or_stop() -> None:
    reached, frontier = {State.IDLE}, [State.IDLE]
    while frontier:
        for target in TRANSITIONS[frontier.pop()].values():
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(State)
    for state, moves in TRANSITIONS.items():
        if state is not State.FAULT:
            assert moves[Event.FAULT] is State.FAULT and moves[Event.STOP] is State.IDLE
    assert TRANSITIONS[State.FAULT] == {Event.RESET: State.IDLE}


def test_illegal_events_are_refused_and_legal_ones_published_and_recorded() -> None:
    published, recorded = [], []
    machine = SolitonMachine(lambda topic, body: published.append((topic, body)),
                             lambda *row: recorded.append(row))
    with pytest.raises(IllegalTransition, match="verified is not allowed in state idle"):
        machine.fire(Event.VERIFIED, "no")
    machine.fire(Event.START, "operator")
    machine.fire(Event.FAULT, "EDFA tripped")
    assert machine.state is State.FAULT
    assert [body["state"] for _, body in published] == ["preparing", "fault"]
    assert recorded[-1][1:4] == ("soliton", "preparing", "fault")
    assert "EDFA tripped" in recorded[-1][4]


@pytest.fixture(scope="module")
def soliton_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    station = write_default_station(Path(tmp_path_factory.mktemp("soliton")))
    with running_daemon(station) as daemon:
        yield daemon


def wait_for_state(client: Client, states: set[str], timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.call("soliton.status")
        if status["state"] in states:
            return status
        time.sleep(0.5)
    raise AssertionError(f"not in {states} within {timeout_s} s: {status}")


HOUR_S = 3600.0
#: A TSL-570 class laser holds its wavelength to about +-1 pm over an hour.
DRIFT = {"pump": {"rate_pm_per_h": 1.0, "wander_pm_per_sqrt_h": 1.0, "seed": 11},
         "aux": {"rate_pm_per_h": -0.5, "wander_pm_per_sqrt_h": 1.0, "seed": 12}}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cold_start_reaches_a_locked_single_soliton_like_the_seeds_and_recovers_it(
        soliton_daemon: RunningDaemon) -> None:
    """From cold to a locked single soliton; then the aux laser drops out for 0.1 s of world
    time, the soliton is lost, and the daemon finds it again by itself."""
    spectra = Subscription(soliton_daemon.station.pub, ("osa.spectrum",), timeout_s=300)
    with soliton_daemon.operator(ttl_s=1800) as client:
        started = time.monotonic()
        client.call("soliton.start")
        status = wait_for_state(client, {"locked", "fault"}, 300)
        print(f"cold start to locked: {time.monotonic() - started:.1f} s wall")
        assert status["state"] == "locked", status
        assert status["soliton_number"] == 1
        assert status["spacing_ghz"] == pytest.approx(49.0, rel=0.01)
        assert status["bandwidth_3db_thz"] == pytest.approx(3.2, rel=0.15)
        assert status["lines_20db"] >= 200
        assert status["calibration"]["p1_ref_mw"] < 0  # learnt on the step-down: N from power
        _, spectrum = next(spectra)
        assert len(spectrum["wavelength_nm"]) == len(spectrum["power_dbm"]) > 1000
        time.sleep(3)  # the lock holds
        assert client.call("soliton.status")["locked"] is True
        with pytest.raises(Exception, match="-32008"):  # the lock owns the aux laser
            client.call("station.set", instrument="aux", parameter="wavelength_nm",
                        value=1549.0)
        states = Subscription(soliton_daemon.station.pub, ("soliton.state",), timeout_s=300)
        send_control(soliton_daemon.station.control,
                     {"instrument": "aux", "op": "dropout", "seconds": 0.1})
        dropped = time.monotonic()
        _, lost = next(states)
        print(f"loss detected after {time.monotonic() - dropped:.1f} s wall")
        assert (lost["previous"], lost["state"]) == ("locked", "recovering"), lost
        assert time.monotonic() - dropped < 5.0
        status = wait_for_state(client, {"locked", "fault"}, 300)
        print(f"recovered: locked again {time.monotonic() - dropped:.1f} s after the drop-out")
        assert status["state"] == "locked" and status["soliton_number"] == 1, status
        assert status["lines_20db"] >= 200
        states.close()
    spectra.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_lock_holds_the_soliton_for_an_hour_of_laser_drift(
        soliton_daemon: RunningDaemon) -> None:
    """Continues the bring-up above: an hour of world time (6 min of wall at speed 10) with both
    lasers drifting and wandering, locked throughout; then the abort, and the record."""
    station = soliton_daemon.station
    simulation = parse_config(station.path.read_text()).simulation
    assert simulation is not None
    speed = simulation.speed
    with soliton_daemon.operator(ttl_s=1800) as client:
        assert client.call("soliton.status")["state"] == "locked", "needs the bring-up above"
        watch = Subscription(station.pub, ("soliton.state", "soliton.lock"), timeout_s=30)
        for laser, drift in DRIFT.items():
            send_control(station.control, {"instrument": laser, "op": "drift", **drift})
        ends = time.monotonic() + HOUR_S / speed
        powers, outputs, setpoint, band = [], [], 0.0, 0.0
        for topic, message in watch:
            assert topic == "soliton.lock", f"the soliton moved: {message}"
            powers.append(message["power_mw"])
            outputs.append(message["output"])
            setpoint = message["power_mw"] + message["error_mw"]
            band = message["loss_band_mw"]
            if time.monotonic() > ends:
                break
        watch.close()
        deviation = np.array(powers) - setpoint
        print(f"an hour locked: {len(powers)} readings, power deviation rms "
              f"{deviation.std() * 1e3:.2f} uW, max {np.abs(deviation).max() * 1e3:.2f} uW of "
              f"{setpoint:.3f} mW; aux output {min(outputs):.2f} to {max(outputs):.2f} pm")
        assert len(powers) > 1000
        assert np.abs(deviation).max() < band
        assert client.call("soliton.status")["locked"] is True
        result = client.call("safety.abort", reason="test over")
        assert result["steps"][0]["instrument"] == "edfa"
        status = client.call("soliton.status")
        assert status["state"] == "fault" and "test over" in status["reason"]
        for laser in ("pump", "aux"):
            assert client.call("station.get", instrument=laser,
                               parameter="output_enabled")["value"] is False
    database = station.path.parent / "labd.sqlite"
    rows = sqlite3.connect(database).execute(
        "SELECT source, target FROM transitions ORDER BY t").fetchall()
    assert rows[:2] == [("idle", "preparing"), ("preparing", "sweeping")]
    assert ("verifying", "single_soliton") in rows and ("single_soliton", "locked") in rows
    lost = rows.index(("locked", "recovering"))
    assert ("recovering", "sweeping") in rows[lost:] and ("single_soliton", "locked") in rows[lost:]
    assert rows[-1] == ("locked", "fault")
    traces = sqlite3.connect(database).execute(
        "SELECT body FROM telemetry WHERE topic = 'soliton.trace'").fetchall()
    assert any("power_meter.power_mw" in json.loads(body) for (body,) in traces)
