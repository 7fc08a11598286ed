"""Typed failures of a conversation with an instrument, each naming the instrument and command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyvisa
from pyvisa import constants


class InstrumentError(Exception):
    """Something went wrong talking to ``instrument`` while sending ``command``."""

    def __init__(self, instrument: str, detail: str, command: str | None = None) -> None:
        super().__init__(detail)
        self.instrument = instrument
        self.detail = detail
        self.command = command

    def __str__(self) -> str:
        where = f" during {self.command!r}" if self.command else ""
        return f"{self.instrument}{where}: {self.detail}"


class InstrumentReportedError(InstrumentError):
    """The instrument itself reported an error (for SCPI: an entry of its error queue)."""


class InstrumentTimeout(InstrumentError):
    """No complete reply within the timeout."""


class ConnectionLost(InstrumentError):
    """The connection was refused, closed or broken."""


@contextmanager
def talking(instrument: str, command: str) -> Iterator[None]:
    """Translate transport and instrument failures inside the block into typed errors."""
    try:
        yield
    except InstrumentError as exc:
        exc.command = exc.command or command
        raise
    except pyvisa.errors.VisaIOError as exc:
        if exc.error_code == constants.StatusCode.error_timeout:
            raise InstrumentTimeout(instrument, "no reply before the timeout", command) from exc
        raise ConnectionLost(instrument, exc.description, command) from exc
    except (ConnectionError, OSError, EOFError) as exc:
        raise ConnectionLost(instrument, str(exc) or type(exc).__name__, command) from exc
    except ValueError as exc:  # a reply pymeasure could not parse
        raise InstrumentError(instrument, f"unreadable reply: {exc}", command) from exc


class RaiseQueuedErrors:
    """pymeasure mixin for SCPI instruments: after a set, the error queue raises, not logs.

    Put it first among the bases; it uses the instrument's ``check_errors`` and ``name``.
    """

    name: str
    if TYPE_CHECKING:  # pymeasure's SCPIMixin provides it; a stub here would shadow it

        def check_errors(self) -> list[Any]: ...

    def check_set_errors(self) -> list[Any]:
        errors: list[Any] = self.check_errors()
        if errors:
            queue = "; ".join(f"{int(code)},{','.join(map(str, text))}" for code, *text in errors)
            raise InstrumentReportedError(self.name, queue)
        return errors
