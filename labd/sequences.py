"""Scripted procedures as validated data: ``sequences/*.toml``, their plan, and their runner.

A file has a ``[sequence]`` header (``name``, ``description``), a ``[parameters]`` table of named
values whose names end in their unit (``sweep_speed_pm_per_s``), and ``[[steps]]``, each a ``kind``
with its fields (the ``*Step`` models below). A value written ``"$name"`` is the parameter
``name``, type-checked once substituted; where both the parameter's name and the field carry a unit
(``rate_per_s`` of ``wavelength_nm`` is in nm/s), the two must measure the same thing and the value
is converted (10 pm/s becomes 0.01 nm/s). ``call`` runs another file, found relative to the calling
file's folder, with parameter overrides; a file that calls itself, directly or not, is refused.

Every problem is one line naming the file, the step and the field, e.g.
``sequences/x.toml: steps[3] (sweep): rate_per_s: Input should be greater than 0``.

:func:`run_sequence` drives a :class:`Procedures` (the daemon's) step by step; it holds no safety
logic: the daemon wraps it.
"""

from __future__ import annotations

import asyncio
import math
import operator
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Protocol, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from drivers.roles import parameter as role_parameter
from labd.config import StationConfig

# --- units -------------------------------------------------------------------------------------


class Unit(NamedTuple):
    """What a unit measures, its power of ten against that quantity's base unit, its symbol."""

    dimension: str
    exponent: int
    symbol: str


# Temperatures: K is used for differences (tolerances, steps), so K and degC convert 1:1.
_UNITS: dict[str, Unit] = {
    "pm": Unit("length", -12, "pm"), "nm": Unit("length", -9, "nm"), "um": Unit("length", -6, "um"),
    "us": Unit("time", -6, "us"), "ms": Unit("time", -3, "ms"), "s": Unit("time", 0, "s"),
    "uw": Unit("power", -6, "uW"), "mw": Unit("power", -3, "mW"), "w": Unit("power", 0, "W"),
    "mk": Unit("temperature", -3, "mK"), "k": Unit("temperature", 0, "K"),
    "c": Unit("temperature", 0, "degC"),
    "hz": Unit("frequency", 0, "Hz"), "mhz": Unit("frequency", 6, "MHz"),
    "ghz": Unit("frequency", 9, "GHz"), "thz": Unit("frequency", 12, "THz"),
    "db": Unit("ratio_db", 0, "dB"), "dbm": Unit("power_dbm", 0, "dBm"),
    "v": Unit("voltage", 0, "V"),
}
_SECOND = _UNITS["s"]


def unit_of(name: str) -> Unit | None:
    """The unit a name ends in (``settle_s``, ``speed_pm_per_s``; a last ``_min``/``_max`` is
    skipped), or None."""
    words = name.lower().split("_")
    if len(words) > 1 and words[-1] in ("min", "max"):
        words = words[:-1]
    if len(words) >= 3 and words[-2] == "per" and words[-3] in _UNITS and words[-1] in _UNITS:
        top, bottom = _UNITS[words[-3]], _UNITS[words[-1]]
        return Unit(f"{top.dimension}/{bottom.dimension}", top.exponent - bottom.exponent,
                    f"{top.symbol}/{bottom.symbol}")
    return _UNITS.get(words[-1])


def _per_second(unit: Unit) -> Unit:
    return Unit(f"{unit.dimension}/time", unit.exponent, f"{unit.symbol}/s")


# --- values ------------------------------------------------------------------------------------

Scalar = bool | int | float | str
Number = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
Reading = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")]


def _scalar(value: Any) -> Scalar:
    if isinstance(value, str) and value.startswith("$"):
        raise ValueError(f"{value} names no parameter")
    if isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise ValueError("Input should be a finite number, a boolean or a string")


def _number_or_bool(value: Any) -> float | bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    raise ValueError("Input should be a finite number or a boolean")


def _setpoint(value: Any) -> float | Literal["current"]:
    if value == "current":
        return "current"
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ValueError('Input should be a power in mW above 0, or "current"')


