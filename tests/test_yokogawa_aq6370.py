"""Yokogawa AQ6370D: the OSA optics, the emulator's protocol and timing, our driver's bytes, and
pymeasure's unmodified driver and ours against the emulator over a real socket.

Physics tolerances are stated where they are checked; the noise tests use 20001 samples, so the
statistical bounds hold with margins of several standard errors.
"""

from __future__ import annotations

import itertools
import socket
import struct
import time
from collections.abc import Iterator

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from pymeasure.adapters import VISAAdapter
from pymeasure.instruments.yokogawa.aq6370series import AQ6370D
from pymeasure.test import expected_protocol

from drivers.errors import (
    ConnectionLost,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
)
from drivers.roles import Osa
from drivers.yokogawa_aq6370 import AQ6370Osa
from sim_backends.instruments.yokogawa_aq6370 import AQ6370Emulator, LanSession
from sim_backends.scpi import ScpiError
from sim_backends.world.laser import C_M_PER_S
from sim_backends.world.light import Light
from sim_backends.world.osa import (
    NO_LEVEL_DBM,
    SENSITIVITIES,
    Monochromator,
    Sensitivity,
    sweep_time_s,
)
from sim_backends.world.testbed import Testbed as World
from tests.conftest import EmulatorThread

PUMP_NM = 1556.09
FSR_HZ = 49e9
OPTICS = Monochromator()


def comb(lines: int = 301, peak_mw: float = 1.0, half_width_lines: float = 58.0) -> Light:
    """A single-soliton comb: sech^2 envelope, 49 GHz spacing, centred on the pump."""
    mu = np.arange(lines) - lines // 2
    frequency_hz = C_M_PER_S / (PUMP_NM * 1e-9) + mu * FSR_HZ
    power_mw = peak_mw / np.cosh(mu / half_width_lines * np.arccosh(np.sqrt(2))) ** 2
    return Light(frequency_hz.astype(np.float64), power_mw.astype(np.float64))


def line_at(wavelength_nm: float, power_mw: float) -> Light:
    return Light.line(C_M_PER_S / (wavelength_nm * 1e-9), power_mw)


def peak_indices(level_dbm: np.ndarray, half_window: int, threshold_dbm: float) -> np.ndarray:
    """Points that are the maximum within +-half_window points and above the threshold."""
    padded = np.pad(level_dbm, half_window, constant_values=-np.inf)
    local_max = sliding_window_view(padded, 2 * half_window + 1).max(axis=1)
    return np.flatnonzero((level_dbm == local_max) & (level_dbm > threshold_dbm))


# --- the optics: Light -> trace ------------------------------------------------------------------

@pytest.mark.parametrize("rbw_nm", [0.02, 0.1, 1.0])
def test_a_line_peaks_at_its_power_and_wavelength_with_the_rbw_as_width(rbw_nm: float) -> None:
    grid = np.linspace(PUMP_NM - 5 * rbw_nm, PUMP_NM + 5 * rbw_nm, 20001)
    power = OPTICS.power_in_rbw_mw(line_at(PUMP_NM, 2.0), grid, rbw_nm)
    assert power.max() == pytest.approx(2.0, rel=1e-3)  # the OSA is calibrated for lines
    above_half = grid[power >= power.max() / 2]
    assert (above_half[0] + above_half[-1]) / 2 == pytest.approx(PUMP_NM, abs=grid[1] - grid[0])
    assert above_half[-1] - above_half[0] == pytest.approx(rbw_nm, rel=0.03)  # FWHM = RBW
    rendered = OPTICS.render_dbm(line_at(PUMP_NM, 2.0), grid, rbw_nm, -80.0,
                                 np.random.default_rng(3))
    assert rendered.max() == pytest.approx(10 * np.log10(2.0), abs=0.1)  # 0.02 dB jitter


def test_the_passband_has_the_close_in_dynamic_range_of_an_aq6370d() -> None:
    offsets = np.array([0.1, 0.2, 0.5])
    level_db = 10 * np.log10(OPTICS.passband(offsets, 0.02))
    assert level_db == pytest.approx([-37, -55, -79], abs=1.5)


