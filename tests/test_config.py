"""The station file: the default validates, and each kind of mistake is named by its key path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labd.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = (ROOT / "instruments.toml").read_text()


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return [str(p) for p in caught.value.problems]


def test_default_station_validates_with_every_role() -> None:
    config = load_config(ROOT / "instruments.toml")
    roles = {inst.role for inst in config.instruments.values()}
    assert roles == {"pump_laser", "aux_laser", "edfa", "tec", "osa", "power_meter", "awg",
                     "bias", "spd_counter"}
    assert config.simulation is not None
    assert config.instruments["pump"].limits["power_mw"] == [0.0, 20.0]


def replace(old: str, new: str) -> str:
    assert old in DEFAULT, old
    return DEFAULT.replace(old, new, 1)


PUMP_MODEL = 'role = "pump_laser"\nmodel = "santec.TSL570"'
PUMP_RESOURCE = 'resource = "TCPIP::127.0.0.1::5000::SOCKET"'
EDFA_LIMITS = "limits = { output_w = [0.0, 3.5] }"

BAD_FILES = {
    "unknown table": (replace("[daemon]", "[deamon]"), "deamon: unknown key"),
    "unknown instrument key": (replace(PUMP_RESOURCE, PUMP_RESOURCE + '\ncolour = "red"'),
                               "instruments.pump.colour: unknown key"),
    "wrong type": (replace("poll_interval_s = 1.0", 'poll_interval_s = "fast"'),
                   "daemon.poll_interval_s: "),
    "float seed": (replace("seed = 1", "seed = 1.5"), "simulation.seed: "),
    "limits reversed": (replace(EDFA_LIMITS, "limits = { output_w = [3.5, 0.0] }"),
                        "instruments.edfa.limits.output_w: minimum 3.5 is not below maximum"),
    "limits not a pair": (replace(EDFA_LIMITS, "limits = { output_w = [3.5] }"),
                          "instruments.edfa.limits.output_w: expected [min, max]"),
    "limit on a read-only parameter": (
        replace('model = "thorlabs.PM100USB"',
                'model = "thorlabs.PM100USB"\nlimits = { power_mw = [0.0, 1.0] }'),
        "instruments.power_meter.limits.power_mw: no settable number"),
    "two instruments on one resource": (
        replace('"TCPIP::127.0.0.1::5001::SOCKET"', '"TCPIP::localhost::5000::SOCKET"'),
        "instruments.aux.resource: same resource as instruments.pump"),
    "unknown role": (replace('role = "pump_laser"', 'role = "pump"'),
                     "instruments.pump.role: unknown role 'pump'"),
    "unknown model": (replace('model = "santec.TSL570"', 'model = "santec.TSL999"'),
                      "instruments.pump.model: unknown model 'santec.TSL999'"),
    "model cannot fill role": (replace('model = "amonics.AEDFA"', 'model = "santec.TSL570"'),
                               "instruments.edfa.model: santec.TSL570 cannot be a edfa"),
    "malformed resource": (replace(PUMP_RESOURCE, 'resource = "TCPIP:127.0.0.1:5000"'),
                           "instruments.pump.resource: 'TCPIP:127.0.0.1:5000' is not a VISA"),
    "zmq model given a VISA resource": (
        replace('"tcp://127.0.0.1:5557"', '"TCPIP::127.0.0.1::5557::SOCKET"'),
        "instruments.spd_counter.resource: 'TCPIP::127.0.0.1::5557::SOCKET' is not a ZeroMQ"),
    "missing resource": (replace(PUMP_RESOURCE, ""),
                         "instruments.pump.resource: required key is missing"),
    "missing required role": (replace(PUMP_MODEL, 'role = "aux_laser"\nmodel = "santec.TSL570"'),
                              "instruments: no instrument has role pump_laser"),
    "second pump": (replace('role = "aux_laser"', 'role = "pump_laser"'),
                    "instruments.aux.role: a second pump_laser"),
    "bad endpoint": (replace('rpc = "tcp://127.0.0.1:5555"', 'rpc = "127.0.0.1:5555"'),
                     "daemon.rpc: '127.0.0.1:5555' is not a ZeroMQ endpoint"),
    "simulated instrument off loopback": (
        replace(PUMP_RESOURCE, 'resource = "TCPIP::192.0.2.10::5000::SOCKET"'),
        "instruments.pump.resource: a simulated instrument listens on a loopback"),
    "fault for an unknown instrument": (
        DEFAULT + "\n[simulation.faults.laser9]\nstall = true\n",
        "simulation.faults.laser9: no such instrument"),
    "unknown fault knob": (
        DEFAULT + "\n[simulation.faults.pump]\nmelt = true\n",
        "simulation.faults.pump.melt: unknown key"),
    "control port clash": (replace("seed = 1", 'seed = 1\ncontrol = "tcp://127.0.0.1:5000"'),
                           "simulation.control: port 5000 is already in use"),
    "upper-case instrument name": (replace("[instruments.pump]", "[instruments.Pump]"),
                                   "instruments.Pump: instrument names are lower_case"),
    "a QKD site without Alice's endpoint": (
        replace('site = "both"', 'site = "bob"'),
        "qkd.sifting: site bob needs Alice's sifting endpoint"),
    "malformed sifting endpoint": (
        replace("f_ec = 1.16", 'f_ec = 1.16\nsifting = "localhost:5560"'),
        "qkd.sifting: 'localhost:5560' is not a ZeroMQ endpoint"),
    "a QKD channel without its counter": (
        replace('awg = "awg"\ncounter = "spd_counter"\n', 'awg = "awg"\n'),
        "qkd.channels.31.counter: site both needs the spd_counter instrument"),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_file_is_rejected_naming_the_key(kind: str) -> None:
    text, expected = BAD_FILES[kind]
    problems = problems_of(text)
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = replace("seed = 1", "seed = -1").replace('model = "thorlabs.MBX"', 'model = "x"')
    problems = problems_of(text)
    assert len(problems) == 2, problems


def test_toml_syntax_error_names_line_and_column() -> None:
    text = DEFAULT.replace("seed = 1", "seed = = 1")
    line = DEFAULT.splitlines().index("seed = 1") + 1
    (problem,) = problems_of(text)
    assert f"line {line}, column 8" in problem


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labd", "check-config", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_check_config_cli_exit_codes_and_one_line_per_problem(tmp_path: Path) -> None:
    assert run_check().returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(replace("seed = 1", "seed = -1").replace(EDFA_LIMITS, "limits = {}\nx = 1"))
    result = run_check(str(bad))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any("simulation.seed:" in line for line in lines)
    assert any("instruments.edfa.x: unknown key" in line for line in lines)


def test_check_config_missing_file_is_an_error(tmp_path: Path) -> None:
    result = run_check(str(tmp_path / "nope.toml"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr


def test_schema_is_generated_from_the_models() -> None:
    result = run_check("--schema")
    schema = json.loads(result.stdout)
    instrument = schema["$defs"]["InstrumentConfig"]
    assert set(instrument["required"]) == {"role", "model", "resource"}
    assert instrument["additionalProperties"] is False
    assert "pump_laser" in json.dumps(schema)
