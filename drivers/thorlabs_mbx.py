"""Thorlabs MBX bias controller of the intensity modulator, ASCII over RS-232 or a terminal server.

pymeasure's own ``ThorlabsMBXSeries`` does the talking. Two things of the MBX shape this module:

- it answers a failed command with ``Err: <reason>`` instead of keeping an error queue, so reads
  here raise ``InstrumentReportedError`` on such a reply;
- it is silent after a good setting and answers a bad one, so every setting here is followed by a
  query read back: the errors queued before that reply are raised, and the reply is consumed.

pymeasure opens its connection with ``baud_rate``, which pyvisa refuses for a TCP socket; the
adapter is therefore built here (serial settings only for ``ASRL`` resources) and handed over.

Role semantics: ``bias_v`` is the MANUAL-mode hold voltage; writing it puts the MBX in MANUAL at
that voltage, leaving any lock. ``lock_mode`` chooses a lock (``MzmMode.AUTOQUADPOS`` ...), which
starts with a calibration sweep of a few seconds (``calibrating``); ``locked`` says it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pyvisa
from pymeasure.adapters import VISAAdapter
from pymeasure.instruments.thorlabs.thorlabsmbxseries import MzmMode, ThorlabsMBXSeries
from pyvisa import constants

from drivers.errors import InstrumentError, InstrumentReportedError, talking
from drivers.visa import low_latency

__all__ = ["MBXBias", "MzmMode"]

T = TypeVar("T")

BIAS_RANGE_V = (-10.0, 10.0)  # the MBX's bias output


class MBX(ThorlabsMBXSeries):
    """pymeasure's MBX whose reads raise the ``Err: ...`` replies of failed commands."""

    def read(self, **kwargs: Any) -> str:
        reply: str = super().read(**kwargs)
        if reply.strip().startswith("Err:"):
            raise InstrumentReportedError(self.name, reply.strip())
        return reply


class MBXBias:
    """The ``BiasController`` role on an MBX: hold voltage, applied voltage, tap power, lock."""

    def __init__(self, resource: str, name: str, timeout_s: float = 2.0) -> None:
        self.name = name
        with talking(name, "connect"):
            adapter = VISAAdapter(resource, visa_library="@py", read_termination="\r",
                                  write_termination="\r", timeout=int(timeout_s * 1000),
                                  asrl={"baud_rate": 115200})
            low_latency(adapter)
            self.device = MBX(adapter, name=name)

    @property
    def bias_v(self) -> float:
        """The MANUAL-mode hold voltage (V)."""
        with talking(self.name, "MZM:HOLD:VOLTAGE?"):
            return float(self.device.mzm.voltage_setpoint)

    @bias_v.setter
    def bias_v(self, value: float) -> None:
        """Hold ``value`` volts in MANUAL mode (leaves any lock), to the MBX's 1 mV."""
        low, high = BIAS_RANGE_V
        if not low <= value <= high:
            raise InstrumentError(self.name, f"{value} V is outside the MBX's bias range "
                                  f"{low:g} to {high:g} V", "MZM:HOLD:VOLTAGE")
        with talking(self.name, "MZM:HOLD:VOLTAGE"):
            self.device.mzm.voltage_setpoint = value
            self.device.mzm.mode = MzmMode.MANUAL
            self._read_back(2, lambda: self.device.mzm.voltage_setpoint)

    @property
    def measured_bias_v(self) -> float:
        with talking(self.name, "MZM:VOLTAGE?"):
            return float(self.device.mzm.voltage)

    @property
    def tap_power_mw(self) -> float:
        with talking(self.name, "MZM:TAP:MW?"):
            return float(self.device.mzm.power)

    @property
    def lock_mode(self) -> MzmMode:
        with talking(self.name, "MZM:MODE?"):
            mode: MzmMode = self.device.mzm.mode
            return mode

    @lock_mode.setter
    def lock_mode(self, mode: MzmMode | int) -> None:
        """Choose the bias mode; AUTO and HOLD modes begin with a calibration sweep."""
        with talking(self.name, "MZM:MODE"):
            self.device.mzm.mode = MzmMode(mode)
            self._read_back(1, lambda: self.device.mzm.mode)

    @property
    def locked(self) -> bool:
        """Whether the MBX is at its set-point (locked, in AUTO modes)."""
        with talking(self.name, "MZM:SETPOINT?"):
            return bool(self.device.mzm.is_stable)

    @property
    def calibrating(self) -> bool:
        with talking(self.name, "MZM:CALIBRATING?"):
            return bool(self.device.mzm.is_calibrating)

    def safe_state(self) -> None:
        """Nothing to do: the bias controller drives no light source, and moving the bias would
        only move the modulator's operating point."""

    def close(self) -> None:
        self.device.adapter.close()

    def _read_back(self, settings: int, query: Callable[[], T]) -> T:
        """Read a query after ``settings`` silent settings; raise the first ``Err:`` reply."""
        try:
            return query()
        except InstrumentReportedError:
            self._drain(settings)
            raise

    def _drain(self, pending: int) -> None:
        """Consume replies still due after an error: more errors, then the query's own reply.

        If the error was the query's own reply, nothing more comes and the read times out.
        """
        for _ in range(pending):
            try:
                self.device.read()
            except InstrumentReportedError:
                continue
            except pyvisa.errors.VisaIOError as exc:
                if exc.error_code != constants.StatusCode.error_timeout:
                    raise
            return
