"""Amonics AEDFA: the amplifier's physics, our driver's bytes, and the driver on the emulator."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pymeasure.test import expected_protocol

from drivers.amonics_aedfa import AEDFA, AmonicsEdfa, DriveStatus
from drivers.errors import (
    ConnectionLost,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
)
from sim_backends.instruments.amonics_aedfa import AedfaEmulator
from sim_backends.world import testbed
from sim_backends.world.edfa import H_J_S, Edfa, Mode, Status
from sim_backends.world.laser import C_M_PER_S
from sim_backends.world.light import Light
from tests.conftest import EmulatorThread

PUMP_HZ = C_M_PER_S / 1556.09e-9
APC = [(b":MODE:SW:CH1?", b"APC"), (b":READ:DRIV:UNIT:APC:CH1?", b"mW")]


# --- the world device ---------------------------------------------------------------------------

def running_edfa(seed_mw: float, mode: Mode) -> Edfa:
    """An amplifier seeded with ``seed_mw`` at 1556 nm, pumps switched on and active."""
    edfa = Edfa()
    edfa.seed = Light.line(PUMP_HZ, seed_mw)
    edfa.set_mode(mode)
    for channel in range(len(edfa.channel_on)):
        edfa.set_channel(channel, True)
    assert edfa.switch_on()
    edfa.advance(edfa.activation_s)
    assert edfa.master is Status.ON
    return edfa


def test_switching_on_takes_the_activation_time_before_any_pump_current() -> None:
    edfa = Edfa(activation_s=1.0)
    edfa.seed = Light.line(PUMP_HZ, 5.0)
    edfa.acc_setpoint_ma[0] = 1000.0
    edfa.set_channel(0, True)
    assert edfa.switch_on()
    edfa.advance(0.9)
    assert (edfa.master, edfa.channel_status(0)) == (Status.BUSY, Status.BUSY)
    assert edfa.pump_current_ma == [0.0, 0.0]
    edfa.advance(0.2)
    assert edfa.master is Status.ON
    assert edfa.pump_current_ma[0] == pytest.approx(0.1 * edfa.pump_slew_ma_per_s)


def test_apc_ramps_at_the_pump_slew_and_then_holds_the_setpoint() -> None:
    edfa = running_edfa(10.0, Mode.APC)
    edfa.apc_setpoint_mw = 3000.0
    # dP/dt = pumps x slew x pump slope x power conversion while the amplifier is saturated
    expected_w_per_s = 2 * edfa.pump_slew_ma_per_s / 1000 * edfa.pump_slope_w_per_a \
        * edfa.power_conversion
    edfa.advance(1.0)
    first_w = edfa.output_power_mw / 1000
    edfa.advance(1.0)
    second_w = edfa.output_power_mw / 1000
    assert second_w - first_w == pytest.approx(expected_w_per_s, rel=0.03)
    assert 0.8 < expected_w_per_s < 1.2  # ~ 1 W/s, never a jump
    edfa.advance(5.0)
    assert edfa.output_power_mw == pytest.approx(3000.0, rel=1e-3)  # ASE is ~0.5 mW of it


def test_output_saturates_at_the_pump_limit_of_3_5_w() -> None:
    edfa = running_edfa(10.0, Mode.ACC)
    edfa.acc_setpoint_ma[:] = edfa.pump_max_current_ma
    edfa.advance(10.0)
    assert edfa.output_power_mw / 1000 == pytest.approx(3.5, rel=0.02)  # 35.4 dBm
    edfa.seed = Light.line(PUMP_HZ, 20.0)  # twice the seed: energy conservation caps the output
    edfa.advance(0.1)
    assert edfa.output_power_mw / 1000 == pytest.approx(3.5, rel=0.02)


def test_weak_seed_sees_the_small_signal_gain_and_apc_runs_out_of_pump() -> None:
    edfa = running_edfa(0.1, Mode.APC)  # -10 dBm: the weakest seed the amplifier accepts
    edfa.apc_setpoint_mw = 3500.0
    edfa.advance(10.0)
    assert edfa.pump_current_ma == list(edfa.pump_max_current_ma)
    gain_db = 10 * math.log10(edfa.amplified().line_power_mw[0] / 0.1)
    assert gain_db == pytest.approx(edfa.small_signal_gain_db, abs=1.0)  # barely saturated
    assert edfa.output_power_mw < 1000.0


def test_ase_fills_the_erbium_band_with_the_spontaneous_emission_psd() -> None:
    edfa = running_edfa(10.0, Mode.APC)
    edfa.apc_setpoint_mw = 3000.0
    edfa.advance(10.0)
    light = edfa.amplified()
    wavelength_nm = C_M_PER_S / light.background_frequency_hz * 1e9
    in_band = (wavelength_nm > 1535) & (wavelength_nm < 1560)
    gain = light.line_power_mw[0] / 10.0
    expected = 2 * edfa.spontaneous_emission_factor * H_J_S \
        * light.background_frequency_hz[in_band] * (gain - 1) * 1e3
    assert light.background_mw_per_hz[in_band] == pytest.approx(expected, rel=0.01)
    outside = (wavelength_nm < 1524) | (wavelength_nm > 1571)
    assert light.background_mw_per_hz[outside].max() < 1e-3 * expected.min()
    assert 0.1 < light.total_power_mw - light.line_power_mw.sum() < 2.0  # mW of ASE at 3 W


def test_loss_of_seed_cuts_the_pumps_within_milliseconds_and_latches() -> None:
    edfa = running_edfa(10.0, Mode.APC)
    edfa.apc_setpoint_mw = 2000.0
    edfa.advance(5.0)
    edfa.seed = Light.line(PUMP_HZ, 0.05)  # -13 dBm: below the -10 dBm threshold, not dark
    edfa.advance(0.005)
    assert edfa.output_power_mw < 1.0  # from 2 W, within 5 ms (gain response 1 ms)
    assert edfa.pump_current_ma == [0.0, 0.0]
    assert (edfa.master, edfa.channel_status(0), edfa.seed_alarm_latched) == \
        (Status.OFF, Status.LOCK, True)
    edfa.seed = Light.line(PUMP_HZ, 10.0)
    edfa.advance(1.0)
    assert edfa.master is Status.OFF and edfa.output_power_mw < 1.0  # stays off
    assert edfa.seed_alarm_latched
    assert edfa.switch_on()
    assert not edfa.seed_alarm_latched


def test_open_interlock_trips_the_pumps_until_closed_and_unlocked() -> None:
    edfa = running_edfa(10.0, Mode.APC)
    edfa.apc_setpoint_mw = 1000.0
    edfa.advance(3.0)
    edfa.interlock_closed = False
    edfa.advance(0.005)
    assert edfa.output_power_mw < 1.0 and edfa.interlock_locked
    assert not edfa.switch_on() and not edfa.unlock_interlock()
    edfa.interlock_closed = True
    edfa.advance(0.1)
    assert edfa.interlock_locked and not edfa.switch_on()  # latched until unlocked
    assert edfa.unlock_interlock() and edfa.switch_on()


def test_box_temperature_drifts_with_pump_current() -> None:
    edfa = running_edfa(10.0, Mode.ACC)
    edfa.acc_setpoint_ma[:] = edfa.pump_max_current_ma
    edfa.advance(10 * edfa.box_time_constant_s)
    rise_c = edfa.box_temperature_c - edfa.ambient_c
    assert rise_c == pytest.approx(edfa.box_heating_c_per_a * 10.0, rel=0.01)  # 2 x 5 A
    assert 1.0 < rise_c < 10.0  # a slight drift
    edfa.switch_off()
    edfa.advance(10 * edfa.box_time_constant_s)
    assert edfa.box_temperature_c == pytest.approx(edfa.ambient_c, abs=0.01)


# --- our driver's bytes -------------------------------------------------------------------------

@pytest.fixture
def unpaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """No 50 ms gaps: a protocol test has no instrument to overrun (pacing has its own tests)."""
    monkeypatch.setattr(AEDFA, "min_interval_s", 0.0)
    monkeypatch.setattr(AEDFA, "margin_s", 0.0)


@pytest.mark.usefixtures("unpaced")
def test_connect_switches_an_idle_unit_to_apc() -> None:
    pairs = [(b":MODE:SW:CH1?", b"ACC"), (b":DRIV:MCTRL?", b"0"), (b":MODE:SW:CH1 APC", None),
             (b":MODE:SW:CH1?", b"APC"), (b":READ:DRIV:UNIT:APC:CH1?", b"mW")]
    with expected_protocol(AmonicsEdfa, pairs, name="edfa") as amp:
        assert amp.mode == "APC"


@pytest.mark.usefixtures("unpaced")
def test_a_model_with_the_apc_setpoint_in_w_gets_w() -> None:
    pairs = [(b":MODE:SW:CH1?", b"APC"), (b":READ:DRIV:UNIT:APC:CH1?", b"W"),
             (b":DRIV:APC:CUR:CH1 2.25", None), (b":DRIV:APC:CUR:CH1?", b"2.250000e+00")]
    with expected_protocol(AmonicsEdfa, pairs, name="edfa") as amp:
        amp.output_w = 2.25


@pytest.mark.usefixtures("unpaced")
def test_output_setpoint_in_w_goes_out_in_mw_and_is_read_back() -> None:
    pairs = [*APC, (b":DRIV:APC:CUR:CH1 1500", None), (b":DRIV:APC:CUR:CH1?", b"1.500000e+03"),
             (b":DRIV:APC:CUR:CH1?", b"1.500000e+03")]
    with expected_protocol(AmonicsEdfa, pairs, name="edfa") as amp:
        amp.output_w = 1.5
        assert amp.output_w == 1.5


@pytest.mark.usefixtures("unpaced")
def test_setpoint_the_unit_ignores_raises_naming_instrument_and_command() -> None:
    pairs = [*APC, (b":DRIV:APC:CUR:CH1 5000", None), (b":DRIV:APC:CUR:CH1?", b"1.500000e+03"),
             (b":READ:DRIV:MAX:APC:CH1?", b"3.500000e+03")]
    with (expected_protocol(AmonicsEdfa, pairs, name="edfa") as amp,
          pytest.raises(InstrumentReportedError) as caught):
        amp.output_w = 5.0
    assert (caught.value.instrument, caught.value.command) == ("edfa", ":DRIV:APC:CUR:CH1")
    assert "3500.0 mW" in str(caught.value)


@pytest.mark.usefixtures("unpaced")
def test_enable_turns_on_channel_then_master_and_checks_disable_reverses() -> None:
    pairs = [*APC, (b":DRIV:APC:STAT:CH1 1", None), (b":DRIV:MCTRL 1", None),
             (b":DRIV:MCTRL?", b"2"), (b":DRIV:MCTRL?", b"1"),
             (b":DRIV:MCTRL 0", None), (b":DRIV:APC:STAT:CH1 0", None)]
    with expected_protocol(AmonicsEdfa, pairs, name="edfa") as amp:
        amp.enabled = True  # BUSY: switching on
        assert amp.enabled is True
        amp.enabled = False


@pytest.mark.usefixtures("unpaced")
@pytest.mark.parametrize(("diagnosis", "reason"), [
    ([(b":DRIV:INTERLOCK?", b"1")], "interlock locked"),
    ([(b":DRIV:INTERLOCK?", b"0"), (b":SENS:THRES:ALARM:POW:IN:LOS:CH1?", b"1"),
      (b":SENS:POW:IN:CH1?", b"2.000000e-02"), (b":THRES:POW:IN:LEV:SET1?", b"-1.000000e+01")],
     "no seed: 0.02 mW at the input, below -10.0 dBm"),
])
def test_refused_switch_on_raises_with_the_lockout(diagnosis: list[tuple[bytes, bytes]],
                                                   reason: str) -> None:
    pairs = [*APC, (b":DRIV:APC:STAT:CH1 1", None), (b":DRIV:MCTRL 1", None),
             (b":DRIV:MCTRL?", b"0"), *diagnosis]
    with (expected_protocol(AmonicsEdfa, pairs, name="edfa") as amp,
          pytest.raises(InstrumentReportedError, match=reason) as caught):
        amp.enabled = True
    assert caught.value.command == ":DRIV:MCTRL"


@pytest.mark.usefixtures("unpaced")
def test_readings_and_their_units() -> None:
    pairs = [*APC, (b":SENS:POW:OUT:CH1?", b"3.060000e+03"),
             (b":SENS:POW:IN:CH1?", b"5.000000e+00"),
             (b":SENS:THRES:ALARM:POW:IN:LOS:CH1?", b"0"), (b":DRIV:INTERLOCK?", b"0")]
    with expected_protocol(AmonicsEdfa, pairs, name="edfa") as amp:
        assert amp.measured_output_w == pytest.approx(3.06)
        assert amp.input_mw == 5.0
        assert amp.seed_ok is True and amp.interlock_ok is True


def test_driver_waits_50_ms_between_commands() -> None:
    pairs = [*APC, *[(b":SENS:POW:IN:CH1?", b"5.000000e+00")] * 5]
    with expected_protocol(AmonicsEdfa, pairs, name="edfa") as amp:
        start = time.monotonic()
        for _ in range(5):
            amp.input_mw  # noqa: B018 - the read is the point
        elapsed_s = time.monotonic() - start
    assert elapsed_s >= 5 * 0.05  # the first waits for the gap after the connect query, too


@pytest.mark.usefixtures("unpaced")
def test_safe_state_in_acc_mode_disables_both_pumps() -> None:
    pairs = [(b":MODE:SW:CH1?", b"ACC"), (b":DRIV:MCTRL?", b"1"),  # running: left in ACC
             (b":READ:DRIV:UNIT:APC:CH1?", b"mW"),
             (b":DRIV:MCTRL 0", None), (b":DRIV:APC:CUR:CH1 0", None),
             (b":DRIV:ACC:STAT:CH1 0", None), (b":DRIV:ACC:STAT:CH2 0", None),
             (b":DRIV:MCTRL?", b"0")]
    with expected_protocol(AmonicsEdfa, pairs, name="edfa") as amp:
        with pytest.raises(InstrumentReportedError, match="ACC mode"):
            amp.output_w = 1.0  # nothing reaches the wire
        amp.safe_state()


# --- the emulator, and the driver against it over real sockets ---------------------------------

@dataclass
class EdfaBench(testbed.Testbed):
    """The testbed with the amplifier seeded by the pump laser (what the lead integrates)."""

    edfa: Edfa = field(default_factory=lambda: Edfa(activation_s=0.1, pump_slew_ma_per_s=2600.0))

    def _advance(self, dt_s: float) -> None:
        self.edfa.seed = Light.line(self.pump.frequency_hz, self.pump.emitted_power_mw)
        self.edfa.advance(dt_s)


@pytest.fixture
def bench() -> EdfaBench:
    world = EdfaBench()
    world.pump.power_setpoint_mw = 10.0
    world.pump.diode_on = True
    world.edfa.mode = Mode.APC  # as the last session left it (it powers up in ACC)
    return world


@pytest.fixture
def aedfa(bench: EdfaBench) -> AedfaEmulator:
    return AedfaEmulator(bench.edfa, bench.sync)


@pytest.fixture
def emulator(aedfa: AedfaEmulator) -> Iterator[EmulatorThread]:
    thread = EmulatorThread(aedfa)
    yield thread
    thread.close()


@pytest.fixture
def amp(emulator: EmulatorThread) -> Iterator[AmonicsEdfa]:
    driver = AmonicsEdfa(emulator.resource, name="edfa", timeout_s=0.4)
    yield driver
    driver.close()


def exchange(port: int, *messages: bytes, gap_s: float = 0.1) -> list[bytes | None]:
    """Send LF-ended commands ``gap_s`` apart; the reply to each query, or None if silent."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        replies: list[bytes | None] = []
        for message in messages:
            sock.sendall(message + b"\n")
            if message.endswith(b"?"):
                sock.settimeout(0.15)
                try:
                    replies.append(sock.recv(4096))
                except TimeoutError:
                    replies.append(None)
            time.sleep(gap_s)
        return replies


