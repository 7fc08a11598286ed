"""Thorlabs MBX: the modulator and its bias loop; our driver's bytes; pymeasure's and ours on the
emulator, over a TCP socket and over a serial-over-socket (terminal server) resource."""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from pymeasure.instruments.thorlabs.thorlabsmbxseries import (
    MzmMode,
    RgbPowerMode,
    ThorlabsMBXSeries,
    VoaMode,
)
from pymeasure.test import expected_protocol

from drivers.errors import (
    ConnectionLost,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
)
from drivers.thorlabs_mbx import MBXBias
from sim_backends.instruments.thorlabs_mbx import MBXEmulator
from sim_backends.world.light import Light
from sim_backends.world.modulator import (
    BiasMode,
    Calibration,
    MachZehnderModulator,
    MbxBiasController,
)
from tests.conftest import EmulatorThread

F_1550_HZ = 193.414e12
IL = 10 ** (-4.0 / 10)  # the modulator's default insertion loss


# --- the world: modulator and bias loop ------------------------------------------------------

def make_controller(seed: int = 5, drift_v_per_sqrt_s: float = 2e-3,
                    input_mw: float = 1.0) -> MbxBiasController:
    rng = np.random.default_rng(seed)
    modulator = MachZehnderModulator(rng, drift_v_per_sqrt_s=drift_v_per_sqrt_s,
                                     input_light=Light.line(F_1550_HZ, input_mw))
    return MbxBiasController(modulator, rng)


def relative_transmission(controller: MbxBiasController) -> float:
    return controller.modulator.mean_transmission / IL


def test_transmission_has_the_insertion_loss_extinction_ratio_and_period() -> None:
    modulator = MachZehnderModulator(np.random.default_rng(0), v_pi_v=4.0, peak_bias_v=1.0)
    bias_v = np.array([1.0, 5.0, 3.0, 9.0, -7.0])
    peak, null, quad, peak_again, peak_below = modulator.transmission(bias_v)
    assert peak == pytest.approx(IL, rel=1e-12)
    assert 10 * math.log10(peak / null) == pytest.approx(25.0, abs=1e-9)
    assert quad == pytest.approx((peak + null) / 2, rel=1e-12)
    assert peak_again == pytest.approx(peak) and peak_below == pytest.approx(peak)


def test_bias_drift_is_a_random_walk_of_the_stated_rate() -> None:
    steps = [MachZehnderModulator(np.random.default_rng(seed), drift_v_per_sqrt_s=0.01)
             for seed in range(400)]
    for modulator in steps:
        modulator.advance(100.0)
    displacement = np.array([m.peak_bias_v - 1.3 for m in steps])
    # std of 400 normal draws is within +-15 % of sigma (0.1 V) with > 99 % probability
    assert float(np.std(displacement)) == pytest.approx(0.01 * math.sqrt(100.0), rel=0.15)


def test_calibration_sweep_finds_v_pi_and_the_peak_from_tap_power_alone() -> None:
    controller = make_controller()
    controller.set_mode(BiasMode.HOLD_QUAD_POS)
    assert controller.calibrating
    controller.advance(controller.calibration_s + 0.05)
    calibration = controller.calibration
    assert calibration is not None and not controller.calibrating
    assert calibration.v_pi_v == pytest.approx(4.5, rel=0.01)
    assert calibration.peak_bias_v == pytest.approx(controller.modulator.peak_bias_v, abs=0.05)
    assert calibration.peak_mw == pytest.approx(IL, rel=0.01)
    assert relative_transmission(controller) == pytest.approx(0.5, abs=0.02)  # held, no dither
    assert controller.modulator.dither_v == 0.0


