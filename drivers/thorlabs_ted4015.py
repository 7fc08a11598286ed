"""Thorlabs TED4015 TEC controller (the chip's temperature), Series 4000 SCPI over USB-TMC, LF.

pymeasure has no driver for it (only the PRO8000 cards), so ``TED4015`` declares the commands it
needs; ``TED4015Tec`` adapts it to the ``Tec`` role: set-point and reading in degC, set-point
written to the controller's 0.01 K resolution, errors from the queue raised after every set.

The unit sometimes ignores the first message after a connection, so connecting probes with
``*IDN?`` (short timeout, bounded attempts, late answers read away between attempts) before
anything else is sent.
"""

from __future__ import annotations

from typing import Any

from pymeasure.instruments import Instrument, SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set

from drivers.errors import (
    InstrumentError,
    InstrumentTimeout,
    RaiseQueuedErrors,
    talking,
)
from drivers.visa import low_latency

_UNIT_OF_REPLY = {"CEL": "C", "K": "K", "FAR": "F"}
_IDN_ATTEMPTS = 4  # as SweepMe's Series 4000 driver does for the same quirk
_PROBE_TIMEOUT_S = 0.5  # the unit answers *IDN? in milliseconds once it listens
_DRAIN_TIMEOUT_MS = 50


def _loop_constant(name: str, unit: str) -> Any:
    return Instrument.control(
        f"SOUR:TEMP:LCON:{name}?", f"SOUR:TEMP:LCON:{name} %g",
        f"""Control the temperature loop's {name} constant ({unit}).""",
        check_set_errors=True,
    )


def _output_state(reply: Any) -> bool:
    if reply not in (0, 1):
        raise ValueError(f"output state {reply!r} is neither 0 nor 1")
    return bool(reply)


def _unit(reply: str) -> str:
    if reply not in _UNIT_OF_REPLY:
        raise ValueError(f"unknown temperature unit {reply!r}")
    return _UNIT_OF_REPLY[reply]


class TED4015(RaiseQueuedErrors, SCPIMixin, Instrument):
    """Thorlabs TED4015 temperature controller: set-point, reading, output, PID constants."""

    def __init__(self, adapter: Any, name: str = "Thorlabs TED4015", **kwargs: Any) -> None:
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        super().__init__(adapter, name, **kwargs)

    temperature_setpoint = Instrument.control(
        "SOUR:TEMP?", "SOUR:TEMP %.2fC",
        """Control the temperature set-point (degC with ``UNIT:TEMP C``), written to 0.01 K.""",
        check_set_errors=True,
    )
    temperature = Instrument.measurement(
        "MEAS:TEMP?", """Get the measured temperature (degC with ``UNIT:TEMP C``).""",
    )
    output_enabled = Instrument.control(
        "OUTP?", "OUTP %s",
        """Control whether the TEC output (the temperature loop) is on.""",
        validator=strict_discrete_set, values=(True, False),
        set_process=lambda on: "ON" if on else "OFF", get_process=_output_state,
        check_set_errors=True,
    )
    temperature_unit = Instrument.control(
        "UNIT:TEMP?", "UNIT:TEMP %s",
        """Control the unit of temperatures on the wire: ``C``, ``K`` or ``F``.""",
        validator=strict_discrete_set, values=("C", "K", "F"),
        get_process=_unit, cast=str, check_set_errors=True,
    )
    pid_gain = _loop_constant("GAIN", "A/K")
    pid_integral = _loop_constant("INT", "A/(K s)")
    pid_derivative = _loop_constant("DER", "A s/K")
    pid_period = _loop_constant("PER", "s")



class TED4015Tec:
    """The ``Tec`` role on a TED4015: set-point and temperature in degC, loop on/off.

    ``safe_state()`` leaves the loop as it is: regulating at its set-point if it was on. Switching
    the TEC off is not safe for a chip that may still carry watts of pump: without the loop the
    mount drifts towards ambient plus the absorbed power over tens of seconds, with nothing
    removing that heat. The daemon darkens the sources first (EDFA, lasers); once they are off
    the regulated chip carries no load and stays at a known temperature, which also spares the
    glued fibre coupling thermal cycling.
    """

    def __init__(self, resource: str, name: str, timeout_s: float = 2.0, *,
                 probe_timeout_s: float = _PROBE_TIMEOUT_S) -> None:
        self.name = name
        with talking(name, "connect"):
            self.device = TED4015(resource, name=name, visa_library="@py",
                                  timeout=int(timeout_s * 1000))
            low_latency(self.device.adapter)
        self.identity = self._identify(probe_timeout_s, timeout_s)
        with talking(name, "UNIT:TEMP"):
            self.device.temperature_unit = "C"

    def _identify(self, probe_timeout_s: float, timeout_s: float) -> str:
        """Ask ``*IDN?`` until the unit answers (it may ignore the first message)."""
        connection = self.device.adapter.connection
        try:
            for _ in range(_IDN_ATTEMPTS):
                connection.timeout = int(min(probe_timeout_s, timeout_s) * 1000)
                try:
                    with talking(self.name, "*IDN?"):
                        identity = str(self.device.id)
                except InstrumentTimeout:
                    self._discard_late_replies()
                    continue
                if ",TED4015," not in identity.upper():
                    raise InstrumentError(self.name, f"not a TED4015: {identity!r}", "*IDN?")
                return identity
        finally:
            connection.timeout = int(timeout_s * 1000)
        raise InstrumentTimeout(self.name, f"no answer after {_IDN_ATTEMPTS} attempts", "*IDN?")

    def _discard_late_replies(self) -> None:
        """Read away an answer that comes after its probe timed out, so it cannot answer the next.

        A bounded read, not a VISA clear: pyvisa-py's clear() on a socket the peer has closed
        loops forever.
        """
        self.device.adapter.connection.timeout = _DRAIN_TIMEOUT_MS
        try:
            while True:
                with talking(self.name, "*IDN?"):
                    self.device.read()
        except InstrumentTimeout:
            pass

    @property
    def setpoint_c(self) -> float:
        with talking(self.name, "SOUR:TEMP?"):
            return float(self.device.temperature_setpoint)

    @setpoint_c.setter
    def setpoint_c(self, value: float) -> None:
        with talking(self.name, "SOUR:TEMP"):
            self.device.temperature_setpoint = value

    @property
    def temperature_c(self) -> float:
        with talking(self.name, "MEAS:TEMP?"):
            return float(self.device.temperature)

    @property
    def output_enabled(self) -> bool:
        with talking(self.name, "OUTP?"):
            return bool(self.device.output_enabled)

    @output_enabled.setter
    def output_enabled(self, value: bool) -> None:
        with talking(self.name, "OUTP"):
            self.device.output_enabled = value

    def safe_state(self) -> None:
        """Keep the chip regulated: no command (see the class docstring)."""

    def close(self) -> None:
        self.device.adapter.close()
