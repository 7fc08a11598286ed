"""Santec TSL-570: our driver's bytes; pymeasure's unmodified driver and ours on the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from pymeasure.instruments.santec.tsl570 import TSL570, SweepStatus
from pymeasure.test import expected_protocol

from drivers.errors import (
    ConnectionLost,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
)
from drivers.santec_tsl570 import TSL570Laser
from sim_backends.instruments.santec_tsl570 import TSL570Emulator
from sim_backends.world.laser import LaserDrift, TunableLaser
from sim_backends.world.testbed import Testbed as World
from tests.conftest import EmulatorThread, raw_exchange

CONNECT = [(b"*IDN?", b"SANTEC,TSL-570,21010001,0003.0008.0004"),
           (b":SYSTem:COMMunicate:CODe 1", None), (b":POWer:UNIT 1", None)]
NO_ERROR = (b"SYST:ERR?", b'0,"No error"')


def test_wavelength_is_written_to_a_tenth_of_a_picometre() -> None:
    pairs = [*CONNECT, (b":WAVelength 1.55609010e-06", None), NO_ERROR,
             (b":WAVelength?", b"1.5560901000e-06")]
    with expected_protocol(TSL570Laser, pairs, name="pump") as laser:
        laser.wavelength_nm = 1556.0901
        assert laser.wavelength_nm == 1556.0901


def test_power_and_output_protocol() -> None:
    pairs = [*CONNECT, (b":POWer 12.5", None), NO_ERROR, (b":POWer?", b"12.5000"),
             (b":POWer:STATe 1", None), (b":POWer:STATe?", b"1"), (b":POWer:STATe 0", None)]
    with expected_protocol(TSL570Laser, pairs, name="pump") as laser:
        laser.power_mw = 12.5
        assert laser.power_mw == 12.5
        laser.output_enabled = True
        assert laser.output_enabled is True
        laser.safe_state()


def test_instrument_error_raises_naming_instrument_and_command() -> None:
    pairs = [*CONNECT, (b":POWer 30", None), (b"SYST:ERR?", b'-222,"Data out of range"'),
             NO_ERROR]
    with (expected_protocol(TSL570Laser, pairs, name="pump") as laser,
          pytest.raises(InstrumentReportedError) as caught):
        laser.power_mw = 30
    assert caught.value.instrument == "pump"
    assert caught.value.command == ":POW"
    assert "-222" in str(caught.value)


@pytest.fixture
def laser_world() -> TunableLaser:
    return TunableLaser()


@pytest.fixture
def emulator(laser_world: TunableLaser) -> Iterator[EmulatorThread]:
    thread = EmulatorThread(TSL570Emulator(laser_world))
    yield thread
    thread.close()


def test_pymeasure_tsl570_unmodified_against_emulator(emulator: EmulatorThread,
                                                      laser_world: TunableLaser) -> None:
    laser = TSL570(emulator.resource, visa_library="@py", read_termination="\r",
                   write_termination="\r", timeout=2000)
    try:
        laser.command_set = "SCPI"
        laser.power_unit = "mW"
        laser.wavelength_setpoint = 1.5501e-6
        laser.power_setpoint = 5.0
        laser.output_enabled = True
        assert laser.wavelength_setpoint == pytest.approx(1.5501e-6, abs=1e-15)
        assert laser.power_setpoint == pytest.approx(5.0)
        assert laser.power == pytest.approx(5.0)
        assert laser.check_errors() == []
        assert laser_world.emitted_power_mw == pytest.approx(5.0)
        laser.command_set = "Legacy"
        assert laser.wavelength_setpoint == pytest.approx(1550.1)
    finally:
        laser.adapter.close()


def test_driver_against_emulator_round_trips_and_keeps_resolution(
        emulator: EmulatorThread, laser_world: TunableLaser) -> None:
    laser = TSL570Laser(emulator.resource, name="pump")
    try:
        laser.wavelength_nm = 1556.09013  # 0.03 pm past the grid: the laser rounds to 0.1 pm
        assert laser.wavelength_nm == pytest.approx(1556.0901, abs=1e-6)
        assert laser_world.wavelength_m == pytest.approx(1556.0901e-9, abs=1e-16)
        laser.power_mw = 2.5
        laser.output_enabled = True
        assert laser.output_enabled is True
        assert laser_world.emitted_power_mw == pytest.approx(2.5)
        laser.safe_state()
        assert laser.output_enabled is False  # a query: the write before it has been served
        assert laser_world.emitted_power_mw == 0.0
        with pytest.raises(InstrumentReportedError, match="-222"):
            laser.wavelength_nm = 1700.0
        assert laser.wavelength_nm == pytest.approx(1556.0901, abs=1e-6)
    finally:
        laser.close()


def test_emulator_error_queue_uses_scpi_codes(emulator: EmulatorThread) -> None:
    replies = raw_exchange(emulator.port, b":SYST:COMM:CODE 1", b":WAVELENGTH:BOGUS 1",
                           b":WAV 2e-6", b":POW:UNIT 7", b"SYST:ERR?", b"SYST:ERR?",
                           b"SYST:ERR?", b"SYST:ERR?")
    assert replies == [b'-113,"Undefined header"\r', b'-222,"Data out of range"\r',
                       b'-224,"Illegal parameter value"\r', b'0,"No error"\r']


def test_short_and_long_forms_and_compound_messages(emulator: EmulatorThread) -> None:
    replies = raw_exchange(emulator.port, b":syst:comm:code 1;:wavelength 1.55e-6",
                           b":WAV?;:POWer:STATe?", b"*IDN?")
    assert replies[0] == b"1.5500000000e-06;0\r"
    assert replies[1].startswith(b"SANTEC,TSL-570,")


def test_driver_reports_a_vanished_instrument_as_typed_error(emulator: EmulatorThread) -> None:
    laser = TSL570Laser(emulator.resource, name="pump", timeout_s=0.5)
    try:
        emulator.close()
        # pyvisa-py reports a socket closed by the peer as a timeout on the next read
        with pytest.raises((InstrumentTimeout, ConnectionLost)) as caught:
            laser.power_mw  # noqa: B018 - the read is the point
        assert caught.value.instrument == "pump"
        assert caught.value.command == ":POW?"
    finally:
        laser.close()


def test_connecting_to_something_else_is_refused() -> None:
    pairs = [(b"*IDN?", b"YOKOGAWA,AQ6370D,1,1")]
    with (pytest.raises(InstrumentError, match="not a Santec TSL-570"),
          expected_protocol(TSL570Laser, pairs, name="pump")):
        pass


def test_pymeasure_sweeps_the_emulated_laser_at_the_set_speed() -> None:
    clock = {"t": 0.0}
    world = World(clock=lambda: clock["t"])
    thread = EmulatorThread(TSL570Emulator(world.pump, world.sync))
    laser = TSL570(thread.resource, visa_library="@py", read_termination="\r",
                   write_termination="\r", timeout=2000)
    try:
        laser.command_set = "SCPI"
        laser.wavelength_start = 1550e-9
        laser.wavelength_stop = 1560e-9
        laser.sweep_speed = 5
        laser.start_sweep()
        assert laser.sweep_status == SweepStatus.RUNNING
        clock["t"] = 1.0  # one second later the laser has moved 5 nm
        assert laser.wavelength_setpoint == pytest.approx(1555e-9, abs=1e-13)
        clock["t"] = 3.0
        assert laser.sweep_status == SweepStatus.STOPPED
        assert laser.wavelength_setpoint == pytest.approx(1560e-9, abs=1e-13)
        laser.write(":WAV:SWE:SPE 3")  # not one of the hardware speeds
        assert laser.check_errors()[0][0] == -224
    finally:
        laser.adapter.close()
        thread.close()


def test_dropout_knob_darkens_the_laser_for_the_given_world_time() -> None:
    clock = {"t": 0.0}
    world = World(clock=lambda: clock["t"])
    emulator = TSL570Emulator(world.pump, world.sync)
    world.pump.diode_on = True
    emulator.drop_out(0.5)
    assert world.pump.emitted_power_mw == 0.0
    clock["t"] = 0.4
    assert emulator.handle(":POW:STAT?") == "0"  # still dark
    clock["t"] = 0.6
    assert emulator.handle(":POW:STAT?") == "1"  # back at the first message after 0.5 s


def test_drift_knob_moves_the_emission_but_not_the_readout() -> None:
    clock = {"t": 0.0}
    world = World(clock=lambda: clock["t"])
    emulator = TSL570Emulator(world.pump, world.sync)
    emulator.handle(":SYST:COMM:CODE 1")
    set_m = world.pump.wavelength_m
    emulator.set_drift(rate_pm_per_h=3600.0, wander_pm_per_sqrt_h=0.0)
    clock["t"] = 2.0
    world.sync()
    assert world.pump.emitted_wavelength_m - set_m == pytest.approx(2e-12, rel=1e-6)
    assert float(emulator.handle(":WAV?")) == pytest.approx(set_m, abs=1e-14)


def test_wander_is_a_random_walk_of_the_given_strength() -> None:
    """400 lasers wandering 1 pm/sqrt(h) for an hour in 100 steps: spread 1 pm (5 sigma: 18 %),
    mean 0; independent of how the hour is cut."""
    rng = np.random.default_rng(5)
    drifts = [LaserDrift(rng, wander_pm_per_sqrt_h=1.0) for _ in range(400)]
    for drift in drifts:
        for _ in range(100):
            drift.advance(36.0)
    offsets = np.array([d.offset_pm for d in drifts])
    assert offsets.std() == pytest.approx(1.0, rel=0.18)
    assert abs(offsets.mean()) < 5 * 1.0 / np.sqrt(400)