def test_calibration_fit_recovers_a_clean_curve_exactly() -> None:
    bias_v = np.linspace(-10, 10, 201)
    power_mw = 0.2 + 0.15 * np.cos(np.pi * (bias_v - 0.7) / 3.6)
    fit = Calibration.fit(bias_v, power_mw)
    assert (fit.v_pi_v, fit.peak_bias_v) == (pytest.approx(3.6), pytest.approx(0.7, abs=1e-6))
    assert (fit.peak_mw, fit.null_mw) == (pytest.approx(0.35), pytest.approx(0.05))
    assert fit.bias_for_phase(-math.pi / 2) == pytest.approx(0.7 - 1.8)


@pytest.mark.parametrize(("mode", "expected"), [
    (BiasMode.AUTO_PEAK, 1.0), (BiasMode.AUTO_NULL, 10 ** -2.5),
    (BiasMode.AUTO_QUAD_POS, 0.5), (BiasMode.AUTO_QUAD_NEG, 0.5),
    (BiasMode.AUTO_POWER_POS, 0.3), (BiasMode.AUTO_POWER_NEG, 0.3)])
def test_each_lock_mode_settles_on_its_point_and_slope(mode: BiasMode, expected: float) -> None:
    controller = make_controller()
    controller.power_ratio = 0.3
    controller.set_mode(mode)
    controller.advance(controller.calibration_s + 1.0)
    assert controller.locked
    assert relative_transmission(controller) == pytest.approx(expected, abs=0.01, rel=0.05)
    modulator = controller.modulator
    slope = float(np.diff(modulator.transmission(modulator.bias_v + np.array([-0.05, 0.05])))[0])
    if mode.name.endswith("POS"):
        assert slope > 0
    elif mode.name.endswith("NEG"):
        assert slope < 0


def test_quadrature_lock_holds_half_transmission_while_the_bias_point_drifts() -> None:
    controller = make_controller(drift_v_per_sqrt_s=0.05)  # ~0.5 V in 2 minutes: a bad day
    controller.set_mode(BiasMode.AUTO_QUAD_POS)
    controller.advance(controller.calibration_s + 0.5)
    start_bias_v = controller.modulator.bias_v
    locked, open_loop, peak_bias_v = [], [], []
    for _ in range(240):
        controller.advance(0.5)
        modulator = controller.modulator
        locked.append(relative_transmission(controller) - 0.5)
        open_loop.append(float(modulator.transmission(np.array([start_bias_v]))[0]) / IL - 0.5)
        peak_bias_v.append(modulator.peak_bias_v)
    assert max(peak_bias_v) - min(peak_bias_v) > 0.3  # the drift was large
    # tracking error (drift per 0.1 s loop time) and tap noise give ~0.8 % rms: 5 sigma is 4 %
    assert float(np.std(locked)) < 0.015
    assert max(map(abs, locked)) < 0.04
    assert max(map(abs, open_loop)) > 3 * max(map(abs, locked))  # a fixed bias fares far worse
    assert controller.locked


def test_without_light_the_loop_holds_its_bias_instead_of_wandering() -> None:
    controller = make_controller()
    controller.set_mode(BiasMode.AUTO_QUAD_POS)
    controller.advance(controller.calibration_s + 0.5)
    bias_v = controller.modulator.bias_v
    controller.modulator.input_light = Light.dark()
    controller.advance(5.0)
    assert not controller.locked
    assert controller.modulator.bias_v == bias_v


def test_near_a_rail_the_bias_jumps_a_period_and_relocks() -> None:
    controller = make_controller()
    controller.set_mode(BiasMode.AUTO_PEAK)
    controller.advance(controller.calibration_s + 0.5)
    assert controller.calibration is not None
    v_pi = controller.calibration.v_pi_v
    controller.modulator.peak_bias_v += 2 * v_pi * math.ceil(10 / (2 * v_pi))  # peak past +10 V
    controller.advance(10.0)
    assert abs(controller.modulator.bias_v) <= controller.bias_limit_v
    assert relative_transmission(controller) == pytest.approx(1.0, abs=0.01)


