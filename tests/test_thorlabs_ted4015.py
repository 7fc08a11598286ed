"""Thorlabs TED4015: the driver's bytes, the emulator's SCPI, the chip mount's thermal dynamics.

The world runs on a fake clock: ``FakeWorld.wait()`` moves it and integrates the mount in the test's
thread (not inside a query, whose reply would wait for it), so minutes of thermal behaviour take
a fraction of a second.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from drivers.errors import (
    ConnectionLost,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
)
from drivers.thorlabs_ted4015 import TED4015, TED4015Tec
from sim_backends.instruments.thorlabs_ted4015 import TED4015Emulator
from sim_backends.scpi import ScpiError
from sim_backends.world.tec import KELVIN_AT_0C, TecMount
from tests.conftest import EmulatorThread

IDN = b"THORLABS,TED4015,M00412345,1.2.0/1.0.3/1.5.0"
NO_ERROR = (b"SYST:ERR?", b'+0,"No error"')
CONNECT = [(b"*IDN?", IDN), (b"UNIT:TEMP C", None), NO_ERROR]
PROBE_S = 0.2  # connect probe timeout: loopback answers in milliseconds


# --- the driver's bytes -------------------------------------------------------------------------

def test_setpoint_is_written_to_a_hundredth_of_a_kelvin() -> None:
    pairs = [*CONNECT, (b"SOUR:TEMP 25.12C", None), NO_ERROR, (b"SOUR:TEMP?", b"2.512000E+01")]
    with expected_protocol(TED4015Tec, pairs, name="tec") as tec:
        tec.setpoint_c = 25.1234
        assert tec.setpoint_c == 25.12


def test_temperature_output_and_safe_state_protocol() -> None:
    pairs = [*CONNECT, (b"MEAS:TEMP?", b"2.500213E+01"), (b"OUTP ON", None), NO_ERROR,
             (b"OUTP?", b"1"), (b"OUTP OFF", None), NO_ERROR, (b"OUTP?", b"0")]
    with expected_protocol(TED4015Tec, pairs, name="tec") as tec:
        assert tec.temperature_c == 25.00213
        tec.output_enabled = True
        assert tec.output_enabled is True
        tec.safe_state()  # keeps the loop regulating: nothing on the wire
        tec.output_enabled = False
        assert tec.output_enabled is False


def test_pid_constants_and_unit_protocol() -> None:
    pairs = [(b"SOUR:TEMP:LCON:GAIN 2.5", None), NO_ERROR,
             (b"SOUR:TEMP:LCON:GAIN?", b"2.500000E+00"),
             (b"SOUR:TEMP:LCON:INT 0.05", None), NO_ERROR,
             (b"SOUR:TEMP:LCON:INT?", b"5.000000E-02"),
             (b"SOUR:TEMP:LCON:DER 0", None), NO_ERROR,
             (b"SOUR:TEMP:LCON:DER?", b"0.000000E+00"),
             (b"SOUR:TEMP:LCON:PER 4", None), NO_ERROR,
             (b"SOUR:TEMP:LCON:PER?", b"4.000000E+00"),
             (b"UNIT:TEMP K", None), NO_ERROR, (b"UNIT:TEMP?", b"K"),
             (b"UNIT:TEMP?", b"CEL"), (b"*OPC?", b"1")]
    with expected_protocol(TED4015, pairs) as ted:
        ted.pid_gain = 2.5
        assert ted.pid_gain == 2.5
        ted.pid_integral = 0.05
        assert ted.pid_integral == 0.05
        ted.pid_derivative = 0
        assert ted.pid_derivative == 0.0
        ted.pid_period = 4
        assert ted.pid_period == 4.0
        ted.temperature_unit = "K"
        assert ted.temperature_unit == "K"
        assert ted.temperature_unit == "C"
        assert ted.complete == "1"


def test_instrument_error_raises_naming_instrument_and_command() -> None:
    pairs = [*CONNECT, (b"SOUR:TEMP 200.00C", None),
             (b"SYST:ERR?", b'-222,"Data out of range"'), NO_ERROR]
    with (expected_protocol(TED4015Tec, pairs, name="tec") as tec,
          pytest.raises(InstrumentReportedError) as caught):
        tec.setpoint_c = 200
    assert (caught.value.instrument, caught.value.command) == ("tec", "SOUR:TEMP")
    assert "-222" in str(caught.value)


def test_another_instrument_on_the_resource_is_refused() -> None:
    pairs = [(b"*IDN?", b"THORLABS,ITC4001,M00000001,1.0.0/1.0.0/1.0.0")]
    with (pytest.raises(InstrumentError, match="not a TED4015") as caught,
          expected_protocol(TED4015Tec, pairs, name="tec")):
        pass
    assert caught.value.command == "*IDN?"


def test_an_unreadable_output_state_is_a_typed_error() -> None:
    pairs = [*CONNECT, (b"OUTP?", b"2")]
    with (expected_protocol(TED4015Tec, pairs, name="tec") as tec,
          pytest.raises(InstrumentError, match="unreadable reply") as caught):
        tec.output_enabled  # noqa: B018 - the read is the point
    assert caught.value.command == "OUTP?"


# --- the emulator over a real socket ------------------------------------------------------------

class FakeWorld:
    """The one device under test and a clock the test moves by hand."""

    def __init__(self, mount: TecMount) -> None:
        self.mount = mount
        self.now_s = 0.0
        self._synced_s = 0.0

    def sync(self) -> float:
        if self.now_s > self._synced_s:
            self.mount.advance(self.now_s - self._synced_s)
            self._synced_s = self.now_s
        return self.now_s

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` of world time pass (call it while no query is in flight)."""
        self.now_s += seconds
        self.sync()


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld(TecMount(np.random.default_rng(11)))


