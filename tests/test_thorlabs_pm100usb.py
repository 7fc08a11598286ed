"""Thorlabs PM100USB: our driver's bytes; pymeasure's unmodified driver and ours on the emulator."""

from __future__ import annotations

import socket
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from pymeasure.instruments.thorlabs.thorlabspm100usb import ThorlabsPM100USB
from pymeasure.test import expected_protocol

from drivers.errors import (
    ConnectionLost,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
)
from drivers.thorlabs_pm100usb import PM100Meter
from sim_backends.instruments.thorlabs_pm100usb import S144C, SAMPLE_S, PM100USBEmulator
from sim_backends.world.laser import C_M_PER_S
from sim_backends.world.light import Light
from tests.conftest import EmulatorThread, raw_exchange

IDN = (b"SYST:SENSOR:IDN?", b"S144C,190613301,13-JUN-2019,1,18,305")
RANGE = [(b"SENS:CORR:WAV? MIN", b"8.000000E+02"), (b"SENS:CORR:WAV? MAX", b"1.700000E+03")]
NO_ERROR = (b"SYST:ERR?", b'0,"No error"')
CONNECT = [IDN, *RANGE, (b"SENS:POW:UNIT W", None), NO_ERROR,
           (b"SENS:POW:RANG:AUTO 1", None), NO_ERROR]
F_1550_HZ = C_M_PER_S / 1550e-9


def test_connect_reads_the_head_and_sets_watts_and_auto_range() -> None:
    with expected_protocol(PM100Meter, CONNECT, name="pm") as meter:
        assert meter.device.sensor_name == "S144C"
        assert meter.wavelength_range_nm == (800.0, 1700.0)


def test_power_in_mw_and_wavelength_protocol() -> None:
    pairs = [*CONNECT, (b"MEAS:POW?", b"1.234500E-03"), *RANGE,
             (b"SENSE:CORR:WAV 1310.5", None), NO_ERROR, (b"SENSE:CORR:WAV?", b"1.310500E+03"),
             (b"SENS:AVER:COUN 100", None), NO_ERROR, (b"SENS:AVER:COUN?", b"100")]
    with expected_protocol(PM100Meter, pairs, name="pm") as meter:
        assert meter.power_mw == pytest.approx(1.2345)
        meter.wavelength_nm = 1310.5
        assert meter.wavelength_nm == 1310.5
        meter.averaging_count = 100
        assert meter.averaging_count == 100


def test_out_of_range_wavelength_is_refused_not_clamped() -> None:
    with (expected_protocol(PM100Meter, CONNECT, name="pm") as meter,
          pytest.raises(InstrumentError, match="outside the head's range") as caught):
        meter.wavelength_nm = 1900.0
    assert (caught.value.instrument, caught.value.command) == ("pm", "SENS:CORR:WAV")


def test_instrument_error_raises_naming_instrument_and_command() -> None:
    pairs = [*CONNECT, (b"SENS:AVER:COUN 100", None),
             (b"SYST:ERR?", b'-221,"Settings conflict"'), NO_ERROR]
    with (expected_protocol(PM100Meter, pairs, name="pm") as meter,
          pytest.raises(InstrumentReportedError) as caught):
        meter.averaging_count = 100
    assert (caught.value.instrument, caught.value.command) == ("pm", "SENS:AVER:COUN")
    assert "-221" in str(caught.value)


@dataclass
class Bench:
    """What the meter looks at, and a world clock the test moves by hand."""

    light: Light = field(default_factory=lambda: Light.line(F_1550_HZ, 1.0))
    now_s: float = 0.0

    def sync(self) -> float:
        return self.now_s


@pytest.fixture
def bench() -> Bench:
    return Bench()


@pytest.fixture
def emulator(bench: Bench) -> PM100USBEmulator:
    return PM100USBEmulator(lambda: bench.light, bench.sync, np.random.default_rng(3))


@pytest.fixture
def served(emulator: PM100USBEmulator) -> Iterator[EmulatorThread]:
    thread = EmulatorThread(emulator)
    yield thread
    thread.close()


@pytest.fixture
def meter(served: EmulatorThread) -> Iterator[PM100Meter]:
    meter = PM100Meter(served.resource, name="pm", timeout_s=0.5)
    yield meter
    meter.close()