def test_voa_settles_to_attenuation_or_output_power() -> None:
    controller = make_controller()
    controller.set_mode(BiasMode.MANUAL)
    voa = controller.voa
    voa.enabled, voa.attenuation_setpoint_db = True, 6.0
    controller.advance(1.0)
    assert voa.attenuation_db == pytest.approx(6.0, abs=1e-3)
    voa.constant_power, voa.power_setpoint_mw = True, 0.01
    controller.advance(1.0)
    assert controller.output_light.total_power_mw == pytest.approx(0.01, rel=1e-3)


# --- the driver's bytes ----------------------------------------------------------------------

def test_bias_v_holds_in_manual_and_reads_back() -> None:
    pairs = [(b"MZM:HOLD:VOLTAGE: -1500", None), (b"MZM:MODE: 7", None),
             (b"MZM:HOLD:VOLTAGE?", b"-1500"), (b"MZM:HOLD:VOLTAGE?", b"-1500"),
             (b"MZM:VOLTAGE?", b"-1.500"), (b"MZM:TAP:MW?", b"0.066920")]
    with expected_protocol(MBXBias, pairs, name="bias") as bias:
        bias.bias_v = -1.5
        assert bias.bias_v == -1.5
        assert bias.measured_bias_v == -1.5
        assert bias.tap_power_mw == pytest.approx(0.06692)


def test_a_bias_outside_the_output_range_is_refused_before_sending() -> None:
    with (expected_protocol(MBXBias, [], name="bias") as bias,
          pytest.raises(InstrumentError, match="outside the MBX's bias range") as caught):
        bias.bias_v = 12.0
    assert caught.value.command == "MZM:HOLD:VOLTAGE"


def test_lock_mode_and_status_protocol() -> None:
    pairs = [(b"MZM:MODE: 3", None), (b"MZM:MODE?", b"3"), (b"MZM:CALIBRATING?", b"1"),
             (b"MZM:SETPOINT?", b"0"), (b"MZM:MODE?", b"3")]
    with expected_protocol(MBXBias, pairs, name="bias") as bias:
        bias.lock_mode = MzmMode.AUTOQUADPOS
        assert bias.calibrating is True
        assert bias.locked is False
        assert bias.lock_mode is MzmMode.AUTOQUADPOS


def test_a_refused_setting_raises_and_its_pending_reply_is_consumed() -> None:
    pairs = [(b"MZM:HOLD:VOLTAGE: 2000", None), (b"MZM:MODE: 7", None),
             (b"MZM:HOLD:VOLTAGE?", b"Err: Execution error"), (None, b"0"),
             (b"MZM:VOLTAGE?", b"0.000")]
    with expected_protocol(MBXBias, pairs, name="bias") as bias:
        with pytest.raises(InstrumentReportedError, match="Execution error") as caught:
            bias.bias_v = 2.0
        assert (caught.value.instrument, caught.value.command) == ("bias", "MZM:HOLD:VOLTAGE")
        assert bias.measured_bias_v == 0.0  # in step with the replies again


def test_an_error_reply_to_a_query_raises() -> None:
    pairs = [(b"MZM:TAP:MW?", b"Err: Execution error")]
    with (expected_protocol(MBXBias, pairs, name="bias") as bias,
          pytest.raises(InstrumentReportedError) as caught):
        bias.tap_power_mw  # noqa: B018 - the read is the point
    assert caught.value.command == "MZM:TAP:MW?"


# --- on the emulator -------------------------------------------------------------------------

@dataclass
class Bench:
    """The bias loop and a world clock the test moves by hand (the Testbed's sync, in small)."""

    controller: MbxBiasController
    now_s: float = 0.0
    synced_s: float = 0.0

    def sync(self) -> float:
        self.controller.advance(self.now_s - self.synced_s)
        self.synced_s = self.now_s
        return self.now_s

    def wait(self, seconds: float) -> None:
        self.now_s += seconds
        self.sync()


@pytest.fixture
def bench() -> Bench:
    return Bench(make_controller())


@pytest.fixture
def emulator(bench: Bench) -> MBXEmulator:
    return MBXEmulator(bench.controller, bench.sync)