def test_a_49_ghz_comb_is_resolved_at_0p02_nm_and_not_at_1_nm() -> None:
    light, rng = comb(), np.random.default_rng(5)
    lines_nm = np.sort(light.line_wavelength_nm)
    edges = (lines_nm[:-1] + lines_nm[1:]) / 2  # start and stop midway between lines
    grid = np.linspace(edges[np.searchsorted(edges, 1540.0)],
                       edges[np.searchsorted(edges, 1572.0)], 20001)  # 1.6 pm a point
    floor_dbm = SENSITIVITIES[5].noise_floor_dbm  # HIGH3
    fine = OPTICS.render_dbm(light, grid, 0.02, floor_dbm, rng)
    in_view = (light.line_wavelength_nm > grid[0]) & (light.line_wavelength_nm < grid[-1])
    spacing_points = int(0.39 / (grid[1] - grid[0]))
    peaks = peak_indices(fine, spacing_points // 3, floor_dbm + 20)
    assert peaks.size == in_view.sum() == 81
    assert np.abs(grid[peaks] - lines_nm[(lines_nm > grid[0]) & (lines_nm < grid[-1])]).max() \
        < 0.003
    valleys = [fine[a:b].min() for a, b in itertools.pairwise(peaks)]
    assert np.max(valleys - fine[peaks[:-1]]) < -40  # > 40 dB between neighbours near the top
    coarse = OPTICS.render_dbm(light, grid, 1.0, floor_dbm, rng)
    middle = coarse[np.abs(grid - PUMP_NM) < 2]
    # 2 or 3 lines in the flat-top passband as it slides: a ripple of 10 log10(3/2) = 1.8 dB
    assert middle.max() - middle.min() < 2.0


@pytest.mark.parametrize("sensitivity", SENSITIVITIES[1::2], ids=lambda s: s.name)
def test_the_noise_floor_sits_at_the_sensitivity_level(sensitivity: Sensitivity) -> None:
    floor_dbm = sensitivity.noise_floor_dbm
    grid = np.linspace(1500.0, 1600.0, 20001)
    dark = OPTICS.render_dbm(Light.dark(), grid, 0.02, floor_dbm, np.random.default_rng(7))
    no_level = dark == NO_LEVEL_DBM
    assert no_level.mean() == pytest.approx(0.5, abs=0.015)  # zero-mean detector noise
    # the median of |N(0, s)| is 0.674 s: 1.71 dB below the rms level
    assert np.median(dark[~no_level]) == pytest.approx(floor_dbm - 1.71, abs=0.15)


def test_a_continuum_reads_its_density_times_the_noise_bandwidth() -> None:
    """The line path and the background path agree: an OSA calibrated on lines reads a flat
    PSD S as S x (integral of the passband), and that integral is also the area of a line trace."""
    rbw_nm = 0.1
    f0 = C_M_PER_S / (PUMP_NM * 1e-9)
    psd_mw_per_hz = 1e-15
    band = Light(background_frequency_hz=np.linspace(f0 - 2e12, f0 + 2e12, 41),
                 background_mw_per_hz=np.full(41, psd_mw_per_hz))
    grid = np.linspace(PUMP_NM - 2, PUMP_NM + 2, 4001)
    continuum = OPTICS.power_in_rbw_mw(band, grid, rbw_nm)
    psd_mw_per_nm = psd_mw_per_hz * C_M_PER_S * 1e9 / PUMP_NM**2
    line_trace = OPTICS.power_in_rbw_mw(line_at(PUMP_NM, 1.0), grid, rbw_nm)
    line_area_nm = float(np.trapezoid(line_trace, grid))
    assert line_area_nm == pytest.approx(OPTICS.noise_bandwidth_nm(rbw_nm), rel=2e-3)
    assert continuum[2000] == pytest.approx(psd_mw_per_nm * line_area_nm, rel=5e-3)


def test_rendering_300_lines_on_20001_points_is_fast() -> None:
    light, grid = comb(lines=300), np.linspace(1500.0, 1620.0, 20001)
    start = time.perf_counter()
    OPTICS.render_dbm(light, grid, 0.02, -90.0, np.random.default_rng(1))
    assert time.perf_counter() - start < 1.0  # ~ 0.04 s here


# --- the emulator, driven directly on a fake world clock -----------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def logged_in(emulator: AQ6370Emulator) -> LanSession:
    session = emulator.new_session()
    assert session.handle('OPEN "anonymous"') == "AUTHENTICATE CRAM-MD5."
    assert session.handle("") == "ready"
    return session


def csv_values(reply: str | None) -> np.ndarray:
    assert reply is not None
    return np.array([float(value) for value in reply.split(",")])


def test_a_sweep_takes_time_on_the_world_clock_by_points_and_sensitivity() -> None:
    clock = FakeClock()
    osa = AQ6370Emulator(lambda: line_at(1550.0, 1.0), clock, np.random.default_rng(1))
    session = logged_in(osa)
    duration_s = sweep_time_s(1001, SENSITIVITIES[1])
    assert duration_s == pytest.approx(0.2, rel=1e-3)  # NORM/AUTO, 1001 points
    assert session.handle(":STAT:OPER:COND?") == "1"
    session.handle(":INIT:SMOD SINGLE;:INIT")
    clock.now_s = duration_s * 0.99
    assert session.handle(":STAT:OPER:COND?") == "0"
    assert session.handle(":STAT:OPER:EVEN?") == "0"
    clock.now_s = duration_s * 1.01
    assert session.handle(":STAT:OPER:COND?;:STAT:OPER:EVEN?;:STAT:OPER:EVEN?") == "1;1;0"
    assert sweep_time_s(20001, SENSITIVITIES[1]) == pytest.approx(2.1, rel=1e-3)
    assert sweep_time_s(1001, SENSITIVITIES[5]) / duration_s > 100  # HIGH3: minutes, not s
    session.handle(":SENS:SENS HIGH1;:SENS:SWE:SPE 1;*TRG")  # 2x speed halves the dwell
    clock.now_s += sweep_time_s(1001, SENSITIVITIES[3], speed=2.0) * 1.01
    assert session.handle(":STAT:OPER:COND?") == "1"


def test_a_repeat_sweep_runs_until_aborted() -> None:
    clock = FakeClock()
    osa = AQ6370Emulator(lambda: line_at(1550.0, 1.0), clock, np.random.default_rng(1))
    session = logged_in(osa)
    session.handle(":INIT:SMOD 2;:INIT")
    clock.now_s = 10.05  # 50 sweeps later, in the middle of one
    assert session.handle(":STAT:OPER:COND?;:STAT:OPER:EVEN?") == "0;1"
    session.handle(":ABOR")
    assert session.handle(":STAT:OPER:COND?") == "1"


def test_the_trace_records_the_light_when_the_grating_passes_each_point() -> None:
    clock, seen = FakeClock(), {"light": line_at(1547.0, 1.0)}
    osa = AQ6370Emulator(lambda: seen["light"], clock, np.random.default_rng(2))
    session = logged_in(osa)  # window 1545 to 1555 nm, 1001 points, 0.2 s a sweep
    session.handle(":INIT")
    clock.now_s = 0.1  # half way: 1545 to 1550 nm recorded while the line sits at 1547 nm
    session.handle(":STAT:OPER:COND?")
    seen["light"] = line_at(1553.0, 0.5)  # the laser jumps while the grating sweeps on
    clock.now_s = 0.3
    assert session.handle(":STAT:OPER:COND?") == "1"
    levels = csv_values(session.handle(":TRAC:Y? TRA"))
    wavelengths = csv_values(session.handle(":TRAC:X? TRA")) * 1e9
    # both lines, though never lit together: each where the grating met it
    assert levels[np.argmin(np.abs(wavelengths - 1547.0))] == pytest.approx(0.0, abs=0.1)
    assert levels[np.argmin(np.abs(wavelengths - 1553.0))] == pytest.approx(-3.01, abs=0.1)
    assert session.handle(":CALC:MARK:MAX;:CALC:MARK:X? 0") == "+1.54700000E-006"


def test_login_is_per_connection_and_settings_per_instrument() -> None:
    osa = AQ6370Emulator(Light.dark, FakeClock(), np.random.default_rng(1),
                         accounts={"anonymous": None, "lab": "comb"})
    first, second = logged_in(osa), osa.new_session()
    first.handle(":SENS:WAV:CENT 1556.09NM")
    assert second.handle(":SENS:WAV:CENT?") is None  # refused: not logged in
    assert second.handle("comb") is None  # a password before OPEN is no login
    assert second.handle('OPEN "lab"') == "AUTHENTICATE CRAM-MD5."
    assert second.handle("wrong") is None  # refused, and back to the start
    assert second.handle("*IDN?") is None
    assert second.handle('open "lab"') == "AUTHENTICATE CRAM-MD5."
    assert second.handle("comb") == "ready"
    assert second.handle(":SENS:WAV:CENT?") == "+1.55609000E-006"
    assert second.handle("*IDN?") == "YOKOGAWA,AQ6370D,90Y403996,02.08"
    assert second.handle("CLOSE") is None
    assert second.handle("*IDN?") is None


def test_bad_commands_queue_scpi_errors() -> None:
    session = logged_in(AQ6370Emulator(Light.dark, FakeClock(), np.random.default_rng(1)))
    session.handle(":SENS:WAV:BOGUS 1;:SENS:WAV:CENT 2000NM;:SENS:SENS FAST;"
                   ":SENS:SWE:POIN 60000;:SENS:BWID:RES 5NM")
    errors = [session.handle("SYST:ERR?") for _ in range(6)]
    assert errors == ['-113,"Undefined header"', '-222,"Data out of range"',
                      '-224,"Illegal parameter value"', '-222,"Data out of range"',
                      '-222,"Data out of range"', '0,"No error"']
    session.handle(":SENS:BWID:RES 0.03NM")  # between two resolutions: the nearer one [I]
    assert session.handle(":SENS:BWID:RES?") == "+2.00000000E-011"


# --- our driver's bytes --------------------------------------------------------------------------

LOGIN = [(b'OPEN "anonymous"', b"AUTHENTICATE CRAM-MD5."), (b"", b"ready"),
         (b":FORMat:DATA REAL,64", None)]
NO_ERROR = (b"SYST:ERR?", b'0,"No error"')


def ieee_block(values: list[float]) -> bytes:
    data = struct.pack(f"<{len(values)}d", *values)
    return f"#{len(str(len(data)))}{len(data)}".encode() + data + b"\r\n"


def test_connect_logs_in_and_selects_binary_transfer() -> None:
    with expected_protocol(AQ6370Osa, LOGIN, name="osa") as osa:
        osa.safe_state()  # an OSA emits nothing: no bytes


def test_window_and_resolution_protocol() -> None:
    pairs = [*LOGIN,
             (b":SENSe:WAVelength:CENTer 1.5560950e-06", None), NO_ERROR,
             (b":SENSe:WAVelength:CENTer?", b"+1.55609500E-006"),
             (b":SENSe:WAVelength:SPAN 5e-09", None), NO_ERROR,
             (b":SENSe:WAVelength:SPAN?", b"+5.00000000E-009"),
             (b":SENSe:BWIDth:RESolution 2e-11", None), NO_ERROR,
             (b":SENSe:BWIDth:RESolution?", b"+2.00000000E-011")]
    with expected_protocol(AQ6370Osa, pairs, name="osa") as osa:
        osa.center_nm = 1556.095
        assert osa.center_nm == 1556.095
        osa.span_nm = 5.0
        assert osa.span_nm == 5.0
        osa.resolution_nm = 0.02
        assert osa.resolution_nm == 0.02


def test_read_trace_protocol_single_sweep_poll_then_binary_blocks() -> None:
    pairs = [*LOGIN, (b":INITiate:SMODe 1", None), (b":INITiate:IMMediate", None), NO_ERROR,
             (b":STATus:OPERation:CONDition?", b"0"), (b":STATus:OPERation:CONDition?", b"1"),
             (b":TRACe:X? TRA", ieee_block([1.5560e-6, 1.5561e-6, 1.5562e-6])),
             (b":TRACe:Y? TRA", ieee_block([-60.0, -3.5, -210.0]))]
    with expected_protocol(AQ6370Osa, pairs, name="osa", poll_interval_s=0.0) as osa:
        wavelength_nm, power_dbm = osa.read_trace()
    assert wavelength_nm == pytest.approx([1556.0, 1556.1, 1556.2])
    assert power_dbm.tolist() == [-60.0, -3.5, -210.0]


def test_an_unlisted_resolution_is_refused_before_anything_is_sent() -> None:
    with (expected_protocol(AQ6370Osa, LOGIN, name="osa") as osa,
          pytest.raises(InstrumentError, match="discrete set") as caught):
        osa.resolution_nm = 0.03
    assert caught.value.command == ":SENS:BWID:RES"


def test_an_instrument_error_raises_naming_instrument_and_command() -> None:
    pairs = [*LOGIN, (b":SENSe:WAVelength:SPAN 5e-09", None),
             (b"SYST:ERR?", b'-222,"Data out of range"'), NO_ERROR]
    with (expected_protocol(AQ6370Osa, pairs, name="osa") as osa,
          pytest.raises(InstrumentReportedError, match="-222") as caught):
        osa.span_nm = 5.0
    assert (caught.value.instrument, caught.value.command) == ("osa", ":SENS:WAV:SPAN")


# --- over a real socket --------------------------------------------------------------------------

@pytest.fixture
def seen() -> dict[str, Light]:
    return {"light": comb()}


@pytest.fixture
def emulator(seen: dict[str, Light]) -> Iterator[tuple[AQ6370Emulator, EmulatorThread]]:
    world = World(seed=4)
    osa = AQ6370Emulator(lambda: seen["light"], world.sync, world.rng_for("osa"),
                         sweep_time_scale=0.5)
    thread = EmulatorThread(osa)
    yield osa, thread
    thread.close()


def test_pymeasure_aq6370d_unmodified_against_emulator(
        emulator: tuple[AQ6370Emulator, EmulatorThread], seen: dict[str, Light]) -> None:
    _, thread = emulator
    with pytest.raises(ValueError, match="'port' is not a valid attribute"):
        AQ6370D(thread.resource, visa_library="@py")  # pymeasure's tcpip default port=10001
    adapter = VISAAdapter(thread.resource, visa_library="@py", read_termination="\r\n",
                          write_termination="\r\n", timeout=2000)
    osa = AQ6370D(adapter)
    try:
        with pytest.raises(AssertionError):  # it expects READY, the instrument says ready
            osa.authenticate_ethernet("anonymous")
        assert osa.id == "YOKOGAWA,AQ6370D,90Y403996,02.08"
        osa.wavelength_center = 1556.09e-9
        osa.wavelength_span = 4e-9
        osa.resolution_bandwidth = 0.02e-9
        osa.sample_number = 2001
        osa.sensitivity = "MID"
        osa.sweep_mode = "SINGLE"
        assert (osa.wavelength_start, osa.wavelength_stop) == pytest.approx((1554.09e-9,
                                                                             1558.09e-9))
        assert osa.sensitivity == "MID" and osa.sweep_mode == "SINGLE"
        osa.initiate_sweep()
        assert osa.sweep_complete is False
        assert osa.wait_for_sweep_complete(timeout=10, delay=0.05) is True
        x_m, y_dbm = np.array(osa.get_xdata()), np.array(osa.get_ydata())
        assert osa.TRA.sample_number == x_m.size == y_dbm.size == 2001
        assert x_m[0] == pytest.approx(1554.09e-9) and x_m[-1] == pytest.approx(1558.09e-9)
        lines_m = seen["light"].line_wavelength_nm * 1e-9
        assert np.abs(lines_m - x_m[np.argmax(y_dbm)]).min() < 5e-12  # the top is a comb line
        assert y_dbm.max() == pytest.approx(0.0, abs=0.1)  # of 1 mW, the flat top of the comb
        assert osa.check_errors() == []
    finally:
        adapter.close()


def test_driver_reads_a_comb_through_the_emulator(
        emulator: tuple[AQ6370Emulator, EmulatorThread], seen: dict[str, Light]) -> None:
    _, thread = emulator
    osa: Osa = AQ6370Osa(thread.resource, name="osa")
    try:
        osa.center_nm, osa.span_nm, osa.resolution_nm = PUMP_NM, 8.0, 0.02
        start = time.monotonic()
        wavelength_nm, power_dbm = osa.read_trace()
        assert time.monotonic() - start >= 0.5 * sweep_time_s(1001, SENSITIVITIES[1])
        assert wavelength_nm[[0, -1]] == pytest.approx([PUMP_NM - 4, PUMP_NM + 4])
        line_nm = seen["light"].line_wavelength_nm
        in_view = np.count_nonzero(np.abs(line_nm - PUMP_NM) < 4 - 0.01)
        assert peak_indices(power_dbm, 15, -40.0).size == in_view == 21
    finally:
        osa.close()


def test_binary_and_ascii_traces_agree(emulator: tuple[AQ6370Emulator, EmulatorThread]) -> None:
    _, thread = emulator
    osa = AQ6370Osa(thread.resource, name="osa")
    adapter = VISAAdapter(thread.resource, visa_library="@py", read_termination="\r\n",
                          write_termination="\r\n", timeout=2000)
    plain = AQ6370D(adapter)
    try:
        binary_nm, binary_dbm = osa.read_trace()
        plain.ask('OPEN "anonymous"'), plain.ask("")
        plain.transfer_format = "ASCII"  # per instrument: both connections now get ASCII
        ascii_nm = np.array(plain.get_xdata()) * 1e9
        ascii_dbm = np.array(plain.get_ydata())
        assert ascii_nm == pytest.approx(binary_nm, rel=1e-9, abs=0)  # 9 digits in ASCII
        assert ascii_dbm == pytest.approx(binary_dbm, rel=1e-8, abs=1e-8)
    finally:
        adapter.close()
        osa.close()


def test_wrong_password_is_a_typed_error(emulator: tuple[AQ6370Emulator, EmulatorThread]) -> None:
    osa_emulator, thread = emulator
    osa_emulator.accounts = {"lab": "comb"}
    with pytest.raises(InstrumentTimeout) as caught:  # a refused login gets no answer [I]
        AQ6370Osa(thread.resource, name="osa", timeout_s=0.3, user="lab", password="wrong")
    assert (caught.value.instrument, caught.value.command) == ("osa", "login")
    AQ6370Osa(thread.resource, name="osa", user="lab", password="comb").close()


def raw_replies(port: int, *messages: bytes, timeout_s: float = 0.3) -> list[bytes | None]:
    """Send CR+LF-terminated lines; the reply to each, or None where the instrument is silent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        replies: list[bytes | None] = []
        for message in messages:
            sock.sendall(message + b"\r\n")
            try:
                replies.append(sock.recv(4096))
            except TimeoutError:
                replies.append(None)
        return replies


def test_commands_before_login_are_refused_on_the_wire(
        emulator: tuple[AQ6370Emulator, EmulatorThread]) -> None:
    _, thread = emulator
    assert raw_replies(thread.port, b"*IDN?", b" ", b'OPEN "anonymous"', b" ", b"*IDN?") == [
        None, None, b"AUTHENTICATE CRAM-MD5.\r\n", b"ready\r\n",
        b"YOKOGAWA,AQ6370D,90Y403996,02.08\r\n"]


# --- fault knobs: what the driver does -----------------------------------------------------------

@pytest.fixture
def driver(emulator: tuple[AQ6370Emulator, EmulatorThread]) -> Iterator[AQ6370Osa]:
    osa = AQ6370Osa(emulator[1].resource, name="osa", timeout_s=0.5)
    yield osa
    osa.close()


def test_dropped_connection_is_a_typed_error(
        emulator: tuple[AQ6370Emulator, EmulatorThread], driver: AQ6370Osa) -> None:
    emulator[0].faults.drop_connection = True
    # pyvisa-py reports a socket closed by the peer as a timeout on the next read
    with pytest.raises((ConnectionLost, InstrumentTimeout)) as caught:
        driver.center_nm  # noqa: B018 - the read is the point
    assert (caught.value.instrument, caught.value.command) == ("osa", ":SENS:WAV:CENT?")


def test_stalled_instrument_times_out(
        emulator: tuple[AQ6370Emulator, EmulatorThread], driver: AQ6370Osa) -> None:
    emulator[0].faults.stall = True
    with pytest.raises(InstrumentTimeout) as caught:
        driver.read_trace()
    assert caught.value.command == ":INIT"  # the error check after starting the sweep


def test_slow_replies_arrive(
        emulator: tuple[AQ6370Emulator, EmulatorThread], driver: AQ6370Osa) -> None:
    emulator[0].faults.reply_delay_s = 0.2
    start = time.monotonic()
    assert driver.span_nm == 10.0
    assert time.monotonic() - start >= 0.2


def test_garbage_reply_is_an_unreadable_reply(
        emulator: tuple[AQ6370Emulator, EmulatorThread], driver: AQ6370Osa) -> None:
    emulator[0].faults.garbage_reply = True
    with pytest.raises(InstrumentError, match="unreadable reply") as caught:
        driver.resolution_nm  # noqa: B018 - the read is the point
    assert caught.value.command == ":SENS:BWID:RES?"


def test_queued_instrument_error_surfaces_on_the_next_trace(
        emulator: tuple[AQ6370Emulator, EmulatorThread], driver: AQ6370Osa) -> None:
    emulator[0].inject_error(ScpiError(-350, "Queue overflow"))
    with pytest.raises(InstrumentReportedError, match="-350") as caught:
        driver.read_trace()
    assert caught.value.command == ":INIT"


def test_a_sweep_longer_than_the_driver_waits_is_a_timeout(
        emulator: tuple[AQ6370Emulator, EmulatorThread], driver: AQ6370Osa) -> None:
    emulator[0].setup.sensitivity = 5  # HIGH3: ~ 19 s at this scale
    driver.sweep_timeout_s = 0.3
    with pytest.raises(InstrumentTimeout, match="sweep not complete") as caught:
        driver.read_trace()
    assert caught.value.command == ":STAT:OPER:COND?"
