"""Yokogawa AQ6370D optical spectrum analyser (the OSA) over LAN: socket 10001, CR+LF, login.

pymeasure's ``AQ6370D`` does the talking. Over LAN it needs four things it does not do itself,
supplied here without changing it:

* given a ``TCPIP::host::10001::SOCKET`` string it passes ``port=10001`` to pyvisa, which refuses
  it ("'port' is not a valid attribute for type TCPIPSocket"), so the adapter is opened here;
* its ``authenticate_ethernet`` asserts the reply ``READY``; the instrument answers ``ready``;
* it writes the centre wavelength with ``%g`` (six digits: 10 pm at 1.5 um), here to 0.1 pm;
* its ``get_binary_data`` leaves the CR+LF that ends a binary block unread; it is read here.

Traces come as IEEE blocks of little-endian float64 (``:FORMat:DATA REAL,64``): 8 bytes a point
instead of ~ 16 ASCII characters, and no parsing.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pyvisa
from numpy.typing import NDArray
from pymeasure.adapters import VISAAdapter
from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_range
from pymeasure.instruments.yokogawa.aq6370series import AQ6370D

from drivers.errors import (
    InstrumentError,
    InstrumentTimeout,
    RaiseQueuedErrors,
    talking,
)
from drivers.visa import low_latency

_DIGITS_NM = 5  # 0.01 pm: below the 0.1 pm written, above float noise
_TRACE = "TRA"  # the trace a sweep writes at power-up


class LanAQ6370D(RaiseQueuedErrors, AQ6370D):
    """pymeasure's AQ6370D with the LAN login as the instrument speaks it, and errors that raise."""

    wavelength_center = Instrument.control(
        ":SENSe:WAVelength:CENTer?",
        ":SENSe:WAVelength:CENTer %.7e",
        """Control the centre wavelength (float in m), written to 0.1 pm.""",
        validator=strict_range,
        values=[600e-9, 1700e-9],
        dynamic=True,
    )

    def authenticate_ethernet(self, username: str, password: str = "") -> None:
        """Log in: ``OPEN "user"``, then the password; the instrument answers ``ready``."""
        command = f'OPEN "{username}"'
        challenge = self.ask(command).strip()
        if challenge != "AUTHENTICATE CRAM-MD5.":
            raise InstrumentError(self.name, f"login refused: {challenge!r}", command)
        answer = self.ask(password).strip()
        if answer.lower() != "ready":
            raise InstrumentError(self.name, f"password refused: {answer!r}", "password")



class AQ6370Osa:
    """The ``Osa`` role on an AQ6370D: window and resolution in nm, one single sweep a trace."""

    def __init__(
        self,
        resource: str,
        name: str,
        timeout_s: float = 5.0,
        user: str = "anonymous",
        password: str = "",
        sweep_timeout_s: float = 300.0,
        poll_interval_s: float = 0.05,
    ) -> None:
        self.name = name
        self.sweep_timeout_s = sweep_timeout_s
        self.poll_interval_s = poll_interval_s
        with talking(name, "connect"):
            adapter = VISAAdapter(resource, visa_library="@py", read_termination="\r\n",
                                  write_termination="\r\n", timeout=int(timeout_s * 1000))
            low_latency(adapter)
        try:
            self.device = LanAQ6370D(adapter, name=name)
            with talking(name, "login"):
                self.device.authenticate_ethernet(user, password)
            with talking(name, ":FORMat:DATA"):
                self.device.transfer_format = "REAL,64"
        except Exception:
            adapter.close()
            raise

    @property
    def center_nm(self) -> float:
        with talking(self.name, ":SENS:WAV:CENT?"):
            return round(float(self.device.wavelength_center) * 1e9, _DIGITS_NM)

    @center_nm.setter
    def center_nm(self, value: float) -> None:
        self._set(":SENS:WAV:CENT", "wavelength_center", value * 1e-9)

    @property
    def span_nm(self) -> float:
        with talking(self.name, ":SENS:WAV:SPAN?"):
            return round(float(self.device.wavelength_span) * 1e9, _DIGITS_NM)

    @span_nm.setter
    def span_nm(self, value: float) -> None:
        self._set(":SENS:WAV:SPAN", "wavelength_span", value * 1e-9)

    @property
    def resolution_nm(self) -> float:
        with talking(self.name, ":SENS:BWID:RES?"):
            return round(float(self.device.resolution_bandwidth) * 1e9, _DIGITS_NM)

    @resolution_nm.setter
    def resolution_nm(self, value: float) -> None:
        # via the decimal text, so that 0.02 nm is exactly pymeasure's listed 0.02e-9 m
        self._set(":SENS:BWID:RES", "resolution_bandwidth", float(f"{round(value, 6)}e-9"))

    @property
    def points(self) -> float:
        with talking(self.name, ":SENS:SWE:POIN?"):
            return float(self.device.sample_number)

    @points.setter
    def points(self, value: float) -> None:
        self._set(":SENS:SWE:POIN", "sample_number", round(value))

    def read_trace(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Run one single sweep, wait for it, return (wavelength_nm, power_dbm)."""
        with talking(self.name, ":INIT"):
            self.device.sweep_mode = "SINGLE"
            self.device.initiate_sweep()
            self.device.check_set_errors()
        with talking(self.name, ":STAT:OPER:COND?"):
            try:
                self.device.wait_for_sweep_complete(timeout=self.sweep_timeout_s,
                                                    delay=self.poll_interval_s)
            except TimeoutError as exc:  # pymeasure's own: the sweep, not the connection
                raise InstrumentTimeout(
                    self.name, f"sweep not complete after {self.sweep_timeout_s} s") from exc
        wavelength_m = self._read_block("X")
        power_dbm = self._read_block("Y")
        if wavelength_m.size != power_dbm.size:
            raise InstrumentError(self.name, f"{wavelength_m.size} wavelengths but "
                                  f"{power_dbm.size} levels", f":TRACe:Y? {_TRACE}")
        return wavelength_m * 1e9, power_dbm

    def safe_state(self) -> None:
        """Nothing to do: an OSA emits no light."""

    def close(self) -> None:
        """End the LAN session, then the connection."""
        with contextlib.suppress(pyvisa.errors.VisaIOError, OSError):
            self.device.write("CLOSE")
        self.device.adapter.close()

    def _set(self, command: str, prop: str, value: float) -> None:
        with talking(self.name, command):
            try:
                setattr(self.device, prop, value)
            except ValueError as exc:  # pymeasure's validator: nothing was sent
                raise InstrumentError(self.name, f"refused by the driver: {exc}",
                                      command) from exc
            self.device.check_set_errors()

    def _read_block(self, axis: str) -> NDArray[np.float64]:
        command = f":TRACe:{axis}? {_TRACE}"
        with talking(self.name, command):
            self.device.write(command)
            try:
                values = self.device.get_binary_data(64)
            except AssertionError as exc:  # pymeasure checks the block header by assert
                raise InstrumentError(self.name, f"no binary block: {exc}", command) from exc
            end = self.device.read_bytes(2)
            if end != b"\r\n":
                raise InstrumentError(self.name, f"block ends with {end!r}, not CR LF", command)
        return np.asarray(values, dtype=np.float64)