@pytest.fixture
def served(emulator: MBXEmulator) -> Iterator[EmulatorThread]:
    thread = EmulatorThread(emulator)
    yield thread
    thread.close()


@pytest.fixture
def bias(served: EmulatorThread) -> Iterator[MBXBias]:
    driver = MBXBias(served.resource, name="bias", timeout_s=0.5)
    yield driver
    driver.close()


def test_pymeasure_mbx_unmodified_over_a_terminal_server(served: EmulatorThread,
                                                         bench: Bench) -> None:
    mbx = ThorlabsMBXSeries(f"ASRLsocket://127.0.0.1:{served.port}::INSTR", visa_library="@py")
    try:
        assert mbx.id.startswith("Thorlabs,MBX,")
        mbx.mzm.voltage_setpoint = 2.5
        mbx.mzm.mode = MzmMode.MANUAL
        assert (mbx.mzm.mode, mbx.mzm.voltage_setpoint, mbx.mzm.voltage) == (
            MzmMode.MANUAL, 2.5, 2.5)
        assert mbx.mzm.power == pytest.approx(relative_transmission(bench.controller) * IL,
                                              abs=1e-4)
        mbx.mzm.ratio_setpoint = 40
        assert mbx.mzm.ratio_setpoint == 40
        mbx.mzm.calibrate()
        assert mbx.mzm.is_calibrating is True
        bench.wait(3.0)
        assert (mbx.mzm.is_calibrating, mbx.mzm.is_stable) == (False, True)
        mbx.voa.enabled = True
        mbx.voa.mode = VoaMode.ATTENUATION
        mbx.voa.attenuation_setpoint = 5
        # settings draw no reply: a query makes sure the MBX has them before the clock moves
        assert (mbx.voa.enabled, mbx.voa.mode, mbx.voa.attenuation_setpoint) == (
            True, VoaMode.ATTENUATION, 5)
        bench.wait(1.0)
        assert mbx.voa.attenuation == pytest.approx(5, abs=0.01)
        assert (mbx.voa.is_stable, mbx.voa.attenuation_error) == (True, 0)
        mbx.voa.mode = VoaMode.POWER
        mbx.voa.power_setpoint = 0.05
        assert mbx.voa.power_setpoint == 0.05
        bench.wait(1.0)
        assert mbx.voa.power == pytest.approx(0.05, rel=1e-3)
        mbx.rgb.mode = RgbPowerMode.WHITE
        mbx.rgb.rgb = (10, 20, 30)
        mbx.rgb.white = 40
        assert (mbx.rgb.mode, mbx.rgb.rgb, mbx.rgb.white) == (RgbPowerMode.WHITE, (10, 20, 30), 40)
    finally:
        mbx.adapter.close()


def test_driver_locks_at_quadrature_and_tracks_a_drifting_modulator(bias: MBXBias,
                                                                  bench: Bench) -> None:
    bench.controller.modulator.drift_v_per_sqrt_s = 0.05
    bias.lock_mode = MzmMode.AUTOQUADNEG
    assert bias.calibrating and not bias.locked
    bench.wait(3.0)
    assert bias.locked and not bias.calibrating
    peak_mw = bench.controller.calibration.peak_mw if bench.controller.calibration else math.nan
    for _ in range(30):  # a minute; ~1 % rms error (see the world test): 4 % is 5 sigma
        bench.wait(2.0)
        assert bias.tap_power_mw / peak_mw == pytest.approx(0.5, abs=0.04)
    assert bias.lock_mode is MzmMode.AUTOQUADNEG
    bias.bias_v = 1.25  # leaves the lock for MANUAL
    assert (bias.lock_mode, bias.bias_v, bias.measured_bias_v) == (MzmMode.MANUAL, 1.25, 1.25)


