"""Yokogawa AQ6370D optical spectrum analyser over LAN: raw socket (port 10001), CR+LF.

Login, per connection [V: several open drivers]: the client sends ``OPEN "<user>"``, the
instrument answers ``AUTHENTICATE CRAM-MD5.``; the next line is the password, answered with
``ready`` (lower case; pymeasure's ``authenticate_ethernet`` expects ``READY``). ``anonymous``
takes any password. Until then, and after a refused password, the instrument stays silent [I].
``CLOSE`` ends the session [I].

Commands (settings are per instrument, shared by all connections):

* ``[:SENSe]:WAVelength:CENTer|SPAN|STARt|STOP`` (m, or with a unit: ``1556.09NM``; queries
  answer in m as ``+1.55609000E-006``), ``[:SENSe]:BANDwidth|BWIDth[:RESolution]`` (0.02 to 2 nm,
  snapped to the nearest of the instrument's resolutions [I]), ``[:SENSe]:SWEep:POINts``
  (101 to 50001), ``[:SENSe]:SENSe NHLD|NAUT|MID|HIGH1|HIGH2|HIGH3|NORMal`` (query: 0 to 6),
  ``[:SENSe]:SWEep:SPEed 0|1`` (1x, 2x).
* ``:INITiate:SMODe 1..4`` (single, repeat, auto, segment; all but single sweep repeatedly
  here: auto-ranging and segments are not modelled), ``:INITiate[:IMMediate]`` or ``*TRG`` start
  a sweep, ``:ABORt`` stops it. ``:STATus:OPERation:CONDition?`` bit 0 is 1 while no sweep runs
  (pymeasure's ``sweep_complete``); ``:STATus:OPERation[:EVENt]?`` bit 0 latches each completed
  sweep and is cleared by reading it or ``*CLS``.
* ``:TRACe[:DATA]:X|Y? TRA[,first,last]`` (1-based samples): m and dBm, ASCII CSV or, after
  ``:FORMat[:DATA] REAL[,64]`` (or ``REAL,32``), an IEEE block ``#<n><length><little-endian
  floats>``, then CR+LF. ``:TRACe[:DATA]:SNUMber? TRA``, ``:TRACe:ACTive TRA..TRG``.
* ``:CALCulate:MARKer:MAXimum`` (moving marker to the peak of the active trace),
  ``...:MAXimum:SRLevel`` (and reference level to it), ``:CALCulate:MARKer:X|Y? 0``;
  ``:DISPlay[:WINDow]:TRACe:Y1[:SCALe]:RLEVel`` (dBm).
* ``*IDN?``, ``*RST``, ``*CLS``, ``:SYSTem:ERRor?`` with SCPI codes.

Timing: a sweep takes ``world.osa.sweep_time_s`` (points x dwell of the sensitivity, halved at
2x) times ``sweep_time_scale``, on the world clock. The sweep moves across its points at a steady
rate, and each point records the light of the world at the first ``sync`` at or after the moment
the grating reaches it, as a real sweep records a changing spectrum. The power-up setup (centre
1550 nm, span 10 nm, RBW 0.02 nm, 1001 points, NORM/AUTO, single) is the lab's choice, not the
factory preset [I].
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, auto

import numpy as np

from sim_backends.faults import Faults
from sim_backends.scpi import (
    Call,
    Command,
    ScpiError,
    ScpiParser,
    data_out_of_range,
    illegal_value,
    missing_parameter,
)
from sim_backends.world.light import FloatArray, Light
from sim_backends.world.osa import (
    NO_LEVEL_DBM,
    SENSITIVITIES,
    Monochromator,
    sweep_time_s,
)

RESOLUTIONS_NM = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
POINTS_RANGE = (101, 50001)
CENTER_RANGE_M = (600e-9, 1700e-9)
SPAN_RANGE_M = (0.0, 1100e-9)
TRACES = ("TRA", "TRB", "TRC", "TRD", "TRE", "TRF", "TRG")
_WAVELENGTH_UNITS = {"M": 1.0, "NM": 1e-9, "UM": 1e-6}
_SINGLE = 1
_SWEEP_MODES = {"SINGLE": _SINGLE, "SING": _SINGLE, "REPEAT": 2, "REP": 2, "AUTO": 3,
                "SEGMENT": 4, "SEGM": 4}
_FORMATS = {("ASCII",): "ASCII", ("REAL",): "REAL,64", ("REAL", "64"): "REAL,64",
            ("REAL", "32"): "REAL,32"}
_REFERENCE_RANGE_DBM = (-90.0, 30.0)
_SWEEP_COMPLETE = 1  # bit 0 of the operation status registers


def _sci(value: float) -> str:
    """A number as the AQ6370 writes it: ``+1.55609000E-006``."""
    mantissa, exponent = f"{value:+.8E}".split("E")
    return f"{mantissa}E{int(exponent):+04d}"


def _sci_list(values: FloatArray) -> str:
    text = ",".join(f"{v:+.8E}" for v in values.tolist())
    return re.sub(r"E([+-])(\d\d)(?=,|$)", r"E\g<1>0\2", text)


def _block(values: FloatArray, dtype: str) -> bytes:
    data = values.astype(dtype).tobytes()
    length = str(len(data))
    return f"#{len(length)}{length}".encode("ascii") + data


@dataclass
class _Setup:
    """Measurement conditions: what ``*RST`` restores."""

    start_m: float = 1545e-9
    stop_m: float = 1555e-9
    resolution_m: float = 0.02e-9
    points: int = 1001
    sensitivity: int = 1  # NAUT
    sweep_mode: int = _SINGLE
    double_speed: bool = False
    data_format: str = "ASCII"
    active_trace: str = "TRA"
    reference_level_dbm: float = -10.0


@dataclass
class _Trace:
    wavelength_m: FloatArray = field(default_factory=lambda: np.zeros(0))
    level_dbm: FloatArray = field(default_factory=lambda: np.zeros(0))


@dataclass
class _Sweep:
    """A sweep under way: its grid and conditions, fixed when it started."""

    trace: _Trace
    grid_nm: FloatArray
    resolution_nm: float
    noise_floor_dbm: float
    start_s: float
    duration_s: float
    swept: int = 0  # points recorded so far


class AQ6370Emulator:
    """One AQ6370D looking at ``light()``, the spectrum that reaches its input."""

    read_terminator = b"\r\n"
    write_terminator = b"\r\n"

    def __init__(
        self,
        light: Callable[[], Light],
        sync: Callable[[], float],
        rng: np.random.Generator,
        optics: Monochromator | None = None,
        accounts: dict[str, str | None] | None = None,
        serial: str = "90Y403996",
        sweep_time_scale: float = 1.0,
    ) -> None:
        self.light = light
        self.sync = sync
        self.rng = rng
        self.optics = optics or Monochromator()
        # user -> password; None takes any password
        self.accounts: dict[str, str | None] = {"anonymous": None} if accounts is None \
            else accounts
        self.serial = serial
        if sweep_time_scale <= 0:
            raise ValueError("sweep_time_scale must be positive")
        self.sweep_time_scale = sweep_time_scale
        self.setup = _Setup()
        self.traces = {name: _Trace() for name in TRACES}
        self.sweep: _Sweep | None = None
        self.operation_event = 0
        self.marker: tuple[float, float] | None = None  # (wavelength m, level dBm)
        self.time_s = 0.0  # world time of the message being handled
        self.parser = ScpiParser(self._commands())
        self.faults = Faults()

    def new_session(self) -> LanSession:
        return LanSession(self)

    def inject_error(self, error: ScpiError) -> None:
        """Queue an instrument error, as a fault the instrument itself reports."""
        self.parser.push(error)

    def accepts(self, user: str, password: str) -> bool:
        if user not in self.accounts:
            return False
        expected = self.accounts[user]
        return expected is None or expected == password

    def execute(self, message: str) -> str | bytes | None:
        """Bring the world and the sweep up to now, then run one program message."""
        self.advance()
        return self.parser.handle(message)

    def advance(self) -> None:
        """Record the points the grating has passed since the last message; finish sweeps."""
        self.time_s = self.sync()
        while self.sweep is not None:
            sweep = self.sweep
            elapsed = self.time_s - sweep.start_s
            finished = elapsed >= sweep.duration_s
            reached = sweep.grid_nm.size if finished else math.floor(
                sweep.grid_nm.size * elapsed / sweep.duration_s)
            if reached > sweep.swept:
                part = slice(sweep.swept, reached)
                sweep.trace.level_dbm[part] = self.optics.render_dbm(
                    self.light(), sweep.grid_nm[part], sweep.resolution_nm,
                    sweep.noise_floor_dbm, self.rng)
                sweep.swept = reached
            if not finished:
                return
            self.operation_event |= _SWEEP_COMPLETE
            self.sweep = None
            if self.setup.sweep_mode != _SINGLE:  # the next sweep, skipping unseen ones
                end_s = sweep.start_s + sweep.duration_s
                following = self._start_sweep(end_s)
                following.start_s += following.duration_s * math.floor(
                    (self.time_s - end_s) / following.duration_s)

    def _start_sweep(self, start_s: float) -> _Sweep:
        setup = self.setup
        sensitivity = SENSITIVITIES[setup.sensitivity]
        grid_nm = np.linspace(setup.start_m, setup.stop_m, setup.points) * 1e9
        trace = self.traces[setup.active_trace]
        if trace.level_dbm.size != grid_nm.size:
            trace.level_dbm = np.full(grid_nm.size, NO_LEVEL_DBM)
        trace.wavelength_m = grid_nm * 1e-9
        speed = 2.0 if setup.double_speed else 1.0
        duration_s = sweep_time_s(setup.points, sensitivity, speed) * self.sweep_time_scale
        self.sweep = _Sweep(trace, grid_nm, setup.resolution_m * 1e9,
                            sensitivity.noise_floor_dbm, start_s, duration_s)
        return self.sweep

    def _commands(self) -> list[Command]:
        return [
            Command("*IDN", lambda _: f"YOKOGAWA,AQ6370D,{self.serial},02.08"),
            Command("*RST", write=self._reset),
            Command("*CLS", write=self._clear_status),
            Command("*TRG", write=self._initiate),
            Command(":INITiate[:IMMediate]", write=self._initiate),
            Command(":INITiate:SMODe", lambda _: str(self.setup.sweep_mode),
                    self._set_sweep_mode),
            Command(":ABORt", write=self._abort),
            Command(":STATus:OPERation:CONDition",
                    lambda _: str(_SWEEP_COMPLETE if self.sweep is None else 0)),
            Command(":STATus:OPERation[:EVENt]", self._read_event),
            Command("[:SENSe]:WAVelength:CENTer", lambda _: _sci(self._center_m()),
                    self._set_center),
            Command("[:SENSe]:WAVelength:SPAN", lambda _: _sci(self._span_m()),
                    self._set_span),
            Command("[:SENSe]:WAVelength:STARt", lambda _: _sci(self.setup.start_m),
                    self._set_start),
            Command("[:SENSe]:WAVelength:STOP", lambda _: _sci(self.setup.stop_m),
                    self._set_stop),
            Command("[:SENSe]:BWIDth[:RESolution]", lambda _: _sci(self.setup.resolution_m),
                    self._set_resolution),
            Command("[:SENSe]:BANDwidth[:RESolution]", lambda _: _sci(self.setup.resolution_m),
                    self._set_resolution),
            Command("[:SENSe]:SWEep:POINts", lambda _: str(self.setup.points),
                    self._set_points),
            Command("[:SENSe]:SENSe", lambda _: str(self.setup.sensitivity),
                    self._set_sensitivity),
            Command("[:SENSe]:SWEep:SPEed", lambda _: str(int(self.setup.double_speed)),
                    self._set_speed),
            Command(":FORMat[:DATA]", lambda _: self.setup.data_format, self._set_format),
            Command(":TRACe[:DATA]:X", lambda call: self._trace_data(call, x_axis=True)),
            Command(":TRACe[:DATA]:Y", lambda call: self._trace_data(call, x_axis=False)),
            Command(":TRACe[:DATA]:SNUMber",
                    lambda call: str(self._trace(call).level_dbm.size)),
            Command(":TRACe:ACTive", lambda _: self.setup.active_trace, self._set_active),
            Command(":CALCulate:MARKer:MAXimum", write=self._marker_to_peak),
            Command(":CALCulate:MARKer:MAXimum:SRLevel", write=self._reference_to_peak),
            Command(":CALCulate:MARKer:X", lambda call: _sci(self._marker(call)[0])),
            Command(":CALCulate:MARKer:Y", lambda call: _sci(self._marker(call)[1])),
            Command(":DISPlay[:WINDow]:TRACe:Y1[:SCALe]:RLEVel",
                    lambda _: _sci(self.setup.reference_level_dbm), self._set_reference),
        ]

    # status and sweep ---------------------------------------------------------------------------

    def _reset(self, _: Call) -> None:
        self.setup = _Setup()
        self.traces = {name: _Trace() for name in TRACES}
        self.sweep = None
        self.marker = None

    def _clear_status(self, _: Call) -> None:
        self.parser.errors.clear()
        self.operation_event = 0

    def _initiate(self, _: Call) -> None:
        self._start_sweep(self.time_s)

    def _abort(self, _: Call) -> None:
        self.sweep = None

    def _read_event(self, _: Call) -> str:
        event, self.operation_event = self.operation_event, 0
        return str(event)

    def _set_sweep_mode(self, call: Call) -> None:
        text = call.arg().upper()
        code = _SWEEP_MODES.get(text, int(text) if text in ("1", "2", "3", "4") else None)
        if code is None:
            raise illegal_value()
        self.setup.sweep_mode = code

    # wavelength axis ----------------------------------------------------------------------------

    def _center_m(self) -> float:
        return (self.setup.start_m + self.setup.stop_m) / 2

    def _span_m(self) -> float:
        return self.setup.stop_m - self.setup.start_m

    def _set_window(self, center_m: float, span_m: float) -> None:
        if not (CENTER_RANGE_M[0] <= center_m <= CENTER_RANGE_M[1]
                and SPAN_RANGE_M[0] <= span_m <= SPAN_RANGE_M[1]):
            raise data_out_of_range()
        self.setup.start_m, self.setup.stop_m = center_m - span_m / 2, center_m + span_m / 2

    def _set_center(self, call: Call) -> None:
        self._set_window(call.number(0, _WAVELENGTH_UNITS), self._span_m())

    def _set_span(self, call: Call) -> None:
        self._set_window(self._center_m(), call.number(0, _WAVELENGTH_UNITS))

    def _set_start(self, call: Call) -> None:
        start_m = call.number(0, _WAVELENGTH_UNITS)
        self._set_window((start_m + self.setup.stop_m) / 2, self.setup.stop_m - start_m)

    def _set_stop(self, call: Call) -> None:
        stop_m = call.number(0, _WAVELENGTH_UNITS)
        self._set_window((self.setup.start_m + stop_m) / 2, stop_m - self.setup.start_m)

    # detection ----------------------------------------------------------------------------------

    def _set_resolution(self, call: Call) -> None:
        value_nm = call.number(0, _WAVELENGTH_UNITS) * 1e9
        if not RESOLUTIONS_NM[0] * 0.999 <= value_nm <= RESOLUTIONS_NM[-1] * 1.001:
            raise data_out_of_range()
        nearest = min(RESOLUTIONS_NM, key=lambda r: abs(math.log(r / value_nm)))
        self.setup.resolution_m = nearest * 1e-9

    def _set_points(self, call: Call) -> None:
        value = call.number()
        if not value.is_integer() or not POINTS_RANGE[0] <= value <= POINTS_RANGE[1]:
            raise data_out_of_range()
        self.setup.points = int(value)

    def _set_sensitivity(self, call: Call) -> None:
        text = call.arg().upper()
        names = [s.name for s in SENSITIVITIES]
        if text in ("NORMAL", "NORM"):
            text = "NORM"
        if text in names:
            self.setup.sensitivity = names.index(text)
        elif text.isdigit() and int(text) < len(names):
            self.setup.sensitivity = int(text)
        else:
            raise illegal_value()

    def _set_speed(self, call: Call) -> None:
        self.setup.double_speed = call.boolean()

    # traces, format, markers --------------------------------------------------------------------

    def _set_format(self, call: Call) -> None:
        key = tuple(arg.upper() for arg in call.args)
        if key[:1] == ("ASC",):
            key = ("ASCII",)
        if key not in _FORMATS:
            raise illegal_value()
        self.setup.data_format = _FORMATS[key]

    def _trace(self, call: Call) -> _Trace:
        name = call.arg().upper()
        if name not in self.traces:
            raise illegal_value()
        return self.traces[name]

    def _trace_data(self, call: Call, x_axis: bool) -> str | bytes:
        trace = self._trace(call)
        values = trace.wavelength_m if x_axis else trace.level_dbm
        if len(call.args) == 3:
            first, last = int(call.number(1)), int(call.number(2))
            if not 1 <= first <= last <= values.size:
                raise data_out_of_range()
            values = values[first - 1: last]
        elif len(call.args) != 1:
            raise missing_parameter()
        if self.setup.data_format == "ASCII":
            return _sci_list(values)
        return _block(values, "<f8" if self.setup.data_format == "REAL,64" else "<f4")

    def _set_active(self, call: Call) -> None:
        self._trace(call)  # an unknown trace raises
        self.setup.active_trace = call.arg().upper()

    def _marker_to_peak(self, _: Call) -> None:
        trace = self.traces[self.setup.active_trace]
        if trace.level_dbm.size == 0:
            raise ScpiError(-200, "Execution error")
        peak = int(np.argmax(trace.level_dbm))
        self.marker = (float(trace.wavelength_m[peak]), float(trace.level_dbm[peak]))

    def _reference_to_peak(self, call: Call) -> None:
        self._marker_to_peak(call)
        assert self.marker is not None
        self.setup.reference_level_dbm = float(np.clip(self.marker[1], *_REFERENCE_RANGE_DBM))

    def _marker(self, call: Call) -> tuple[float, float]:
        if call.arg().strip() != "0":  # only the moving marker is modelled
            raise illegal_value()
        if self.marker is None:
            raise ScpiError(-200, "Execution error")
        return self.marker

    def _set_reference(self, call: Call) -> None:
        value = call.number(0, {"DBM": 1.0})
        if not _REFERENCE_RANGE_DBM[0] <= value <= _REFERENCE_RANGE_DBM[1]:
            raise data_out_of_range()
        self.setup.reference_level_dbm = value


class _Stage(Enum):
    CONNECTED = auto()  # waiting for OPEN "<user>"
    PASSWORD = auto()  # waiting for the password
    READY = auto()  # logged in: commands run


class LanSession:
    """One LAN connection: the login handshake, then commands to the shared instrument."""

    def __init__(self, osa: AQ6370Emulator) -> None:
        self.osa = osa
        self.stage = _Stage.CONNECTED
        self.user = ""

    def handle(self, message: str) -> str | bytes | None:
        if self.stage is _Stage.READY:
            if message.upper() == "CLOSE":
                self.stage = _Stage.CONNECTED
                return None
            return self.osa.execute(message)
        if self.stage is _Stage.PASSWORD:
            accepted = self.osa.accepts(self.user, message)
            self.stage = _Stage.READY if accepted else _Stage.CONNECTED
            return "ready" if accepted else None
        login = re.fullmatch(r'OPEN\s+"([^"]*)"', message, re.IGNORECASE)
        if login is None:
            return None
        self.user, self.stage = login[1], _Stage.PASSWORD
        return "AUTHENTICATE CRAM-MD5."