def test_emulator_speaks_the_aedfa_format_and_ignores_what_it_cannot_do(
        emulator: EmulatorThread) -> None:
    replies = exchange(emulator.port, b":MODE:SW:CH1 APC", b":DRIV:APC:CUR:CH1 1234.5",
                       b":DRIV:APC:CUR:CH1?", b":SENS:POW:IN:CH1?", b":DRIV:MCTRL?",
                       b":READ:DRIV:MAX:ACC:CH2?", b":READ:DRIV:UNIT:APC:CH1?",
                       b":DRIV:APC:CUR:CH1 9000", b":DRIV:APC:CUR:CH1 lots", b":BOGUS:CMD?",
                       b":SENS:CUR:CH3?", b":DRIV:APC:CUR:CH1?")
    assert replies == [b"1.234500e+03\r\n", b"1.000000e+01\r\n", b"0\r\n", b"5.000000e+03\r\n",
                       b"mW\r\n", None, None, b"1.234500e+03\r\n"]


def test_emulator_loses_a_command_sent_within_50_ms_of_the_last(emulator: EmulatorThread) -> None:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=0.3) as sock:
        sock.sendall(b":MODE:SW:CH1 APC\n")
        time.sleep(0.1)
        sock.sendall(b":DRIV:APC:CUR:CH1 1000\n:DRIV:APC:CUR:CH1 2000\n")  # back to back
        time.sleep(0.1)
        sock.sendall(b":DRIV:APC:CUR:CH1?\n:SENS:POW:IN:CH1?\n")
        assert sock.recv(4096) == b"1.000000e+03\r\n"  # the 2000 was lost
        with pytest.raises(TimeoutError):
            sock.recv(4096)  # and so was the second query