def test_pymeasure_pm100usb_unmodified_reads_the_light(served: EmulatorThread,
                                                        bench: Bench) -> None:
    pm = ThorlabsPM100USB(served.resource, visa_library="@py", read_termination="\n",
                          write_termination="\n", timeout=2000)
    try:
        assert (pm.sensor_name, pm.is_power_sensor, pm.wavelength_settable) == ("S144C", True, True)
        pm.wavelength = 1550
        assert pm.wavelength == 1550
        assert pm.power == pytest.approx(1e-3, abs=1e-8)  # 1 mW, NEP 1 nW
        bench.light = Light.line(F_1550_HZ, 0.25)
        assert pm.power == pytest.approx(0.25e-3, abs=1e-8)
        bench.light = Light.dark()
        assert abs(pm.power) < 1e-8
        assert pm.check_errors() == []
    finally:
        pm.adapter.close()


def test_driver_reads_total_power_of_lines_and_background(meter: PM100Meter, bench: Bench) -> None:
    frequencies = np.linspace(F_1550_HZ - 1e12, F_1550_HZ + 1e12, 201)
    bench.light = Light(np.array([F_1550_HZ - 49e9, F_1550_HZ + 49e9]), np.array([0.3, 0.2]),
                        frequencies, np.full(frequencies.size, 0.1 / 2e12))  # 0.1 mW of ASE
    # 1 THz either side of 1550 nm (+-8 nm) moves the responsivity by < 1 %
    assert meter.power_mw == pytest.approx(0.6, rel=0.01)


def test_a_mis_set_correction_wavelength_reads_off_by_the_responsivity_ratio(
        meter: PM100Meter) -> None:
    assert meter.power_mw == pytest.approx(1.0, abs=1e-5)
    meter.wavelength_nm = 1310.0
    ratio = float(S144C.responsivity_a_per_w(np.array([1550.0]))[0]
                  / S144C.responsivity_a_per_w(np.array([1310.0]))[0])
    assert 1.1 < ratio < 1.3  # InGaAs: ~1.0 A/W at 1550 nm, ~0.85 A/W at 1310 nm
    assert meter.power_mw == pytest.approx(ratio, abs=1e-5)
    meter.wavelength_nm = 1690.0  # past the band edge the head barely responds: reads high
    assert meter.power_mw > 1.5


def test_responsivity_curve_is_smooth_and_physical() -> None:
    wavelength_nm = np.linspace(800.0, 1700.0, 901)
    responsivity = S144C.responsivity_a_per_w(wavelength_nm)
    assert np.all(np.isfinite(responsivity)) and np.all(responsivity > 0)
    assert float(responsivity[750]) == pytest.approx(1.0, abs=0.05)  # 1550 nm
    assert int(np.argmax(responsivity)) in range(750, 880)  # peak between 1550 and 1680 nm
    assert float(np.max(np.abs(np.diff(responsivity, 2)))) < 1e-3  # no kinks at 1 nm steps


def test_averaging_lowers_the_noise_as_one_over_root_count(meter: PM100Meter,
                                                          bench: Bench) -> None:
    bench.light = Light.dark()
    single = [meter.power_mw for _ in range(150)]
    meter.averaging_count = 100
    averaged = [meter.power_mw for _ in range(150)]
    nep_mw = S144C.nep_w * 1e3
    # sample std of 150 normal draws is within +-20 % of sigma with > 99 % probability
    assert statistics.stdev(single) == pytest.approx(nep_mw, rel=0.2)
    assert statistics.stdev(averaged) == pytest.approx(nep_mw / 10, rel=0.2)


def test_a_reading_occupies_the_meter_for_count_times_3_ms(emulator: PM100USBEmulator,
                                                           bench: Bench) -> None:
    emulator.parser.handle("SENS:AVER:COUN 100")
    bench.now_s = 10.0
    emulator.parser.handle("MEAS:POW?")
    assert emulator.measurement_end_s == pytest.approx(10.0 + 100 * SAMPLE_S)
    emulator.parser.handle("MEAS:POW?")  # asked before the first finished: it queues behind it
    assert emulator.measurement_end_s == pytest.approx(10.0 + 200 * SAMPLE_S)
    bench.now_s = 20.0
    emulator.parser.handle("MEAS:POW?")
    assert emulator.measurement_end_s == pytest.approx(20.0 + 100 * SAMPLE_S)