ScalarValue = Annotated[Scalar, PlainValidator(_scalar)]
SetValue = Annotated[float | bool, PlainValidator(_number_or_bool)]
Setpoint = Annotated[float | Literal["current"], PlainValidator(_setpoint)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- steps -------------------------------------------------------------------------------------


class _Step(_Strict):
    name: str | None = None
    timeout_s: Positive | None = None


class SetStep(_Step):
    """Write ``instrument.parameter`` (in the parameter's own unit)."""

    kind: Literal["set"]
    instrument: Name
    parameter: Name
    value: SetValue


class RampStep(_Step):
    """Move ``instrument.parameter`` to ``to`` at ``rate_per_s`` (parameter unit per second)."""

    kind: Literal["ramp"]
    instrument: Name
    parameter: Name
    to: Number
    rate_per_s: Positive


class ShiftStep(_Step):
    """Move ``instrument.parameter`` by ``by`` from where it is, at ``rate_per_s``."""

    kind: Literal["shift"]
    instrument: Name
    parameter: Name
    by: Number
    rate_per_s: Positive


class SweepStep(_Step):
    """Sweep ``instrument.parameter`` from ``start`` to ``stop`` while recording readings."""

    kind: Literal["sweep"]
    instrument: Name
    parameter: Name
    start: Number
    stop: Number
    rate_per_s: Positive
    step: Positive
    record: list[Reading] = Field(default_factory=list)
    #: The laser's own continuous sweep at ``rate_per_s`` (a hardware speed) instead of set-point
    #: steps; ``step`` is then the spacing of the recorded readings.
    continuous: bool = False

    @model_validator(mode="after")
    def _span(self) -> Self:
        if self.start == self.stop:
            raise ValueError("stop: equals start")
        if self.step > abs(self.stop - self.start):
            raise ValueError("step: larger than the sweep's span")
        return self


class WaitStep(_Step):
    """Wait ``seconds``."""

    kind: Literal["wait"]
    seconds: NonNegative


Op = Literal["<", "<=", ">", ">=", "within"]
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


class WaitUntilStep(_Step):
    """Poll ``instrument.parameter`` until ``op value`` (``within`` ``tolerance``) has held for
    ``hold_s``; ``timeout_s`` is required."""

    kind: Literal["wait_until"]
    instrument: Name
    parameter: Name
    op: Op
    value: Number
    tolerance: Positive | None = None
    timeout_s: Positive
    poll_s: Positive = 0.5
    hold_s: NonNegative = 0.0

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.op == "within" and self.tolerance is None:
            raise ValueError("tolerance: required with op 'within'")
        if self.op != "within" and self.tolerance is not None:
            raise ValueError("tolerance: only used with op 'within'")
        if self.hold_s >= self.timeout_s:
            raise ValueError("hold_s: must be shorter than timeout_s")
        return self

    def holds(self, reading: float | bool) -> bool:
        """Whether a reading meets the condition."""
        if self.op == "within":
            assert self.tolerance is not None
            return abs(float(reading) - self.value) <= self.tolerance
        return _COMPARE[self.op](float(reading), self.value)

    def condition(self) -> str:
        """The condition in words, with units."""
        unit = unit_of(self.parameter)
        if self.op == "within":
            assert self.tolerance is not None
            return f"within {_quantity(self.tolerance, unit)} of {_quantity(self.value, unit)}"
        return f"{self.op} {_quantity(self.value, unit)}"


class EstimateStep(_Step):
    """Estimate the soliton number from measurements; fail outside the expected range."""

    kind: Literal["estimate"]
    min_soliton_number: Annotated[int, Field(ge=0)] | None = None
    max_soliton_number: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _range(self) -> Self:
        low, high = self.min_soliton_number, self.max_soliton_number
        if low is not None and high is not None and low > high:
            raise ValueError("max_soliton_number: below min_soliton_number")
        return self


class StepDownUntilStep(_Step):
    """Tune backwards one step at a time until ``soliton_number`` solitons remain.

    ``pump_wavelength`` steps the pump to the blue by ``step_pm``; ``tec`` warms the chip by
    ``step_k`` per step. Each step is followed by ``settle_s``; at most ``max_steps`` steps.
    """

    kind: Literal["step_down_until"]
    soliton_number: Annotated[int, Field(ge=1)]
    actuator: Literal["pump_wavelength", "tec"]
    step_pm: Positive | None = None
    step_k: Positive | None = None
    settle_s: NonNegative
    max_steps: Annotated[int, Field(ge=1)]

    @model_validator(mode="after")
    def _step_for_actuator(self) -> Self:
        wanted, other = ("step_pm", "step_k") if self.actuator == "pump_wavelength" else (
            "step_k", "step_pm")
        if getattr(self, wanted) is None:
            raise ValueError(f"{wanted}: required with actuator {self.actuator!r}")
        if getattr(self, other) is not None:
            raise ValueError(f"{other}: not used with actuator {self.actuator!r}")
        return self

    @property
    def step(self) -> float:
        """The step in the actuator's unit: pm of pump wavelength, or K of TEC set-point."""
        value = self.step_pm if self.actuator == "pump_wavelength" else self.step_k
        assert value is not None
        return value


class Criteria(_Strict):
    """What a single soliton must show; unset criteria are not checked."""

    min_lines_20db: Annotated[int, Field(ge=1)] | None = None
    max_envelope_residual_db: Positive | None = None
    spacing_ghz: Positive | None = None
    spacing_tolerance_ghz: Positive | None = None
    bandwidth_3db_thz_min: Positive | None = None

    @model_validator(mode="after")
    def _meaningful(self) -> Self:
        if not self.model_dump(exclude_none=True):
            raise ValueError("at least one criterion is required")
        if (self.spacing_tolerance_ghz is None) != (self.spacing_ghz is None):
            raise ValueError("spacing_ghz and spacing_tolerance_ghz go together")
        return self


class VerifyStep(_Step):
    """Measure the comb and fail unless every criterion holds."""

    kind: Literal["verify"]
    criteria: Criteria


class Relief(_Strict):
    """The lock's outer loop: once the actuator sits beyond ``at_fraction`` of its output range, the
    pump moves ``step_pm`` (at most once per ``interval_s``) the way that lets it come back, so
    slow laser drift never drives the lock into its limits."""

    step_pm: Positive
    at_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.6
    interval_s: Positive = 2.0


class LockStep(_Step):
    """Start the PID that holds the comb power at ``setpoint_mw`` (``"current"``: the power at
    lock time). Output and gains are in pm of aux wavelength (``aux_wavelength``) or K of TEC
    set-point (``tec``), offsets from where the actuator is when the lock starts; gains per mW.
    With ``relief``, the pump takes over what drifts beyond the actuator's range."""

    kind: Literal["lock"]
    actuator: Literal["aux_wavelength", "tec"]
    kp: Number
    ki: Number = 0.0
    kd: Number = 0.0
    output_min: Number
    output_max: Number
    setpoint_mw: Setpoint = "current"
    relief: Relief | None = None

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if self.output_min >= self.output_max:
            raise ValueError("output_max: must be above output_min")
        if self.kp == self.ki == self.kd == 0:
            raise ValueError("kp, ki, kd: all zero")
        return self


class CallStep(_Step):
    """Run another sequence file with some of its parameters overridden."""

    kind: Literal["call"]
    file: str
    parameters: dict[str, ScalarValue] = Field(default_factory=dict)

    @field_validator("file")
    @classmethod
    def _relative_toml(cls, value: str) -> str:
        if not value.endswith(".toml") or Path(value).is_absolute():
            raise ValueError("a .toml file, relative to this file's folder")
        return value


Step = Annotated[
    SetStep | RampStep | ShiftStep | SweepStep | WaitStep | WaitUntilStep | EstimateStep
    | StepDownUntilStep | VerifyStep | LockStep | CallStep,
    Field(discriminator="kind"),
]
_STEP: TypeAdapter[Step] = TypeAdapter(Step)


class _Header(_Strict):
    name: Name
    description: Annotated[str, Field(min_length=1)]


# --- loading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sequence:
    """A validated sequence: header, parameter values in force, steps, and each call's target."""

    name: str
    description: str
    source: str
    parameters: Mapping[str, Scalar]
    steps: tuple[Step, ...]
    calls: Mapping[int, Sequence] = field(default_factory=dict)  # by index of the call step


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a sequence file: the file, the step, the field, what."""

    file: str
    where: str  # "steps[3] (sweep)", or "" for the file as a whole
    key: str  # dotted field path within ``where``, or ""
    message: str

    def __str__(self) -> str:
        return ": ".join(part for part in (self.file, self.where, self.key, self.message) if part)


class SequenceError(Exception):
    """A sequence that cannot be run, with every problem found (one line each)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


def load_sequence(path: str | Path, text: str | None = None, *,
                  station: StationConfig | None = None,
                  overrides: Mapping[str, Scalar] | None = None) -> Sequence:
    """Read and validate a sequence file and every file it calls; raise SequenceError.

    ``text``, if given, is the file's content (``path`` then names it in messages and is where
    its calls are resolved from). With ``station``, instruments, parameters, value types and
    limits are checked against it too. ``overrides`` replace parameter values, as a call's do.
    """
    return _Loader(station).load(str(path), text, (), overrides or {})


Loc = tuple[str | int, ...]
_KEYS = frozenset({"sequence", "parameters", "steps"})
_IN_PARAMETER_UNIT = frozenset({"value", "to", "by", "start", "stop", "step", "tolerance",
                                "rate_per_s"})
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _label(index: int, kind: object, name: object) -> str:
    what = " ".join(
        part for part in (kind if isinstance(kind, str) else "", f'"{name}"' if name else "")
        if part)
    return f"steps[{index}] ({what})" if what else f"steps[{index}]"


def _kind_of(value: Scalar) -> str:
    return ("boolean" if isinstance(value, bool) else "string" if isinstance(value, str)
            else "number")


class _Loader:
    def __init__(self, station: StationConfig | None) -> None:
        self.station = station

    def load(self, source: str, text: str | None, stack: tuple[Path, ...],
             overrides: Mapping[str, Scalar]) -> Sequence:
        try:
            data = tomllib.loads(Path(source).read_text(encoding="utf-8") if text is None else text)
        except OSError as exc:
            raise SequenceError([Problem(source, "", "", f"cannot read: {exc.strerror}")]) from exc
        except tomllib.TOMLDecodeError as exc:
            raise SequenceError([Problem(source, "", "", f"TOML syntax: {exc}")]) from exc
        problems: list[Problem] = []

        def report(where: str, key: str, message: str) -> None:
            problems.append(Problem(source, where, key, message))

        for key in sorted(data.keys() - _KEYS):
            report("", key, "unknown key")
        header = self._header(data.get("sequence"), report)
        params = self._parameters(data.get("parameters", {}), overrides, report)
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            report("", "steps", "at least one [[steps]] table is required")
            raw_steps = []
        steps: list[Step] = []
        calls: dict[int, Sequence] = {}
        here = Path(source).resolve()
        for index, raw in enumerate(raw_steps):
            if not isinstance(raw, dict):
                report(f"steps[{index}]", "", "expected a table")
                continue
            where = _label(index, raw.get("kind"), raw.get("name"))
            step = self._step(raw, params, partial(report, where))
            if step is None:
                continue
            steps.append(step)
            if isinstance(step, CallStep):
                target = Path(source).parent / step.file
                if target.resolve() in (*stack, here):
                    chain = [p.name for p in (*stack, here)] + [target.name]
                    report(where, "file", f"recursive call: {' -> '.join(chain)}")
                    continue
                try:
                    calls[index] = self.load(str(target), None, (*stack, here), step.parameters)
                except SequenceError as exc:
                    problems += [Problem(source, where, "", str(p)) for p in exc.problems]
        if problems or header is None:
            raise SequenceError(problems)
        return Sequence(header.name, header.description, source, params, tuple(steps), calls)

    @staticmethod
    def _header(raw: Any, report: Callable[[str, str, str], None]) -> _Header | None:
        if raw is None:
            report("", "sequence", "required table is missing")
            return None
        try:
            return _Header.model_validate(raw)
        except ValidationError as exc:
            for loc, message in _messages(exc, tagged=False):
                report("", _dotted(("sequence", *loc)), message)
            return None

    @staticmethod
    def _parameters(raw: Any, overrides: Mapping[str, Scalar],
                    report: Callable[[str, str, str], None]) -> dict[str, Scalar]:
        if not isinstance(raw, dict):
            report("", "parameters", "expected a table")
            return {}
        params: dict[str, Scalar] = {}
        for key, value in raw.items():
            try:
                params[key] = _scalar(value)
            except ValueError as exc:
                report("", f"parameters.{key}", str(exc))
            if not _NAME.fullmatch(key):
                report("", f"parameters.{key}", "names are lower_case identifiers")
        for key, value in overrides.items():
            if key not in params:
                report("", f"parameters.{key}", "no such parameter to override")
            elif _kind_of(value) != _kind_of(params[key]):
                report("", f"parameters.{key}", f"overridden with {value!r}, not a "
                       f"{_kind_of(params[key])} like its default {params[key]!r}")
            else:
                params[key] = value
        return params

    def _step(self, raw: dict[str, Any], params: Mapping[str, Scalar],
              report: Callable[[str, str], None]) -> Step | None:
        refs: dict[Loc, str] = {}
        bad: set[Loc] = set()
        resolved = dict(raw)

        def substitute(value: Any, loc: Loc) -> Any:
            if isinstance(value, dict):
                return {k: substitute(v, (*loc, k)) for k, v in value.items()}
            if isinstance(value, list):
                return [substitute(v, (*loc, j)) for j, v in enumerate(value)]
            if not (isinstance(value, str) and value.startswith("$")):
                return value
            ref = value[1:]
            if ref not in params:
                report(_dotted(loc), f"unknown parameter {value} (parameters: "
                       f"{', '.join(params) or 'none'})")
                bad.add(loc)
                return value
            refs[loc] = value
            found = params[ref]
            source, target = unit_of(ref), _field_unit(resolved, loc)
            if isinstance(found, bool) or not isinstance(found, int | float) or not (
                    source and target):
                return found
            if source.dimension != target.dimension:
                report(_dotted(loc), f"unit mismatch: {value} is in {source.symbol}, "
                       f"this field in {target.symbol}")
                bad.add(loc)
                return value
            return found if source.exponent == target.exponent else (
                found * 10.0 ** (source.exponent - target.exponent))

        # The parameter first: the unit of value, to, start, ... follows from its name.
        for key in sorted(resolved, key=lambda k: k != "parameter"):
            if key not in ("kind", "name"):
                resolved[key] = substitute(resolved[key], (key,))
        try:
            step = _STEP.validate_python(resolved)
        except ValidationError as exc:
            for loc, message in _messages(exc, tagged=True):
                if loc not in bad:
                    origin = f" (from {refs[loc]})" if loc in refs else ""
                    report(_dotted(loc), message + origin)
            return None
        if bad:
            return None
        if self.station is not None:
            for key, message in _station_problems(step, self.station):
                report(key, message)
        return step


def _field_unit(step: Mapping[str, Any], loc: Loc) -> Unit | None:
    """The unit a field of a (raw) step is in: its own name's, or its instrument parameter's."""
    key = loc[-1]
    if not isinstance(key, str):
        return None
    if len(loc) == 1 and key in _IN_PARAMETER_UNIT and step.get("kind") in (
            "set", "ramp", "shift", "sweep", "wait_until"):
        name = step.get("parameter")
        unit = unit_of(name) if isinstance(name, str) else None
        return _per_second(unit) if unit and key == "rate_per_s" else unit
    return _SECOND if key == "seconds" else unit_of(key)


def _messages(exc: ValidationError, tagged: bool) -> list[tuple[Loc, str]]:
    """(field path, message) per pydantic error, the union tag of a step left out."""
    out: list[tuple[Loc, str]] = []
    for error in exc.errors():
        kind, ctx = error["type"], error.get("ctx", {})
        if kind == "union_tag_not_found":
            out.append((("kind",), "required key is missing"))
            continue
        if kind == "union_tag_invalid":
            out.append((("kind",), f"unknown kind {ctx['tag']!r} (kinds: {ctx['expected_tags']})"))
            continue
        loc = tuple(error["loc"][1:] if tagged else error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        elif not isinstance(error.get("input"), dict | list):
            message += f" (got {error['input']!r})"
        if not loc and ": " in message:  # a model check naming its field: "tolerance: ..."
            key, message = message.split(": ", 1)
            loc = (key,)
        out.append((loc, message))
    return out


def _station_problems(step: Step, station: StationConfig) -> list[tuple[str, str]]:
    """(field, message) for names, types and limits the station does not have."""
    match step:
        case SetStep():
            return _parameter_problems(station, step.instrument, step.parameter, True, False,
                                       {"value": step.value})
        case RampStep():
            return _parameter_problems(station, step.instrument, step.parameter, True, True,
                                       {"to": step.to})
        case ShiftStep():
            return _parameter_problems(station, step.instrument, step.parameter, True, True, {})
        case SweepStep():
            problems = _parameter_problems(station, step.instrument, step.parameter, True, True,
                                           {"start": step.start, "stop": step.stop})
            for index, reading in enumerate(step.record):
                instrument, name = reading.split(".")
                problems += [(f"record[{index}]", message) for _, message in
                             _parameter_problems(station, instrument, name, False, True, {})]
            return problems
        case WaitUntilStep():
            return _parameter_problems(station, step.instrument, step.parameter, False, True, {})
    return []


def _parameter_problems(station: StationConfig, instrument: str, name: str, write: bool,
                        numeric: bool, values: Mapping[str, float | bool]
                        ) -> list[tuple[str, str]]:
    config = station.instruments.get(instrument)
    if config is None:
        return [("instrument", f"no instrument {instrument!r} in the station "
                 f"({', '.join(station.instruments)})")]
    spec = role_parameter(config.role, name)
    if spec is None:
        return [("parameter", f"a {config.role} has no parameter {name!r}")]
    if write and not spec.writable:
        return [("parameter", f"{instrument}.{name} is read-only")]
    if numeric and spec.type is bool:
        return [("parameter", f"{instrument}.{name} is a boolean, not a number")]
    problems = []
    limits = config.limits.get(name)
    for key, value in values.items():
        if isinstance(value, bool) != (spec.type is bool):
            wanted = "boolean" if spec.type is bool else "number"
            problems.append((key, f"{instrument}.{name} takes a {wanted}"))
        elif limits and not isinstance(value, bool) and not limits[0] <= value <= limits[1]:
            problems.append((key, f"{_num(value)} is outside the limits [{_num(limits[0])}, "
                             f"{_num(limits[1])}] {spec.unit} of {instrument}.{name}"))
    return problems


# --- plan --------------------------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:.10g}"


def _quantity(value: float | bool, unit: Unit | None) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{_num(value)} {unit.symbol}" if unit else _num(value)


_ACTUATOR_UNIT = {"pump_wavelength": "pm", "tec": "K", "aux_wavelength": "pm"}


def plan(seq: Sequence) -> str:
    """A human-readable plan: one line per step with its units, called sequences indented."""
    return "\n".join(_plan_lines(seq, ""))


def _plan_lines(seq: Sequence, indent: str) -> list[str]:
    lines = [f"{indent}{seq.name} ({seq.source}): {' '.join(seq.description.split())}"]
    for index, step in enumerate(seq.steps):
        text = f"{indent}  {index:>2}  {describe(step)}"
        if step.timeout_s is not None and not isinstance(step, WaitUntilStep):
            text += f" (timeout {_num(step.timeout_s)} s)"
        lines.append(text + (f"  -- {step.name}" if step.name else ""))
        if isinstance(step, CallStep):
            lines += _plan_lines(seq.calls[index], indent + "      ")
    return lines


def describe(step: Step) -> str:
    """One step in words, with units."""
    match step:
        case SetStep():
            return (f"set {step.instrument}.{step.parameter} = "
                    f"{_quantity(step.value, unit_of(step.parameter))}")
        case RampStep():
            unit = unit_of(step.parameter)
            rate = _quantity(step.rate_per_s, _per_second(unit) if unit else None)
            return (f"ramp {step.instrument}.{step.parameter} to {_quantity(step.to, unit)} "
                    f"at {rate}")
        case ShiftStep():
            unit = unit_of(step.parameter)
            rate = _quantity(step.rate_per_s, _per_second(unit) if unit else None)
            return (f"shift {step.instrument}.{step.parameter} by {_quantity(step.by, unit)} "
                    f"at {rate}")
        case SweepStep():
            unit = unit_of(step.parameter)
            rate = _quantity(step.rate_per_s, _per_second(unit) if unit else None)
            record = f", recording {', '.join(step.record)}" if step.record else ""
            how = "continuously, a reading every" if step.continuous else "in steps of"
            return (f"sweep {step.instrument}.{step.parameter} {_num(step.start)} -> "
                    f"{_quantity(step.stop, unit)} at {rate} {how} "
                    f"{_quantity(step.step, unit)}{record}")
        case WaitStep():
            return f"wait {_num(step.seconds)} s"
        case WaitUntilStep():
            hold = f"held {_num(step.hold_s)} s, " if step.hold_s else ""
            return (f"wait until {step.instrument}.{step.parameter} {step.condition()} "
                    f"({hold}polled every {_num(step.poll_s)} s, at most "
                    f"{_num(step.timeout_s)} s)")
        case EstimateStep():
            expect = _expectation(step)
            return "estimate the soliton number" + (f" (expect {expect})" if expect else "")
        case StepDownUntilStep():
            how = ("tuning the pump back to the blue" if step.actuator == "pump_wavelength"
                   else "warming the chip with the TEC")
            return (f"step down to {step.soliton_number} soliton(s) by {how} in steps of "
                    f"{_num(step.step)} {_ACTUATOR_UNIT[step.actuator]}, settling "
                    f"{_num(step.settle_s)} s each, at most {step.max_steps} steps")
        case VerifyStep():
            return "verify " + _criteria(step.criteria)
        case LockStep():
            at = ("the power at lock time" if isinstance(step.setpoint_mw, str)
                  else f"{_num(step.setpoint_mw)} mW")
            relief = "" if step.relief is None else (
                f", the pump relieving it by {_num(step.relief.step_pm)} pm beyond "
                f"{_num(100 * step.relief.at_fraction)} % of that, at most every "
                f"{_num(step.relief.interval_s)} s")
            return (f"lock the comb power at {at} with the {step.actuator} (kp {_num(step.kp)}, "
                    f"ki {_num(step.ki)}, kd {_num(step.kd)}; output {_num(step.output_min)} to "
                    f"{_num(step.output_max)} {_ACTUATOR_UNIT[step.actuator]}{relief})")
        case CallStep():
            overrides = ", ".join(f"{key} = {value!r}" for key, value in step.parameters.items())
            return f"call {step.file}" + (f" with {overrides}" if overrides else "")
    raise AssertionError(step)


def _expectation(step: EstimateStep) -> str:
    low, high = step.min_soliton_number, step.max_soliton_number
    if low is not None and high is not None:
        return f"{low} to {high}" if low != high else str(low)
    return f">= {low}" if low is not None else f"<= {high}" if high is not None else ""


def _criteria(c: Criteria) -> str:
    parts = []
    if c.min_lines_20db is not None:
        parts.append(f">= {c.min_lines_20db} lines with 20 dB SNR")
    if c.max_envelope_residual_db is not None:
        parts.append(f"envelope residual <= {_num(c.max_envelope_residual_db)} dB")
    if c.spacing_ghz is not None and c.spacing_tolerance_ghz is not None:
        parts.append(f"spacing {_num(c.spacing_ghz)} +- {_num(c.spacing_tolerance_ghz)} GHz")
    if c.bandwidth_3db_thz_min is not None:
        parts.append(f"3-dB bandwidth >= {_num(c.bandwidth_3db_thz_min)} THz")
    return ", ".join(parts)


# --- running -----------------------------------------------------------------------------------


class Procedures(Protocol):
    """What the runner needs of the daemon (which adds leases, limits and safety around it)."""

    async def set(self, instrument: str, parameter: str, value: float | bool) -> object: ...

    async def get(self, instrument: str, parameter: str) -> float | bool: ...

    async def ramp(self, instrument: str, parameter: str, target: float,
                   rate_per_s: float) -> object: ...

    async def shift(self, instrument: str, parameter: str, by: float,
                    rate_per_s: float) -> object: ...

    async def sweep(self, instrument: str, parameter: str, start: float, stop: float,
                    rate_per_s: float, step: float, record: list[str],
                    continuous: bool) -> object: ...

    async def wait(self, seconds: float) -> object: ...

    async def estimate(self) -> dict[str, Any]: ...

    async def step_down_until(self, soliton_number: int, actuator: str, step: float,
                              settle_s: float, max_steps: int) -> int: ...

    async def verify(self, criteria: Criteria) -> dict[str, Any]: ...

    async def lock(self, actuator: str, kp: float, ki: float, kd: float, output_min: float,
                   output_max: float, setpoint_mw: float | None,
                   relief: Relief | None = None) -> object: ...


Status = Literal["completed", "abort", "timeout", "error", "failed"]


@dataclass(frozen=True)
class RunResult:
    """How a run ended; unless completed, which step stopped it and why.

    ``status``: ``abort`` (the event), ``timeout`` (a step's ``timeout_s``, or a ``wait_until``
    never met), ``error`` (a procedure raised: its message), ``failed`` (an estimate, step-down
    or verify did not find what the step asks for).
    """

    status: Status
    message: str
    step: str | None  # "single_soliton steps[9] (call) > recover steps[5] (sweep)"
    path: tuple[int, ...]  # the indices of that step, outermost first
    results: list[tuple[str, Any]]  # what each step's procedure returned, if not None

    @property
    def ok(self) -> bool:
        return self.status == "completed"


OnStep = Callable[[int, Step, str], None]


async def run_sequence(seq: Sequence, procedures: Procedures, abort: asyncio.Event,
                       on_step: OnStep) -> RunResult:
    """Run the steps in order and stop at the first that does not succeed.

    ``on_step(index, step, status)`` is told ``start`` and then ``done``, ``abort``, ``timeout``,
    ``error``, ``failed`` or ``cancelled`` (an enclosing call stopped) for every step, the steps
    of a called sequence with their own indices, between their call step's ``start`` and end.
    Setting ``abort`` cancels the step in progress; the run returns once it has stopped.
    """
    runner = _Runner(procedures, abort, on_step)
    try:
        await runner.run(seq)
    except _Stop as stop:
        return RunResult(stop.status, stop.message, " > ".join(label for _, label in stop.where),
                         tuple(index for index, _ in stop.where), runner.results)
    return RunResult("completed", f"{seq.name}: all {len(seq.steps)} steps done", None, (),
                     runner.results)


class _Stop(Exception):
    def __init__(self, status: Status, message: str, where: tuple[tuple[int, str], ...]) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.where = where


class _Runner:
    def __init__(self, procedures: Procedures, abort: asyncio.Event, on_step: OnStep) -> None:
        self.procedures = procedures
        self.abort = abort
        self.on_step = on_step
        self.stack: list[tuple[int, str]] = []  # the steps in progress, outermost first
        self.results: list[tuple[str, Any]] = []
        self.reading: float | bool | None = None  # last value a wait_until read

    def where(self) -> tuple[tuple[int, str], ...]:
        return tuple(self.stack)

    async def run(self, seq: Sequence) -> None:
        for index, step in enumerate(seq.steps):
            self.stack.append((index, f"{seq.name} {_label(index, step.kind, step.name)}"))
            if self.abort.is_set():
                raise _Stop("abort", "aborted before this step started", self.where())
            self.on_step(index, step, "start")
            try:
                value = await self._guarded(seq, index, step)
            except _Stop as stop:
                self.on_step(index, step, stop.status)
                raise
            except asyncio.CancelledError:
                self.on_step(index, step, "cancelled")
                raise
            self.on_step(index, step, "done")
            if value is not None:
                self.results.append((" > ".join(label for _, label in self.stack), value))
            self.stack.pop()

    async def _guarded(self, seq: Sequence, index: int, step: Step) -> Any:
        """The step's outcome, within its timeout and (but for calls, whose steps watch it
        themselves) until the abort event."""
        task = asyncio.ensure_future(self._execute(seq, index, step))
        waiting = [task]
        if not isinstance(step, CallStep):
            waiting.append(asyncio.ensure_future(self.abort.wait()))
        try:
            await asyncio.wait(waiting, timeout=step.timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                try:
                    return task.result()
                except _Stop:
                    raise
                except Exception as exc:
                    raise _Stop("error", str(exc) or type(exc).__name__, self.where()) from exc
            if self.abort.is_set():
                raise _Stop("abort", "aborted during this step", self.where())
            raise _Stop("timeout", self._timeout_message(step), self.where())
        finally:
            pending = [t for t in waiting if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending)

    def _timeout_message(self, step: Step) -> str:
        assert step.timeout_s is not None
        if isinstance(step, WaitUntilStep):
            last = "none" if self.reading is None else _quantity(self.reading,
                                                                 unit_of(step.parameter))
            return (f"{step.instrument}.{step.parameter} {step.condition()} not met within "
                    f"{_num(step.timeout_s)} s (last reading {last})")
        what = f"the call of {step.file}" if isinstance(step, CallStep) else "the step"
        return f"{what} did not finish within its timeout_s of {_num(step.timeout_s)} s"

    async def _execute(self, seq: Sequence, index: int, step: Step) -> Any:
        p = self.procedures
        match step:
            case SetStep():
                return await p.set(step.instrument, step.parameter, step.value)
            case RampStep():
                return await p.ramp(step.instrument, step.parameter, step.to, step.rate_per_s)
            case ShiftStep():
                return await p.shift(step.instrument, step.parameter, step.by, step.rate_per_s)
            case SweepStep():
                return await p.sweep(step.instrument, step.parameter, step.start, step.stop,
                                     step.rate_per_s, step.step, list(step.record),
                                     step.continuous)
            case WaitStep():
                return await p.wait(step.seconds)
            case WaitUntilStep():
                return await self._wait_until(step)
            case EstimateStep():
                return self._check_estimate(step, await p.estimate())
            case StepDownUntilStep():
                final = await p.step_down_until(step.soliton_number, step.actuator, step.step,
                                                step.settle_s, step.max_steps)
                if final != step.soliton_number:
                    raise _Stop("failed", f"{final} soliton(s) left, not {step.soliton_number}, "
                                f"after at most {step.max_steps} steps", self.where())
                return final
            case VerifyStep():
                report = await p.verify(step.criteria)
                if report.get("ok") is not True:
                    measured = ", ".join(f"{k} {v}" for k, v in report.items() if k != "ok")
                    raise _Stop("failed", f"criteria not met ({_criteria(step.criteria)}); "
                                f"measured: {measured or 'nothing'}", self.where())
                return report
            case LockStep():
                setpoint = None if isinstance(step.setpoint_mw, str) else step.setpoint_mw
                return await p.lock(step.actuator, step.kp, step.ki, step.kd, step.output_min,
                                    step.output_max, setpoint, step.relief)
            case CallStep():
                await self.run(seq.calls[index])
                return None
        raise AssertionError(step)

    async def _wait_until(self, step: WaitUntilStep) -> float | bool:
        loop = asyncio.get_running_loop()
        self.reading = None
        since: float | None = None  # when the condition started to hold
        while True:
            self.reading = await self.procedures.get(step.instrument, step.parameter)
            if step.holds(self.reading):
                since = loop.time() if since is None else since
                if loop.time() - since >= step.hold_s:
                    return self.reading
            else:
                since = None
            await asyncio.sleep(step.poll_s)

    def _check_estimate(self, step: EstimateStep, found: dict[str, Any]) -> dict[str, Any]:
        number = found.get("soliton_number")
        if not isinstance(number, int):
            raise _Stop("error", f"the estimate has no soliton_number: {found}", self.where())
        low, high = step.min_soliton_number, step.max_soliton_number
        if (low is not None and number < low) or (high is not None and number > high):
            raise _Stop("failed", f"soliton number {number}, expected {_expectation(step)}",
                        self.where())
        return found