def test_driver_paces_itself_so_no_command_is_lost(amp: AmonicsEdfa) -> None:
    start = time.monotonic()
    for value_w in (0.5, 1.0, 1.5):
        amp.output_w = value_w  # each set is read back: a lost one would raise
    readings = [amp.input_mw for _ in range(4)]
    elapsed_s = time.monotonic() - start
    assert readings == [10.0] * 4
    assert elapsed_s >= 9 * 0.05  # ten commands


def test_driver_runs_the_amplifier_ramps_holds_and_goes_safe(
        amp: AmonicsEdfa, bench: EdfaBench) -> None:
    assert (amp.seed_ok, amp.interlock_ok, amp.enabled) == (True, True, False)
    with pytest.raises(InstrumentReportedError, match="not taken"):
        amp.output_w = 4.0  # above the unit's 3.5 W: ignored by the unit
    amp.output_w = 2.0
    amp.enabled = True
    time.sleep(bench.edfa.activation_s + 0.2)
    readings = []
    for _ in range(3):
        before = time.monotonic()
        power_w = amp.measured_output_w
        readings.append((before, time.monotonic(), power_w))
    (start, started, first_w), _, (ended, end, last_w) = readings
    rate_w_per_s = 2 * bench.edfa.pump_slew_ma_per_s / 1000 * bench.edfa.pump_slope_w_per_a \
        * bench.edfa.power_conversion
    assert 0.1 < first_w < last_w < 1.9  # ramping, not jumping
    assert (last_w - first_w) / (end - start) <= rate_w_per_s * 1.05
    assert (last_w - first_w) / (ended - started) >= rate_w_per_s * 0.95
    time.sleep((2.0 - last_w) / rate_w_per_s)
    assert amp.measured_output_w == pytest.approx(2.0, rel=1e-3)
    assert amp.enabled is True
    amp.safe_state()
    assert amp.measured_output_w < 1e-3
    assert (amp.enabled, amp.output_w) == (False, 0.0)
    assert bench.edfa.channel_on == [False, False]


