"""A small SCPI command interpreter for emulated instruments: headers, queries, the error queue.

An emulator declares its commands as data, a table of ``Command(pattern, query, write)``; patterns
use SCPI notation (``:WAVelength[:CW]``, ``INPut#:COUNter?``): upper-case letters are the short
form, the whole word the long form, ``[...]`` an optional node and ``#`` a numeric suffix.
Errors follow IEEE 488.2 / SCPI-99 codes and go to the queue that ``SYST:ERR?`` reads.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

NO_ERROR = '0,"No error"'
_QUEUE_LENGTH = 30  # SCPI requires at least 2; real instruments keep tens


class ScpiError(Exception):
    """An error the instrument puts in its queue (code and message as the standard names them)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f'{code},"{message}"')
        self.code = code


def undefined_header() -> ScpiError:
    return ScpiError(-113, "Undefined header")


def data_out_of_range() -> ScpiError:
    return ScpiError(-222, "Data out of range")


def illegal_value() -> ScpiError:
    return ScpiError(-224, "Illegal parameter value")


def data_type_error() -> ScpiError:
    return ScpiError(-104, "Data type error")


def missing_parameter() -> ScpiError:
    return ScpiError(-109, "Missing parameter")


@dataclass(frozen=True)
class Call:
    """One parsed program message unit: its arguments and any numeric header suffixes."""

    args: tuple[str, ...]
    suffixes: tuple[int, ...] = ()

    def arg(self, index: int = 0) -> str:
        if index >= len(self.args):
            raise missing_parameter()
        return self.args[index]

    def number(self, index: int = 0, units: dict[str, float] | None = None) -> float:
        """Argument ``index`` as a number, scaled by a unit suffix from ``units`` (e.g. NM)."""
        text = self.arg(index).strip()
        match = re.fullmatch(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)", text)
        if not match:
            raise data_type_error()
        unit = match[2].upper()
        scale = (units or {}).get(unit) if unit else 1.0
        if scale is None:
            raise ScpiError(-131, "Invalid suffix")
        return float(match[1]) * scale

    def boolean(self, index: int = 0) -> bool:
        text = self.arg(index).strip().upper()
        if text in ("1", "ON"):
            return True
        if text in ("0", "OFF"):
            return False
        raise illegal_value()


Reply = str | bytes  # bytes for IEEE 488.2 binary blocks
Query = Callable[[Call], Reply]
Write = Callable[[Call], None]


@dataclass(frozen=True)
class Command:
    """One header of the instrument's command tree and what it does."""

    pattern: str
    query: Query | None = None
    write: Write | None = None


def _node_regex(node: str) -> str:
    word = node.rstrip("#")
    short = "".join(ch for ch in word if ch.isupper() or ch.isdigit() or ch in "*_")
    forms = sorted({short.upper(), word.upper()}, key=len, reverse=True)
    alternatives = "|".join(re.escape(form) for form in forms)
    suffix = r"(\d*)" if node.endswith("#") else ""
    return f"(?:{alternatives}){suffix}"


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Regex matching every legal spelling of a SCPI header pattern."""
    regex = ""
    for optional, node in re.findall(r"(\[?):?([*A-Za-z0-9_#]+)\]?", pattern):
        piece = (":?" if regex or pattern.startswith(":") else "") + _node_regex(node)
        regex += f"(?:{piece})?" if optional else piece
    return re.compile(f":?{regex}", re.I)


@dataclass
class ScpiParser:
    """Runs program messages against a command table and keeps the error queue."""

    commands: Sequence[Command]
    errors: deque[ScpiError] = field(default_factory=lambda: deque(maxlen=_QUEUE_LENGTH))

    def __post_init__(self) -> None:
        self._compiled = [(compile_pattern(c.pattern), c) for c in self.commands]
        self._compiled.append((compile_pattern(":SYSTem:ERRor[:NEXT]"), Command("", self._next)))
        self._compiled.append((compile_pattern("*CLS"), Command("", write=self._clear)))

    def handle(self, message: str) -> Reply | None:
        """Execute one program message (units separated by ';'); return the reply, if any."""
        replies: list[Reply] = []
        for unit in _absolute_units(message):
            try:
                reply = self._execute(unit)
            except ScpiError as exc:
                self.push(exc)
                continue
            if reply is not None:
                replies.append(reply)
        if not replies:
            return None
        if all(isinstance(r, str) for r in replies):
            return ";".join(str(r) for r in replies)
        return b";".join(r if isinstance(r, bytes) else r.encode("ascii") for r in replies)

    def push(self, error: ScpiError) -> None:
        """Queue an error (when full, SCPI overwrites the newest with -350 Queue overflow)."""
        if len(self.errors) == self.errors.maxlen:
            self.errors[-1] = ScpiError(-350, "Queue overflow")
        else:
            self.errors.append(error)

    def _execute(self, unit: str) -> Reply | None:
        header, _, rest = unit.partition(" ")
        is_query = header.endswith("?")
        header = header.rstrip("?")
        for regex, command in self._compiled:
            match = regex.fullmatch(header)
            if match:
                call = Call(_split_args(rest), tuple(int(g or 1) for g in match.groups()))
                handler = command.query if is_query else command.write
                if handler is None:
                    raise undefined_header()
                return handler(call)
        raise undefined_header()

    def _next(self, _: Call) -> str:
        return str(self.errors.popleft()) if self.errors else NO_ERROR

    def _clear(self, _: Call) -> None:
        self.errors.clear()


def _absolute_units(message: str) -> list[str]:
    """Every unit of a compound message with its full header path (IEEE 488.2 7.6.1).

    A header without a leading colon continues the path of the previous unit
    (``SOUR:TEMP:LCON:GAIN 1;INT 0.1``); common commands (``*...``) leave the path alone.
    """
    path = ""
    units = []
    for unit in filter(None, (u.strip() for u in message.split(";"))):
        header, space, rest = unit.partition(" ")
        if not header.startswith("*"):
            header = header[1:] if header.startswith(":") else path + header
            path = header.rpartition(":")[0] + ":" if ":" in header else ""
        units.append(header + space + rest)
    return units


def _split_args(text: str) -> tuple[str, ...]:
    text = text.strip()
    if not text:
        return ()
    if text.startswith("#"):  # a binary block is one argument
        return (text,)
    return tuple(part.strip() for part in text.split(","))
