"""Thorlabs MBX modulator bias controller: ASCII over RS-232 (115200 8N1) behind a terminal server.

Sources: Thorlabs' remote-control guide for the MX/MBX series (TTN116413 rev. E: its syntax rules,
return codes and VOA pages), pymeasure's ``ThorlabsMBXSeries`` and an independent MX10B driver
(the MZM headers and their units; where the MZM headers' short forms are not known, they are
guessed from those spellings [I]):

- headers have a short (upper-case) and a long form, nothing in between: ``MZM:HOLD:VOLT`` or
  ``MZM:HOLD:VOLTAGE``; a setting is ``<header>: <value>`` (colon, then an optional space);
- queries answer the value alone: integers for the hold voltage (mV), the power ratio
  (hundredths of a percent) and the dither (mVpp), decimals otherwise;
- failures answer ``Err: <reason>`` (``Undefined header``, ``Data out of range``, ``Data type
  error``, ``Execution error``), as the guide's return-code table lists.

Where the sources disagree, pymeasure's unmodified driver decides. The guide says settings
answer ``1``; pymeasure reads a reply only after ``VOA:MODE`` and ``MZM:RESET`` (the MX10B driver
none after the MZM settings either), so settings are silent here on success and those two answer
``1``. The guide says replies end with LF; pymeasure reads to CR; replies end with CR here. The
guide's VOA attenuation range (1 to 20 dB) is kept, though pymeasure lets 0.5 dB through.
The MBX keeps no error queue (``SYST:ERR?`` is an undefined header): an error is its reply.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from sim_backends.faults import Faults
from sim_backends.scpi import compile_pattern
from sim_backends.world.modulator import BiasMode, MbxBiasController


class MbxError(Exception):
    """A failure the MBX answers with ``Err: <reason>``."""


def _integer(text: str, low: int, high: int) -> int:
    if not re.fullmatch(r"\s*[-+]?\d+\s*", text):
        raise MbxError("Data type error")
    value = int(text)
    if not low <= value <= high:
        raise MbxError("Data out of range")
    return value


def _decimal(text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise MbxError("Data type error") from None
    if not low <= value <= high:
        raise MbxError("Data out of range")
    return value


@dataclass(frozen=True)
class _Command:
    """One header: its query, its setting (taking the argument text), whether a setting answers."""

    pattern: str
    query: Callable[[], str] | None = None
    write: Callable[[str], None] | None = None
    acknowledged: bool = False


class MBXEmulator:
    """One MBX driving the bias of a modulator of the simulated world (and its own VOA)."""

    read_terminator = b"\r"
    write_terminator = b"\r"

    def __init__(self, controller: MbxBiasController, sync: Callable[[], float],
                 serial: str = "M00734212", firmware: str = "1.9.5") -> None:
        self.controller = controller
        self.sync = sync
        self.serial = serial
        self.firmware = firmware
        self.rgb = {"POWER": 1, "RED": 50, "GREEN": 50, "BLUE": 50, "WHITE": 50}
        self.faults = Faults()
        self._injected: tuple[str, int] | None = None  # reason, commands to let pass first
        self._commands = [(compile_pattern(c.pattern), c) for c in self._table()]

    def new_session(self) -> MBXEmulator:
        return self  # the MBX keeps no per-connection state

    def inject_error(self, reason: str = "Execution error", after: int = 0) -> None:
        """Make a command fail with ``Err: <reason>`` (the next one, or the one ``after`` more
        commands from now), as the unit does when it is not in run mode."""
        self._injected = (reason, after)

    def handle(self, message: str) -> str | None:
        """Answer one command: a value, ``1``, nothing, or ``Err: <reason>``."""
        self.sync()
        try:
            self._fail_if_injected()
            return self._execute(message.strip())
        except MbxError as exc:
            return f"Err: {exc}"

    def _fail_if_injected(self) -> None:
        if self._injected is None:
            return
        reason, after = self._injected
        self._injected = (reason, after - 1) if after else None
        if not after:
            raise MbxError(reason)

    def _execute(self, text: str) -> str | None:
        if text.endswith("?"):
            query = self._find(text[:-1]).query
            if query is None:
                raise MbxError("Undefined header")
            return query()
        command, argument = self._split_setting(text)
        if command.write is None:
            raise MbxError("Undefined header")
        command.write(argument)
        return "1" if command.acknowledged else None

    def _split_setting(self, text: str) -> tuple[_Command, str]:
        """``MZM:RESET`` takes no argument; ``MZM:MODE: 3`` is header, colon, argument."""
        try:
            return self._find(text), ""
        except MbxError:
            header, _, argument = text.rpartition(":")
            return self._find(header), argument.strip()

    def _find(self, header: str) -> _Command:
        for regex, command in self._commands:
            if regex.fullmatch(header):
                return command
        raise MbxError("Undefined header")

    def _table(self) -> list[_Command]:
        bias = self.controller
        modulator, voa = bias.modulator, bias.voa
        return [
            _Command("*IDN", lambda: f"Thorlabs,MBX,{self.serial},{self.firmware}"),
            _Command("SYStem:MODEL", lambda: "MBX"),
            _Command("SYStem:SERial", lambda: self.serial),
            _Command("SYStem:FIRMware", lambda: self.firmware),
            _Command("MZM:MODE", lambda: str(int(bias.mode)),
                     lambda a: bias.set_mode(BiasMode(_integer(a, 0, 9)))),
            _Command("MZM:HOLD:VOLTage", lambda: str(round(bias.hold_v * 1000)),
                     lambda a: bias.set_hold_v(_integer(a, -10_000, 10_000) / 1000)),
            _Command("MZM:HOLD:RATio", lambda: str(round(bias.power_ratio * 10_000)),
                     self._set_ratio),
            _Command("MZM:DITHer:AMPLitude", lambda: str(round(bias.dither_vpp * 1000)),
                     self._set_dither),
            _Command("MZM:VOLTage", lambda: f"{modulator.bias_v:.3f}"),
            _Command("MZM:TAP:MW", lambda: f"{bias.tap_power_mw():.6f}"),
            _Command("MZM:TAP:DBM", lambda: _dbm(bias.tap_power_mw())),
            _Command("MZM:SETpoint", lambda: str(int(bias.locked))),
            _Command("MZM:CALibrating", lambda: str(int(bias.calibrating))),
            _Command("MZM:RESET", write=lambda _: bias.start_calibration(), acknowledged=True),
            _Command("VOA:POWer", lambda: str(int(voa.enabled)),
                     lambda a: setattr(voa, "enabled", bool(_integer(a, 0, 1)))),
            _Command("VOA:MODE", lambda: str(int(voa.constant_power)),
                     lambda a: setattr(voa, "constant_power", bool(_integer(a, 0, 1))),
                     acknowledged=True),
            _Command("VOA:ATTen", lambda: f"{voa.attenuation_setpoint_db:.2f}",
                     lambda a: setattr(voa, "attenuation_setpoint_db", _decimal(a, 1.0, 20.0))),
            _Command("VOA:OUTput:MW", lambda: f"{voa.power_setpoint_mw:.2f}",
                     lambda a: setattr(voa, "power_setpoint_mw", _decimal(a, 0.01, 100.0))),
            _Command("VOA:MEASured", lambda: f"{voa.attenuation_db:.2f}"),
            _Command("VOA:ERRor", lambda: f"{self._voa_error_db():.2f}"),
            _Command("VOA:SETpoint", lambda: str(int(abs(self._voa_error_db()) <= 0.1))),
            _Command("VOA:TAP:MW", lambda: f"{bias.output_light.total_power_mw:.6f}"),
            *(self._rgb_command(colour, 0, 100) for colour in ("RED", "GREEN", "BLUE", "WHITE")),
            self._rgb_command("POWer", 0, 2),
        ]

    def _rgb_command(self, name: str, low: int, high: int) -> _Command:
        key = name.upper()
        return _Command(f"RGB:{name}", lambda: str(self.rgb[key]),
                        lambda a: self.rgb.__setitem__(key, _integer(a, low, high)))

    def _set_ratio(self, argument: str) -> None:
        self.controller.power_ratio = _integer(argument, 250, 10_000) / 10_000

    def _set_dither(self, argument: str) -> None:
        bias = self.controller
        bias.dither_vpp = _integer(argument, 20, 2000) / 1000
        if bias.modulator.dither_v:
            bias.modulator.dither_v = bias.dither_vpp / 2

    def _voa_error_db(self) -> float:
        """Measured minus wanted: attenuation in attenuation mode, output power in power mode."""
        voa = self.controller.voa
        if not voa.constant_power:
            return voa.attenuation_db - voa.attenuation_setpoint_db
        output_mw = self.controller.output_light.total_power_mw
        return 10 * math.log10(max(output_mw, 1e-9) / voa.power_setpoint_mw)


def _dbm(power_mw: float) -> str:
    return f"{10 * math.log10(power_mw) if power_mw > 0 else -60.0:.2f}"
