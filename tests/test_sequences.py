"""Sequence files: the shipped ones validate, bad ones are named by file, step and field, the plan
reads with units, and the runner drives a recording test double through every kind of step."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from labd.config import load_config
from labd.sequences import (
    Criteria,
    RunResult,
    Sequence,
    SequenceError,
    Step,
    load_sequence,
    plan,
    run_sequence,
    unit_of,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "sequences").glob("*.toml"))
STATION = load_config(ROOT / "instruments.toml")

HEADER = '[sequence]\nname = "t"\ndescription = "a test"\n'


def problems(tmp_path: Path, body: str, name: str = "x.toml") -> list[str]:
    with pytest.raises(SequenceError) as caught:
        load_sequence(tmp_path / name, HEADER + body, station=STATION)
    return [str(p) for p in caught.value.problems]


# --- the shipped files ---------------------------------------------------------------------------


def test_every_shipped_file_loads_against_the_station() -> None:
    assert {p.name for p in SHIPPED} == {"single_soliton.toml", "step_down.toml", "recover.toml"}
    for path in SHIPPED:
        seq = load_sequence(path, station=STATION)
        assert seq.steps and seq.description
    single = load_sequence(ROOT / "sequences" / "single_soliton.toml")
    recover = single.calls[len(single.steps) - 1]
    assert recover.name == "recover"
    assert recover.calls[len(recover.steps) - 1].name == "step_down"


def test_shipped_numbers_carry_units_and_shared_defaults_agree() -> None:
    for path in SHIPPED:
        seq = load_sequence(path)
        for name, value in seq.parameters.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                assert unit_of(name) or name.endswith(
                    ("_steps", "_lines_20db", "_points", "_fraction")), name
        for index, called in seq.calls.items():  # a caller's values are the callee's defaults
            alone = load_sequence(Path(called.source))
            overridden = seq.steps[index].parameters  # type: ignore[union-attr]
            assert {k: alone.parameters[k] for k in overridden} == overridden


def test_seed_figures_are_in_the_parameters() -> None:
    single = load_sequence(ROOT / "sequences" / "single_soliton.toml")
    down = load_sequence(ROOT / "sequences" / "step_down.toml")
    recover = load_sequence(ROOT / "sequences" / "recover.toml")
    assert single.parameters["edfa_output_w"] == 3.5
    assert recover.parameters["pump_sweep_stop_nm"] == 1556.09
    assert down.parameters["verify_min_lines_20db"] == 200
    assert down.parameters["verify_spacing_ghz"] == 49.0


def test_plan_of_single_soliton_lists_its_steps_with_units() -> None:
    text = plan(load_sequence(ROOT / "sequences" / "single_soliton.toml"))
    lines = text.splitlines()
    assert lines[0].startswith("single_soliton (")
    for expected in (
        "   0  set tec.setpoint_c = 25 degC  -- TEC to its set-point",
        "wait until tec.temperature_c within 0.01 degC of 25 degC (held 2 s",
        "sweep aux.wavelength_nm 1548.9 -> 1549.42 nm at 1 nm/s continuously, a reading every "
        "0.01 nm",
        "wait until edfa.input_mw >= 1 mW",
        "ramp edfa.output_w to 3.5 W at 1 W/s (timeout 30 s)",
        "  17  call recover.toml with tec_setpoint_c = 25.0",
        "sweep pump.wavelength_nm 1555.95 -> 1556.09 nm at 0.05 nm/s in steps of "
        "0.0005 nm, recording power_meter.power_mw",
        "               1  step down to 1 soliton(s) by tuning the pump back to the blue in steps "
        "of 0.1 pm, settling 0.2 s each, at most 600 steps",
        "verify >= 200 lines with 20 dB SNR, envelope residual <= 1 dB, spacing 49 +- 0.5 GHz, "
        "3-dB bandwidth >= 3 THz",
        "lock the comb power at the power at lock time with the aux_wavelength",
    ):
        assert any(expected in line for line in lines), expected
    assert sum(line.lstrip()[:1].isdigit() for line in lines) == 18 + 12 + 5


# --- bad files -----------------------------------------------------------------------------------

SWEEP = """
[[steps]]
kind = "sweep"
instrument = "pump"
parameter = "wavelength_nm"
start = 1555.95
stop = 1556.09
step = 0.0001
"""

BAD = {
    "unknown kind": ('[[steps]]\nkind = "jump"\n',
                     "x.toml: steps[0] (jump): kind: unknown kind 'jump' (kinds: 'set', "),
    "missing kind": ('[[steps]]\nseconds = 1\n', "x.toml: steps[0]: kind: required key is missing"),
    "missing field": ('[[steps]]\nkind = "ramp"\nname = "up"\ninstrument = "edfa"\n'
                      'parameter = "output_w"\nto = 1.0\n',
                      'x.toml: steps[0] (ramp "up"): rate_per_s: required key is missing'),
    "wrong type": ('[[steps]]\nkind = "wait"\nseconds = "long"\n',
                   "x.toml: steps[0] (wait): seconds: Input should be a valid number (got 'long')"),
    "bool for a number": ('[[steps]]\nkind = "wait"\nseconds = true\n',
                          "x.toml: steps[0] (wait): seconds: Input should be a valid number"),
    "unknown key": ('[[steps]]\nkind = "wait"\nseconds = 1\nsecs = 2\n',
                    "x.toml: steps[0] (wait): secs: unknown key"),
    "unknown parameter reference": (
        '[parameters]\nsettle_s = 1.0\n[[steps]]\nkind = "wait"\nseconds = "$settle"\n',
        "x.toml: steps[0] (wait): seconds: unknown parameter $settle (parameters: settle_s)"),
    "referenced value of the wrong type": (
        '[parameters]\nmode = "fast"\n[[steps]]\nkind = "wait"\nseconds = "$mode"\n',
        "x.toml: steps[0] (wait): seconds: Input should be a valid number (got 'fast') "
        "(from $mode)"),
    "negative rate": (SWEEP + "rate_per_s = -1.0\n",
                      "x.toml: steps[0] (sweep): rate_per_s: Input should be greater than 0"),
    "unit mismatch": ('[parameters]\nspeed_mw_per_s = 1.0\n' + SWEEP
                      + 'rate_per_s = "$speed_mw_per_s"\n',
                      "x.toml: steps[0] (sweep): rate_per_s: unit mismatch: $speed_mw_per_s is in "
                      "mW/s, this field in nm/s"),
    "bad op": ('[[steps]]\nkind = "wait_until"\ninstrument = "tec"\nparameter = "temperature_c"\n'
               'op = "="\nvalue = 25.0\ntimeout_s = 10.0\n',
               "x.toml: steps[0] (wait_until): op: Input should be '<', '<=', '>', '>=' or "
               "'within'"),
    "within without tolerance": (
        '[[steps]]\nkind = "wait_until"\ninstrument = "tec"\nparameter = "temperature_c"\n'
        'op = "within"\nvalue = 25.0\ntimeout_s = 10.0\n',
        "x.toml: steps[0] (wait_until): tolerance: required with op 'within'"),
    "step in the wrong unit": (
        '[[steps]]\nkind = "step_down_until"\nsoliton_number = 1\nactuator = "tec"\n'
        'step_pm = 0.1\nsettle_s = 1.0\nmax_steps = 10\n',
        "x.toml: steps[0] (step_down_until): step_k: required with actuator 'tec'"),
    "bad setpoint": ('[[steps]]\nkind = "lock"\nactuator = "tec"\nkp = 1.0\noutput_min = -1.0\n'
                     'output_max = 1.0\nsetpoint_mw = "now"\n',
                     'x.toml: steps[0] (lock): setpoint_mw: Input should be a power in mW above 0, '
                     'or "current"'),
    "no criteria": ('[[steps]]\nkind = "verify"\ncriteria = {}\n',
                    "x.toml: steps[0] (verify): criteria: at least one criterion is required"),
    "unknown instrument": ('[[steps]]\nkind = "set"\ninstrument = "pumpp"\n'
                           'parameter = "power_mw"\nvalue = 1.0\n',
                           "x.toml: steps[0] (set): instrument: no instrument 'pumpp' in the "
                           "station"),
    "read-only parameter": ('[[steps]]\nkind = "set"\ninstrument = "edfa"\n'
                            'parameter = "measured_output_w"\nvalue = 1.0\n',
                            "x.toml: steps[0] (set): parameter: edfa.measured_output_w is "
                            "read-only"),
    "outside the station's limits": (
        '[[steps]]\nkind = "ramp"\ninstrument = "edfa"\nparameter = "output_w"\nto = 5.0\n'
        'rate_per_s = 0.5\n',
        "x.toml: steps[0] (ramp): to: 5 is outside the limits [0, 3.5] W of edfa.output_w"),
    "no steps": ("", "x.toml: steps: at least one [[steps]] table is required"),
    "parameter referencing a parameter": (
        '[parameters]\na_s = 1.0\nb_s = "$a_s"\n[[steps]]\nkind = "wait"\nseconds = 1\n',
        "x.toml: parameters.b_s: $a_s names no parameter"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_file_is_named_by_file_step_and_field(tmp_path: Path, case: str) -> None:
    body, expected = BAD[case]
    found = problems(tmp_path, body)
    assert any(line.startswith(str(tmp_path / expected)) for line in found), found


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    found = problems(tmp_path, '[[steps]]\nkind = "wait"\nseconds = \n')
    assert found == [f"{tmp_path / 'x.toml'}: TOML syntax: Invalid value (at line 6, column 11)"]


def test_every_problem_is_reported_one_a_line(tmp_path: Path) -> None:
    body = ('[[steps]]\nkind = "wait"\nseconds = -1\n'
            '[[steps]]\nkind = "set"\ninstrument = "pump"\nparameter = "power_mw"\n')
    found = problems(tmp_path, body)
    assert [line.removeprefix(f"{tmp_path / 'x.toml'}: ") for line in found] == [
        "steps[0] (wait): seconds: Input should be greater than or equal to 0 (got -1)",
        "steps[1] (set): value: required key is missing",
    ]


def test_recursion_through_calls_is_refused(tmp_path: Path) -> None:
    call = '[[steps]]\nkind = "call"\nfile = "{}"\n'
    (tmp_path / "a.toml").write_text(HEADER + call.format("b.toml"))
    (tmp_path / "b.toml").write_text(HEADER + call.format("a.toml"))
    with pytest.raises(SequenceError) as caught:
        load_sequence(tmp_path / "a.toml")
    assert str(caught.value) == (
        f"{tmp_path / 'a.toml'}: steps[0] (call): {tmp_path / 'b.toml'}: steps[0] (call): file: "
        "recursive call: a.toml -> b.toml -> a.toml")


def test_call_problems_name_both_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.toml").write_text(
        HEADER + '[parameters]\nsettle_s = 1.0\n[[steps]]\nkind = "wait"\nseconds = "$settle_s"\n')
    found = problems(tmp_path, '[[steps]]\nkind = "call"\nfile = "sub/inner.toml"\n'
                     'parameters = { settle_s = "slow", other_s = 1.0 }\n'
                     '[[steps]]\nkind = "call"\nfile = "missing.toml"\n')
    inner, outer = tmp_path / "sub" / "inner.toml", tmp_path / "x.toml"
    assert found == [
        f"{outer}: steps[0] (call): {inner}: parameters.settle_s: overridden with 'slow', "
        "not a number like its default 1.0",
        f"{outer}: steps[0] (call): {inner}: parameters.other_s: no such parameter to override",
        f"{outer}: steps[1] (call): {tmp_path / 'missing.toml'}: cannot read: "
        "No such file or directory",
    ]


def test_references_are_converted_to_the_field_unit(tmp_path: Path) -> None:
    body = ('[parameters]\nspeed_pm_per_s = 10.0\nstep_pm = 0.1\nhold_ms = 500\n' + SWEEP
            .replace("step = 0.0001", 'step = "$step_pm"') + 'rate_per_s = "$speed_pm_per_s"\n'
            '[[steps]]\nkind = "wait"\nseconds = "$hold_ms"\n')
    seq = load_sequence(tmp_path / "x.toml", HEADER + body)
    sweep, wait = seq.steps
    assert sweep.rate_per_s == pytest.approx(0.01)  # type: ignore[union-attr]
    assert sweep.step == pytest.approx(1e-4)  # type: ignore[union-attr]
    assert wait.seconds == pytest.approx(0.5)  # type: ignore[union-attr]


# --- the runner ----------------------------------------------------------------------------------


class FakeBench:
    """A recording test double of the daemon's Procedures."""

    def __init__(self, readings: dict[str, list[float]] | None = None, solitons: int = 3,
                 final: int = 1, verify_ok: bool = True, slow: dict[str, float] | None = None,
                 fail: tuple[str, Exception] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.readings = readings or {}
        self.solitons, self.final, self.verify_ok = solitons, final, verify_ok
        self.slow = slow or {}
        self.fail = fail
        self.cancelled: list[str] = []

    async def _do(self, method: str, *args: Any) -> None:
        self.calls.append((method, *args))
        if self.fail and self.fail[0] == method:
            raise self.fail[1]
        try:
            await asyncio.sleep(self.slow.get(method, 0.0))
        except asyncio.CancelledError:
            self.cancelled.append(method)
            raise

    async def set(self, instrument: str, parameter: str, value: float | bool) -> None:
        await self._do("set", instrument, parameter, value)

    async def get(self, instrument: str, parameter: str) -> float | bool:
        values = self.readings[f"{instrument}.{parameter}"]
        return values.pop(0) if len(values) > 1 else values[0]

    async def ramp(self, instrument: str, parameter: str, target: float,
                   rate_per_s: float) -> None:
        await self._do("ramp", instrument, parameter, target, rate_per_s)

    async def shift(self, instrument: str, parameter: str, by: float,
                    rate_per_s: float) -> None:
        await self._do("shift", instrument, parameter, by, rate_per_s)

    async def sweep(self, instrument: str, parameter: str, start: float, stop: float,
                    rate_per_s: float, step: float, record: list[str],
                    continuous: bool) -> dict[str, int]:
        await self._do("sweep", instrument, parameter, start, stop, rate_per_s, step, record)
        return {"points": 1400}

    async def wait(self, seconds: float) -> None:
        await self._do("wait", seconds)

    async def estimate(self) -> dict[str, Any]:
        await self._do("estimate")
        return {"soliton_number": self.solitons}

    async def step_down_until(self, soliton_number: int, actuator: str, step: float,
                              settle_s: float, max_steps: int) -> int:
        await self._do("step_down_until", soliton_number, actuator, step, settle_s, max_steps)
        return self.final

    async def verify(self, criteria: Criteria) -> dict[str, Any]:
        await self._do("verify", criteria.model_dump(exclude_none=True))
        return {"ok": self.verify_ok, "lines_20db": 150, "bandwidth_3db_thz": 2.1}

    async def lock(self, actuator: str, kp: float, ki: float, kd: float, output_min: float,
                   output_max: float, setpoint_mw: float | None, relief: Any = None) -> None:
        await self._do("lock", actuator, kp, ki, kd, output_min, output_max, setpoint_mw)


def run(seq: Sequence, bench: FakeBench, abort_after_s: float | None = None
        ) -> tuple[RunResult, list[tuple[int, str, str]], float]:
    events: list[tuple[int, str, str]] = []

    def on_step(index: int, step: Step, status: str) -> None:
        events.append((index, step.kind, status))

    async def main() -> RunResult:
        abort = asyncio.Event()
        if abort_after_s is not None:
            asyncio.get_running_loop().call_later(abort_after_s, abort.set)
        return await run_sequence(seq, bench, abort, on_step)

    start = time.monotonic()
    result = asyncio.run(main())
    return result, events, time.monotonic() - start


EVERY_KIND = """
[parameters]
edfa_output_w = 3.5
speed_pm_per_s = 10.0
tolerance_k = 0.01

[[steps]]
kind = "set"
instrument = "tec"
parameter = "output_enabled"
value = true

[[steps]]
kind = "ramp"
instrument = "edfa"
parameter = "output_w"
to = "$edfa_output_w"
rate_per_s = 0.5

[[steps]]
kind = "wait_until"
name = "TEC settled"
instrument = "tec"
parameter = "temperature_c"
op = "within"
value = 25.0
tolerance = "$tolerance_k"
poll_s = 0.01
hold_s = 0.02
timeout_s = 2.0

[[steps]]
kind = "sweep"
instrument = "pump"
parameter = "wavelength_nm"
start = 1555.95
stop = 1556.09
rate_per_s = "$speed_pm_per_s"
step = 0.0001
record = ["power_meter.power_mw"]

[[steps]]
kind = "wait"
seconds = 0.01

[[steps]]
kind = "call"
file = "down.toml"
parameters = { settle_s = 0.5 }
"""

DOWN = HEADER + """
[parameters]
settle_s = 3.0

[[steps]]
kind = "estimate"
min_soliton_number = 1

[[steps]]
kind = "step_down_until"
soliton_number = 1
actuator = "pump_wavelength"
step_pm = 0.2
settle_s = "$settle_s"
max_steps = 50

[[steps]]
kind = "verify"
criteria = { min_lines_20db = 200, spacing_ghz = 49.0, spacing_tolerance_ghz = 0.5 }

[[steps]]
kind = "lock"
actuator = "aux_wavelength"
kp = 0.05
ki = 0.2
output_min = -20.0
output_max = 20.0
"""


def every_kind(tmp_path: Path) -> Sequence:
    (tmp_path / "down.toml").write_text(DOWN)
    return load_sequence(tmp_path / "x.toml", HEADER + EVERY_KIND, station=STATION)


def test_runner_drives_every_kind_of_step_in_order(tmp_path: Path) -> None:
    bench = FakeBench({"tec.temperature_c": [26.0, 25.3, 25.005, 24.998, 25.001]})
    result, events, _ = run(every_kind(tmp_path), bench)
    assert result.ok and result.status == "completed" and result.step is None
    assert bench.calls == [
        ("set", "tec", "output_enabled", True),
        ("ramp", "edfa", "output_w", 3.5, 0.5),
        ("sweep", "pump", "wavelength_nm", 1555.95, 1556.09, pytest.approx(0.01), 0.0001,
         ["power_meter.power_mw"]),
        ("wait", 0.01),
        ("estimate",),
        ("step_down_until", 1, "pump_wavelength", 0.2, 0.5, 50),
        ("verify", {"min_lines_20db": 200, "spacing_ghz": 49.0, "spacing_tolerance_ghz": 0.5}),
        ("lock", "aux_wavelength", 0.05, 0.2, 0.0, -20.0, 20.0, None),
    ]
    assert [e for e in events if e[2] == "start"] == [
        (0, "set", "start"), (1, "ramp", "start"), (2, "wait_until", "start"),
        (3, "sweep", "start"), (4, "wait", "start"), (5, "call", "start"),
        (0, "estimate", "start"), (1, "step_down_until", "start"), (2, "verify", "start"),
        (3, "lock", "start"),
    ]
    assert events[-1] == (5, "call", "done")
    labels = dict(result.results)
    assert labels['t steps[2] (wait_until "TEC settled")'] == 25.001  # held over two polls
    assert labels["t steps[5] (call) > t steps[1] (step_down_until)"] == 1


def test_wait_until_times_out_with_the_last_reading(tmp_path: Path) -> None:
    seq = load_sequence(tmp_path / "x.toml", HEADER + """
[[steps]]
kind = "wait_until"
instrument = "tec"
parameter = "temperature_c"
op = "within"
value = 25.0
tolerance = 0.01
poll_s = 0.02
timeout_s = 0.2
""")
    result, events, elapsed = run(seq, FakeBench({"tec.temperature_c": [26.5]}))
    assert (result.status, result.step, result.path) == ("timeout", "t steps[0] (wait_until)", (0,))
    assert result.message == ("tec.temperature_c within 0.01 degC of 25 degC not met within "
                              "0.2 s (last reading 26.5 degC)")
    assert events == [(0, "wait_until", "start"), (0, "wait_until", "timeout")]
    assert elapsed < 1.0


def test_abort_stops_the_step_in_progress_promptly(tmp_path: Path) -> None:
    bench = FakeBench({"tec.temperature_c": [25.0]}, slow={"sweep": 30.0})
    result, events, elapsed = run(every_kind(tmp_path), bench, abort_after_s=0.2)
    assert elapsed < 1.0
    assert (result.status, result.step, result.path) == ("abort", "t steps[3] (sweep)", (3,))
    assert result.message == "aborted during this step"
    assert bench.cancelled == ["sweep"]
    assert events[-1] == (3, "sweep", "abort")


def test_abort_inside_a_call_names_the_inner_step(tmp_path: Path) -> None:
    bench = FakeBench({"tec.temperature_c": [25.0]}, slow={"step_down_until": 30.0})
    result, events, elapsed = run(every_kind(tmp_path), bench, abort_after_s=0.2)
    assert elapsed < 1.0 and result.status == "abort"
    assert result.step == "t steps[5] (call) > t steps[1] (step_down_until)"
    assert result.path == (5, 1)
    assert events[-2:] == [(1, "step_down_until", "abort"), (5, "call", "abort")]


def test_a_step_past_its_timeout_is_cancelled(tmp_path: Path) -> None:
    seq = load_sequence(tmp_path / "x.toml", HEADER + """
[[steps]]
kind = "set"
instrument = "pump"
parameter = "power_mw"
value = 10.0
timeout_s = 0.2
""")
    bench = FakeBench(slow={"set": 30.0})
    result, _, elapsed = run(seq, bench)
    assert elapsed < 1.0 and bench.cancelled == ["set"]
    assert (result.status, result.step) == ("timeout", "t steps[0] (set)")
    assert result.message == "the step did not finish within its timeout_s of 0.2 s"


def test_a_procedure_error_names_the_step(tmp_path: Path) -> None:
    bench = FakeBench({"tec.temperature_c": [25.0]},
                      fail=("ramp", RuntimeError("[-32007] EDFA interlock: no seed")))
    result, events, _ = run(every_kind(tmp_path), bench)
    assert (result.status, result.step, result.path) == ("error", "t steps[1] (ramp)", (1,))
    assert result.message == "[-32007] EDFA interlock: no seed"
    assert events[-1] == (1, "ramp", "error")


def test_unmet_checks_fail_the_run(tmp_path: Path) -> None:
    seq = every_kind(tmp_path)
    result, _, _ = run(seq, FakeBench({"tec.temperature_c": [25.0]}, final=2))
    assert (result.status, result.step) == (
        "failed", "t steps[5] (call) > t steps[1] (step_down_until)")
    assert result.message == "2 soliton(s) left, not 1, after at most 50 steps"
    result, _, _ = run(seq, FakeBench({"tec.temperature_c": [25.0]}, verify_ok=False))
    assert result.status == "failed" and result.path == (5, 2)
    assert result.message.endswith("measured: lines_20db 150, bandwidth_3db_thz 2.1")
    result, _, _ = run(seq, FakeBench({"tec.temperature_c": [25.0]}, solitons=0))
    assert (result.status, result.message) == ("failed", "soliton number 0, expected >= 1")


def test_shipped_single_soliton_runs_against_the_double() -> None:
    seq = load_sequence(ROOT / "sequences" / "single_soliton.toml",
                        overrides={"tec_hold_s": 0.0, "edfa_seed_hold_s": 0.0})
    bench = FakeBench({"tec.temperature_c": [25.0], "edfa.input_mw": [5.0],
                       "edfa.measured_output_w": [3.5], "power_meter.power_mw": [20.0]})
    result, _, elapsed = run(seq, bench)
    assert result.ok, result
    kinds = [call[0] for call in bench.calls]
    assert kinds[-5:] == ["estimate", "step_down_until", "shift", "verify", "lock"]
    assert ("ramp", "edfa", "output_w", 3.5, 1.0) in bench.calls
    assert ("shift", "pump", "wavelength_nm", pytest.approx(0.5e-3), pytest.approx(1e-3)) \
        in bench.calls
    assert ("step_down_until", 1, "pump_wavelength", 0.1, 0.2, 600) in bench.calls
    assert elapsed < 2.0


def test_labctl_dry_run_prints_the_plan_or_the_problems(tmp_path: Path) -> None:
    labctl = str(Path(sys.executable).parent / "labctl")
    result = subprocess.run([labctl, "sequence", "run", str(ROOT / "sequences" / "recover.toml"),
                             "--dry-run"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "sweep pump.wavelength_nm 1555.95 -> 1556.09 nm" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[sequence]\nname = "x"\ndescription = "y"\n[[steps]]\nkind = "wait"\n')
    result = subprocess.run([labctl, "sequence", "run", str(bad), "--dry-run"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{bad}: steps[0] (wait): seconds: required key is missing" in result.stderr