def raw_exchange(port: int, replies: int, *messages: bytes) -> list[bytes]:
    """Send CR-terminated messages; return the ``replies`` CR-terminated replies they draw."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"".join(message + b"\r" for message in messages))
        received = b""
        while received.count(b"\r") < replies:
            received += sock.recv(4096)
        return [reply + b"\r" for reply in received.split(b"\r")[:-1]]


def test_emulator_answers_errors_inline(served: EmulatorThread) -> None:
    replies = raw_exchange(served.port, 8, b"MZM:BOGUS?", b"MZM:MODE: 12", b"MZM:MODE: three",
                           b"MZM:HOLD:VOLTAGE: 1.5", b"VOA:ATTEN: 0.5", b"SYST:ERR?",
                           b"MZM:MODE 3", b"MZM:VOLTAGE: 1")
    assert replies == [b"Err: Undefined header\r", b"Err: Data out of range\r",
                       b"Err: Data type error\r", b"Err: Data type error\r",
                       b"Err: Data out of range\r", b"Err: Undefined header\r",
                       b"Err: Undefined header\r", b"Err: Undefined header\r"]


def test_short_and_long_forms_and_acknowledged_settings(served: EmulatorThread) -> None:
    replies = raw_exchange(served.port, 6, b"mzm:hold:volt: 750", b"MZM:HOLD:VOLTAGE?",
                           b"VOA:MODE: 1", b"VOA:SET?", b"MZM:RESET", b"MZM:CAL?",
                           b"MZM:HOLD:VOLTA?")
    assert replies[:3] == [b"750\r", b"1\r", b"0\r"]  # the hold setting itself was silent
    assert replies[3:] == [b"1\r", b"1\r", b"Err: Undefined header\r"]


def test_injected_error_on_a_setting_raises_and_keeps_the_link_in_step(
        bias: MBXBias, emulator: MBXEmulator) -> None:
    emulator.inject_error()
    with pytest.raises(InstrumentReportedError, match="Execution error") as caught:
        bias.bias_v = 0.5
    assert caught.value.command == "MZM:HOLD:VOLTAGE"
    assert bias.bias_v == 0.0  # refused; the next reply is this query's own
    bias.bias_v = 0.5
    assert bias.measured_bias_v == 0.5


def test_an_error_in_reply_to_the_read_back_itself_costs_one_timeout(
        bias: MBXBias, emulator: MBXEmulator) -> None:
    emulator.inject_error(after=2)  # the hold voltage and mode pass, the read-back query fails
    with pytest.raises(InstrumentReportedError, match="Execution error"):
        bias.bias_v = 0.25
    assert bias.bias_v == 0.25  # the setting took; nothing stale is left in the line


def test_slow_reply_is_awaited(bias: MBXBias, emulator: MBXEmulator) -> None:
    emulator.faults.reply_delay_s = 0.2
    assert bias.measured_bias_v == 0.0


@pytest.mark.parametrize("fault", ["stall", "reply_delay_s"])
def test_a_hung_or_too_slow_controller_is_a_timeout(bias: MBXBias, emulator: MBXEmulator,
                                                    fault: str) -> None:
    setattr(emulator.faults, fault, True if fault == "stall" else 0.8)  # timeout is 0.5 s
    with pytest.raises(InstrumentTimeout) as caught:
        bias.tap_power_mw  # noqa: B018
    assert (caught.value.instrument, caught.value.command) == ("bias", "MZM:TAP:MW?")


def test_garbage_reply_is_an_unreadable_reply(bias: MBXBias, emulator: MBXEmulator) -> None:
    emulator.faults.garbage_reply = True
    with pytest.raises(InstrumentError, match="unreadable reply") as caught:
        bias.measured_bias_v  # noqa: B018
    assert caught.value.command == "MZM:VOLTAGE?"


def test_dropped_connection_is_typed(bias: MBXBias, emulator: MBXEmulator) -> None:
    emulator.faults.drop_connection = True
    # pyvisa-py reports a socket closed by the peer as a timeout on the next read
    with pytest.raises((ConnectionLost, InstrumentTimeout)) as caught:
        bias.measured_bias_v  # noqa: B018
    assert (caught.value.instrument, caught.value.command) == ("bias", "MZM:VOLTAGE?")