def test_loss_of_seed_shuts_the_pumps_and_latches_until_reenabled(
        amp: AmonicsEdfa, bench: EdfaBench) -> None:
    amp.output_w = 0.3
    amp.enabled = True
    time.sleep(bench.edfa.activation_s + 0.3)
    assert amp.measured_output_w == pytest.approx(0.3, rel=1e-3)
    bench.pump.diode_on = False  # the seed goes dark
    assert amp.measured_output_w == 0.0
    assert (amp.seed_ok, amp.enabled) == (False, False)
    assert amp.device.apc_status is DriveStatus.LOCK
    assert amp.device.seed_lost_latched is True
    bench.pump.diode_on = True  # seed back: the pumps stay off, the latch holds
    assert amp.seed_ok is True
    assert (amp.enabled, amp.device.seed_lost_latched) == (False, True)
    assert amp.measured_output_w < 1e-4  # the 10 mW seed through unpumped erbium
    amp.enabled = True
    assert amp.device.seed_lost_latched is False
    time.sleep(bench.edfa.activation_s + 0.3)
    assert amp.measured_output_w == pytest.approx(0.3, rel=1e-3)


def test_interlock_trip_stops_the_pumps_and_needs_a_reset(
        amp: AmonicsEdfa, aedfa: AedfaEmulator) -> None:
    amp.output_w = 0.5
    amp.enabled = True
    aedfa.open_interlock()  # somebody opened the door
    assert (amp.interlock_ok, amp.enabled) == (False, False)
    assert amp.measured_output_w < 1e-4
    with pytest.raises(InstrumentReportedError, match="interlock locked") as caught:
        amp.enabled = True
    assert (caught.value.instrument, caught.value.command) == ("edfa", ":DRIV:MCTRL")
    with pytest.raises(InstrumentReportedError, match="loop open"):
        amp.reset_interlock()
    aedfa.open_interlock(False)
    assert amp.interlock_ok is False  # latched
    amp.reset_interlock()
    amp.enabled = True
    assert amp.enabled is True