@pytest.fixture
def emulator(world: FakeWorld) -> TED4015Emulator:
    return TED4015Emulator(world.mount, world.sync)


@pytest.fixture
def server(emulator: TED4015Emulator) -> Iterator[EmulatorThread]:
    thread = EmulatorThread(emulator)
    yield thread
    thread.close()


@pytest.fixture
def tec(server: EmulatorThread) -> Iterator[TED4015Tec]:
    driver = TED4015Tec(server.resource, name="tec", timeout_s=0.5, probe_timeout_s=PROBE_S)
    yield driver
    driver.close()


def raw_exchange(port: int, *messages: bytes, first_lost: bool = True) -> list[bytes]:
    """Send LF-terminated messages (after one sacrificial message); return the query replies."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        if first_lost:
            sock.sendall(b"*CLS\n")
        replies = []
        for message in messages:
            sock.sendall(message + b"\n")
            if b"?" in message:
                replies.append(sock.recv(4096))
        return replies


def test_emulator_loses_the_first_message_of_each_connection(server: EmulatorThread) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=0.3) as sock:
        sock.sendall(b"*IDN?\n")
        with pytest.raises(TimeoutError):
            sock.recv(4096)
        sock.sendall(b"*IDN?\n")
        assert sock.recv(4096) == IDN + b"\n"


def test_emulator_error_queue_uses_scpi_codes(server: EmulatorThread) -> None:
    replies = raw_exchange(server.port, b"SOUR:TEMP 200C", b"SOUR:TEMP:BOGUS 1",
                           b"SOUR2:TEMP 25C", b"UNIT:TEMP X", b"SOUR:TEMP 25Q",
                           *[b"SYST:ERR?"] * 6)
    assert replies == [b'-222,"Data out of range"\n', b'-113,"Undefined header"\n',
                       b'-113,"Undefined header"\n', b'-224,"Illegal parameter value"\n',
                       b'-131,"Invalid suffix"\n', b'+0,"No error"\n']


def test_compound_messages_resolve_headers_on_the_previous_path(
        server: EmulatorThread, world: FakeWorld) -> None:
    replies = raw_exchange(server.port, b"SOUR:TEMP:LCON:GAIN 2;INT 0.2;DER 0.5;PER 3",
                           b"SOUR:TEMP:LCON:GAIN?;INT?;DER?;PER?;:OUTP?")
    assert replies == [b"2.000000E+00;2.000000E-01;5.000000E-01;3.000000E+00;0\n"]
    mount = world.mount
    assert (mount.gain_a_per_k, mount.integral_a_per_k_s, mount.derivative_a_s_per_k,
            mount.period_s) == (2.0, 0.2, 0.5, 3.0)


def test_temperature_units_and_limits(server: EmulatorThread, world: FakeWorld) -> None:
    replies = raw_exchange(server.port, b"SOURCE1:TEMPERATURE:SPOINT 77F", b"SOUR:TEMP?",
                           b"UNIT:TEMP K", b"UNIT:TEMP?", b"TEMP 300", b"TEMP?",
                           b"TEMP? MIN", b"UNIT:TEMP CEL", b"TEMP? MAX", b"MEAS:SCAL:TEMP?")
    assert replies[:3] == [b"2.500000E+01\n", b"K\n", b"3.000000E+02\n"]
    assert world.mount.setpoint_c == pytest.approx(300 - KELVIN_AT_0C)
    assert replies[3:5] == [b"2.281500E+02\n", b"1.450000E+02\n"]  # -45 .. 145 degC
    assert float(replies[5]) == pytest.approx(22.0, abs=0.01)  # the mount sits at ambient


# --- the driver against the emulator ------------------------------------------------------------

def test_driver_round_trips_and_the_controller_quantises(
        tec: TED4015Tec, world: FakeWorld) -> None:
    assert tec.identity.startswith("THORLABS,TED4015,")
    tec.setpoint_c = 27.456  # the driver writes 27.46C
    assert tec.setpoint_c == 27.46
    world.mount.set_setpoint(27.456)  # the controller itself keeps 0.01 K too
    assert tec.setpoint_c == 27.46
    with pytest.raises(InstrumentReportedError, match="-222"):
        tec.setpoint_c = -60.0
    assert tec.setpoint_c == 27.46
    tec.output_enabled = True
    assert tec.output_enabled is True
    assert world.mount.output_on
    tec.safe_state()
    assert tec.output_enabled is True  # the chip stays regulated


def test_the_first_command_quirk_is_handled_and_bounded(
        emulator: TED4015Emulator, server: EmulatorThread) -> None:
    for lost in (0, 1, 3):
        emulator.lost_after_connect = lost
        tec = TED4015Tec(server.resource, name="tec", timeout_s=0.5, probe_timeout_s=PROBE_S)
        assert tec.temperature_c == pytest.approx(22.0, abs=0.01)
        tec.close()
    emulator.lost_after_connect = 4  # more than the driver's four attempts
    with pytest.raises(InstrumentTimeout) as caught:
        TED4015Tec(server.resource, name="tec", timeout_s=0.5, probe_timeout_s=PROBE_S)
    assert (caught.value.instrument, caught.value.command) == ("tec", "*IDN?")


def test_driver_sees_the_loop_settle_and_hold(tec: TED4015Tec, world: FakeWorld) -> None:
    """30 degC from 22 degC ambient: settled after 120 s; then 120 readings over a minute.

    Tolerances: mean within 1 mK of the set-point (60 seeds: within 0.47 mK); standard deviation
    2 mK +- 25 % (the spread of a 120-sample standard deviation is ~ 6.5 %; 60 seeds: 1.64 to
    2.32 mK).
    """
    tec.setpoint_c = 30.0
    tec.output_enabled = True
    world.wait(120.0)
    readings = []
    for _ in range(120):
        world.wait(0.5)
        readings.append(tec.temperature_c)
    assert np.mean(readings) == pytest.approx(30.0, abs=0.001)
    assert 0.0015 < np.std(readings) < 0.0025


# --- fault knobs --------------------------------------------------------------------------------

def test_dropped_connection_is_a_typed_error(tec: TED4015Tec, emulator: TED4015Emulator) -> None:
    emulator.faults.drop_connection = True
    # pyvisa-py reports a socket closed by the peer as a timeout on the next read
    with pytest.raises((ConnectionLost, InstrumentTimeout)) as caught:
        tec.temperature_c  # noqa: B018 - the read is the point
    assert (caught.value.instrument, caught.value.command) == ("tec", "MEAS:TEMP?")


def test_connection_dropped_while_probing_fails_typed_and_bounded(
        server: EmulatorThread, emulator: TED4015Emulator) -> None:
    emulator.faults.drop_connection = True
    started = time.monotonic()
    with pytest.raises((ConnectionLost, InstrumentTimeout)) as caught:
        TED4015Tec(server.resource, name="tec", timeout_s=0.5, probe_timeout_s=PROBE_S)
    assert (caught.value.instrument, caught.value.command) == ("tec", "*IDN?")
    assert time.monotonic() - started < 4 * (PROBE_S + 0.1)


def test_stalled_instrument_times_out(tec: TED4015Tec, emulator: TED4015Emulator) -> None:
    emulator.faults.stall = True
    with pytest.raises(InstrumentTimeout) as caught:
        tec.setpoint_c  # noqa: B018
    assert (caught.value.instrument, caught.value.command) == ("tec", "SOUR:TEMP?")


def test_slow_reply_is_waited_for_within_the_timeout(
        tec: TED4015Tec, emulator: TED4015Emulator) -> None:
    emulator.faults.reply_delay_s = 0.3  # the driver's timeout is 0.5 s
    started = time.monotonic()
    assert tec.setpoint_c == 25.0
    assert time.monotonic() - started >= 0.3
    emulator.faults.reply_delay_s = 0.8
    with pytest.raises(InstrumentTimeout):
        tec.output_enabled  # noqa: B018


def test_garbage_reply_is_an_unreadable_reply(
        tec: TED4015Tec, emulator: TED4015Emulator) -> None:
    emulator.faults.garbage_reply = True
    with pytest.raises(InstrumentError, match="unreadable reply") as caught:
        tec.temperature_c  # noqa: B018
    assert type(caught.value) is InstrumentError
    assert caught.value.command == "MEAS:TEMP?"


def test_queued_instrument_error_surfaces_on_the_next_set(
        tec: TED4015Tec, emulator: TED4015Emulator, world: FakeWorld) -> None:
    emulator.inject_error(ScpiError(-300, "Device-specific error"))
    with pytest.raises(InstrumentReportedError, match="-300") as caught:
        tec.output_enabled = True
    assert (caught.value.instrument, caught.value.command) == ("tec", "OUTP")
    assert world.mount.output_on  # the command itself was executed
    tec.output_enabled = False  # the queue is drained: the next set is clean


# --- the chip mount's physics -------------------------------------------------------------------

def quiet_mount(**overrides: Any) -> TecMount:
    """A mount without ambient drift or fluctuation, so that a dynamics test sees only the plant."""
    settings: dict[str, Any] = {"ambient_drift_k_per_h": 0.0, "ambient_sigma_k": 0.0, **overrides}
    return TecMount(np.random.default_rng(5), **settings)


def test_output_off_relaxes_to_ambient_with_tau_c_over_g() -> None:
    """After one tau = C/G = 20 s the excess over ambient is 1/e of the start (to 0.5 %)."""
    mount = quiet_mount(temperature_c=30.0)
    assert mount.time_constant_s == 20.0
    mount.advance(mount.time_constant_s)
    assert (mount.temperature_c - 22.0) / 8.0 == pytest.approx(np.exp(-1), rel=0.005)
    mount.heat_load_w = 0.5  # absorbed light with nobody regulating: ambient + P/G
    mount.advance(10 * mount.time_constant_s)
    assert mount.temperature_c == pytest.approx(22.0 + 0.5 / 0.25, abs=0.001)


def test_small_step_follows_the_linearised_closed_loop_time_constant() -> None:
    """0.2 K step without saturation: 63 % at C / (G + S I0 + Kp (S T - R I0)), to 15 %.

    The PI zero (Ki/Kp = 0.1 /s) nearly cancels the slow closed-loop pole, so the fast pole
    sets the rise; the exact 63 % time differs from it by a few per cent.
    """
    mount = quiet_mount(sensor_noise_k=0.0)
    mount.set_output(True)
    mount.advance(120.0)
    start_c, current_a = mount.temperature_c, mount.current_a
    s, r, g = mount.seebeck_v_per_k, mount.resistance_ohm, mount.conductance_w_per_k
    stiffness = g + s * current_a + mount.gain_a_per_k * (s * (start_c + KELVIN_AT_0C)
                                                           - r * current_a)
    expected_s = mount.heat_capacity_j_per_k / stiffness
    mount.set_setpoint(25.2)
    elapsed_s = 0.0
    while (mount.temperature_c - start_c) / 0.2 < 1 - np.exp(-1):
        mount.advance(0.01)
        elapsed_s += 0.01
    assert elapsed_s == pytest.approx(expected_s, rel=0.15)


def test_large_step_saturates_then_settles_and_holds_the_quantised_setpoint() -> None:
    """25 -> 35.126 degC with every disturbance on.

    The heater runs at the current limit first (no wind-up), the loop settles (the PI tail decays
    with ~10 s, < 0.1 mK left after 90 s), and over the next minute the readings (every 0.1 s)
    average to the quantised 35.13 degC within 1 mK (the 4 mK to the asked 35.126 stand out; over
    30 seeds the mean was within 0.3 mK) with a standard deviation of 2 mK +- 15 % (30 seeds:
    1.89 to 2.20 mK), while the true mount temperature wanders less than 1 mK (30 seeds: at most
    0.39 mK).
    """
    mount = TecMount(np.random.default_rng(3))
    mount.set_output(True)
    mount.advance(60.0)
    mount.set_setpoint(35.126)
    assert mount.setpoint_c == 35.13
    mount.advance(0.5)
    assert mount.current_a == -mount.current_limit_a
    mount.advance(89.5)
    readings, true_c = [], []
    for _ in range(600):
        mount.advance(0.1)
        readings.append(mount.measured_c)
        true_c.append(mount.temperature_c)
    assert np.mean(readings) == pytest.approx(35.13, abs=0.001)
    assert np.std(readings) == pytest.approx(0.002, rel=0.15)
    assert np.std(true_c) < 0.001


def test_regulated_mount_rejects_a_heat_load() -> None:
    """1 W absorbed by the chip: a transient, then back at the set-point within 1 mK in 60 s."""
    mount = quiet_mount(sensor_noise_k=0.0)
    mount.set_output(True)
    mount.advance(60.0)
    cooling_before_a = mount.current_a
    mount.heat_load_w = 1.0
    mount.advance(60.0)
    assert mount.temperature_c == pytest.approx(25.0, abs=0.001)
    assert mount.current_a > cooling_before_a  # the controller now pumps the load away


def test_world_is_the_same_however_time_is_sliced() -> None:
    whole, sliced = TecMount(np.random.default_rng(9)), TecMount(np.random.default_rng(9))
    for mount in (whole, sliced):
        mount.set_output(True)
    whole.advance(10.0)
    for _ in range(1000):
        sliced.advance(0.00999)
    sliced.advance(10.0 - 1000 * 0.00999)
    assert sliced.measured_c == pytest.approx(whole.measured_c, abs=1e-9)
    assert sliced.temperature_c == pytest.approx(whole.temperature_c, abs=1e-9)