def test_dbm_unit_and_manual_range_saturation(emulator: PM100USBEmulator, bench: Bench) -> None:
    handle = emulator.parser.handle
    handle("SENS:POW:UNIT DBM")
    assert float(handle("MEAS:POW?") or "nan") == pytest.approx(0.0, abs=1e-3)
    handle("SENS:POW:UNIT W;:SENS:POW:RANG 1E-4")
    assert handle("SENS:POW:RANG:AUTO?;:SENS:POW:RANG?") == "0;1.000000E-04"
    assert float(handle("MEAS:POW?") or "nan") == pytest.approx(1e-4)  # 1 mW in a 100 uW range
    handle("SENS:POW:RANG:AUTO ON")
    assert float(handle("MEAS:POW?") or "nan") == pytest.approx(1e-3, rel=1e-4)
    bench.light = Light.line(F_1550_HZ, 0.5)
    assert float(handle("MEAS:POW?") or "nan") == pytest.approx(5e-4, rel=1e-4)
    assert handle("SENS:POW:RANG?") == "1.000000E-03"  # the smallest decade above the reading


def test_bad_commands_fill_the_scpi_error_queue(served: EmulatorThread) -> None:
    replies = raw_exchange(served.port, b"SENS:CORR:BOGUS 3", b"SENS:CORR:WAV 2000",
                           b"SENS:POW:UNIT FURLONG", b"SENS:AVER:COUN 2.5", b"SYST:ERR?",
                           b"SYST:ERR?", b"SYST:ERR?", b"SYST:ERR?", b"SYST:ERR?", terminator=b"\n")
    assert replies == [b'-113,"Undefined header"\n', b'-222,"Data out of range"\n',
                       b'-224,"Illegal parameter value"\n', b'-224,"Illegal parameter value"\n',
                       b'0,"No error"\n']


def test_queued_instrument_error_raises_on_the_next_setting(meter: PM100Meter,
                                                            emulator: PM100USBEmulator) -> None:
    emulator.inject_error(-310, "System error")
    with pytest.raises(InstrumentReportedError, match="-310") as caught:
        meter.averaging_count = 10
    assert (caught.value.instrument, caught.value.command) == ("pm", "SENS:AVER:COUN")
    meter.averaging_count = 10  # the queue is empty again
    assert meter.averaging_count == 10


def test_slow_reply_is_awaited(meter: PM100Meter, emulator: PM100USBEmulator) -> None:
    emulator.faults.reply_delay_s = 0.2
    assert meter.power_mw == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("fault", ["stall", "reply_delay_s"])
def test_a_hung_or_too_slow_meter_is_a_timeout(meter: PM100Meter, emulator: PM100USBEmulator,
                                               fault: str) -> None:
    setattr(emulator.faults, fault, True if fault == "stall" else 0.8)  # timeout is 0.5 s
    with pytest.raises(InstrumentTimeout) as caught:
        meter.power_mw  # noqa: B018 - the read is the point
    assert (caught.value.instrument, caught.value.command) == ("pm", "MEAS:POW?")


def test_garbage_reply_is_an_unreadable_reply(meter: PM100Meter,
                                              emulator: PM100USBEmulator) -> None:
    emulator.faults.garbage_reply = True
    with pytest.raises(InstrumentError, match="unreadable reply") as caught:
        meter.power_mw  # noqa: B018
    assert caught.value.command == "MEAS:POW?"


def test_dropped_connection_is_typed(meter: PM100Meter, emulator: PM100USBEmulator) -> None:
    emulator.faults.drop_connection = True
    # pyvisa-py reports a socket closed by the peer as a timeout on the next read
    with pytest.raises((ConnectionLost, InstrumentTimeout)) as caught:
        meter.power_mw  # noqa: B018
    assert (caught.value.instrument, caught.value.command) == ("pm", "MEAS:POW?")
    with pytest.raises(ConnectionLost, match="connect"):
        PM100Meter(f"TCPIP::127.0.0.1::{free_closed_port()}::SOCKET", name="pm", timeout_s=0.5)


def free_closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