def test_serial_resource_works_with_the_serial_settings(
        emulator: EmulatorThread, bench: EdfaBench) -> None:
    bench.edfa.mode = Mode.ACC  # as it powers up
    amp = AmonicsEdfa(f"ASRLsocket://127.0.0.1:{emulator.port}::INSTR", name="edfa")
    try:
        connection = amp.device.adapter.connection
        assert (connection.baud_rate, connection.data_bits) == (19200, 8)
        assert (connection.parity, connection.stop_bits) == (0, 10)  # none, one
        assert amp.mode == "APC" and bench.edfa.mode is Mode.APC  # taken over from ACC
        amp.output_w = 0.25
        assert bench.edfa.apc_setpoint_mw == 250.0
        assert amp.input_mw == 10.0
    finally:
        amp.close()


def test_slow_replies_arrive_late_but_right(amp: AmonicsEdfa, aedfa: AedfaEmulator) -> None:
    aedfa.faults.reply_delay_s = 0.2
    start = time.monotonic()
    assert amp.input_mw == 10.0
    assert time.monotonic() - start >= 0.2


@pytest.mark.parametrize(("fault", "error", "detail"), [
    ("stall", InstrumentTimeout, "no reply"),
    ("garbage_reply", InstrumentError, "unreadable reply"),
    ("drop_connection", (InstrumentTimeout, ConnectionLost), None),
])
def test_connection_faults_raise_typed_errors_naming_instrument_and_command(
        amp: AmonicsEdfa, aedfa: AedfaEmulator, fault: str,
        error: type[InstrumentError] | tuple[type[InstrumentError], ...],
        detail: str | None) -> None:
    setattr(aedfa.faults, fault, True)
    with pytest.raises(error, match=detail) as caught:
        amp.measured_output_w  # noqa: B018 - the read is the point
    assert (caught.value.instrument, caught.value.command) == ("edfa", ":SENS:POW:OUT:CH1?")
