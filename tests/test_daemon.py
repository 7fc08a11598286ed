"""The daemon end to end: a subprocess on the simulated testbed, plain pyzmq clients, labctl."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from labd.client import Client, Subscription
from labd.rpc import ErrorCode, RpcError
from sim_backends.control import send_control
from tests.conftest import (
    ROOT,
    RunningDaemon,
    labd,
    port_is_free,
    raw_exchange,
    wait_until_serving,
    write_default_station,
    write_station,
)


def raw_call(endpoint: str, payload: bytes) -> dict:
    """One request on a fresh REQ socket, exactly as any pyzmq client would send it."""
    context = zmq.Context.instance()
    with context.socket(zmq.REQ) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send(payload)
        assert sock.poll(10_000), "no reply"
        return json.loads(sock.recv())


def request(method: str, params: dict | None = None, request_id: int = 1) -> bytes:
    body = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    return json.dumps(body).encode()


def assert_still_serving(endpoint: str) -> None:
    reply = raw_call(endpoint, request("station.list", request_id=99))
    assert reply["id"] == 99
    assert {i["name"] for i in reply["result"]["instruments"]} == {"pump", "aux", "edfa", "spare"}


LEASE = "@LEASE@"  # replaced by a live token in the test
BAD_REQUESTS = {
    "unknown method": (request("station.fly"), ErrorCode.METHOD_NOT_FOUND),
    "malformed JSON": (b'{"jsonrpc": "2.0", "id": 1, "method": ', ErrorCode.PARSE_ERROR),
    "binary garbage": (bytes(range(256)), ErrorCode.PARSE_ERROR),
    "not an object": (b"[1, 2", ErrorCode.PARSE_ERROR),
    "a bare number": (b"42", ErrorCode.INVALID_REQUEST),
    "missing id": (b'{"jsonrpc": "2.0", "method": "station.list"}', ErrorCode.INVALID_REQUEST),
    "wrong version": (b'{"jsonrpc": "1.0", "id": 1, "method": "station.list"}',
                      ErrorCode.INVALID_REQUEST),
    "params not an object": (b'{"jsonrpc":"2.0","id":1,"method":"station.get","params":[1]}',
                             ErrorCode.INVALID_PARAMS),
    "missing param": (request("station.get", {"instrument": "pump"}), ErrorCode.INVALID_PARAMS),
    "wrong param type": (request("station.set", {"instrument": "pump", "parameter": "power_mw",
                                                 "value": "high", "lease": LEASE}),
                         ErrorCode.INVALID_PARAMS),
    "unknown param member": (request("station.list", {"verbose": True}), ErrorCode.INVALID_PARAMS),
    "unknown instrument": (request("station.get", {"instrument": "laser9",
                                                   "parameter": "power_mw"}),
                           ErrorCode.INVALID_PARAMS),
    "unknown parameter": (request("station.get", {"instrument": "pump", "parameter": "colour"}),
                          ErrorCode.INVALID_PARAMS),
    "bool for a number": (request("station.set", {"instrument": "pump", "parameter": "power_mw",
                                                  "value": True, "lease": LEASE}),
                          ErrorCode.INVALID_PARAMS),
    "power above limit": (request("station.set", {"instrument": "pump", "parameter": "power_mw",
                                                  "value": 25.0, "lease": LEASE}),
                          ErrorCode.LIMIT_EXCEEDED),
    "wavelength below limit": (request("station.set", {"instrument": "pump",
                                                       "parameter": "wavelength_nm",
                                                       "value": 1530.0, "lease": LEASE}),
                               ErrorCode.LIMIT_EXCEEDED),
    "set without lease": (request("station.set", {"instrument": "pump", "parameter": "power_mw",
                                                  "value": 1.0}), ErrorCode.LEASE_REQUIRED),
    "set with a stale lease": (request("station.set", {"instrument": "pump",
                                                       "parameter": "power_mw", "value": 1.0,
                                                       "lease": "stale"}),
                               ErrorCode.LEASE_HELD),
    "not implemented model": (request("station.get", {"instrument": "spare",
                                                      "parameter": "setpoint_c"}),
                              ErrorCode.NOT_IMPLEMENTED),
}


def test_bad_requests_get_the_right_error_and_the_daemon_keeps_serving(
        daemon: RunningDaemon) -> None:
    token = daemon.operator().lease
    assert token is not None
    for kind, (payload, code) in BAD_REQUESTS.items():
        reply = raw_call(daemon.station.rpc, payload.replace(LEASE.encode(), token.encode()))
        assert reply["jsonrpc"] == "2.0"
        assert reply["error"]["code"] == code, (kind, reply)
        assert reply["error"]["message"], kind
        assert_still_serving(daemon.station.rpc)
    assert daemon.process.poll() is None


def test_limit_error_names_instrument_parameter_and_limits(daemon: RunningDaemon) -> None:
    with daemon.operator() as client:
        before = client.call("station.get", instrument="pump", parameter="power_mw")["value"]
        with pytest.raises(RpcError) as caught:
            client.call("station.set", instrument="pump", parameter="power_mw", value=25.0)
        after = client.call("station.get", instrument="pump", parameter="power_mw")["value"]
    assert caught.value.code == ErrorCode.LIMIT_EXCEEDED
    assert caught.value.data == {"instrument": "pump", "parameter": "power_mw", "value": 25.0,
                                 "limits": [0.0, 20.0], "unit": "mW"}
    assert "pump.power_mw" in caught.value.message
    assert after == before  # nothing reached the wire


def test_set_and_get_pump_through_the_daemon(daemon: RunningDaemon) -> None:
    with daemon.operator() as client:
        set_reply = client.call("station.set", instrument="pump", parameter="wavelength_nm",
                                value=1556.0901)
        assert set_reply["value"] == pytest.approx(1556.0901, abs=1e-6)
        client.call("station.set", instrument="pump", parameter="power_mw", value=7.5)
        client.call("station.set", instrument="pump", parameter="output_enabled", value=True)
        read = {p: client.call("station.get", instrument="pump", parameter=p)["value"]
                for p in ("wavelength_nm", "power_mw", "output_enabled")}
    assert read == {"wavelength_nm": pytest.approx(1556.0901, abs=1e-6), "power_mw": 7.5,
                    "output_enabled": True}


def test_station_list_reports_not_implemented_instruments(daemon: RunningDaemon) -> None:
    with Client(daemon.station.rpc) as client:
        instruments = {i["name"]: i for i in client.call("station.list")["instruments"]}
    assert instruments["pump"]["connected"] is True
    assert instruments["edfa"]["connected"] is True
    assert instruments["spare"]["implemented"] is False
    assert instruments["spare"]["connected"] is False
    assert instruments["spare"]["last_error"] == "not implemented"
    pump_params = {p["name"]: p for p in instruments["pump"]["parameters"]}
    assert pump_params["power_mw"]["limits"] == [0.0, 20.0]


def test_openrpc_document_lists_methods_with_generated_schemas(daemon: RunningDaemon) -> None:
    with Client(daemon.station.rpc) as client:
        document = client.call("rpc.discover")
    methods = {m["name"]: m for m in document["methods"]}
    assert {"rpc.discover", "station.list", "station.get", "station.set", "lease.acquire",
            "lease.renew", "lease.release", "lease.status", "safety.abort",
            "safety.status"} <= set(methods)
    set_params = {p["name"]: p for p in methods["station.set"]["params"]}
    assert set(set_params) == {"instrument", "parameter", "value", "lease"}
    assert "lease" not in {p["name"] for p in methods["safety.abort"]["params"]}
    assert all(p["required"] for p in set_params.values())
    assert document["components"]["errors"]["LIMIT_EXCEEDED"]["code"] == -32001


def test_telemetry_carries_time_and_per_topic_sequence(daemon: RunningDaemon) -> None:
    messages = []
    for topic, message in Subscription(daemon.station.pub, ("instrument.pump",), timeout_s=10):
        messages.append(message)
        assert topic == "instrument.pump"
        if len(messages) == 3:
            break
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    assert all(abs(m["t"] - time.time()) < 30 for m in messages)
    assert set(messages[0]) >= {"wavelength_nm", "power_mw", "output_enabled"}


def labctl(station_rpc: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "labctl"  # the installed console script
    return subprocess.run([str(script), "--endpoint", station_rpc, *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_labctl_status_and_call(daemon: RunningDaemon) -> None:
    status = labctl(daemon.station.rpc, "status")
    assert status.returncode == 0, status.stderr
    assert "pump" in status.stdout and "connected" in status.stdout
    assert "not implemented" in status.stdout
    call = labctl(daemon.station.rpc, "--json", "call", "station.get",
                  '{"instrument": "pump", "parameter": "power_mw"}')
    assert call.returncode == 0, call.stderr
    assert json.loads(call.stdout)["unit"] == "mW"
    acquired = labctl(daemon.station.rpc, "--json", "lease", "acquire", "--holder", "op")
    token = json.loads(acquired.stdout)["token"]
    refused = labctl(daemon.station.rpc, "--lease", token, "call", "station.set",
                     '{"instrument": "pump", "parameter": "power_mw", "value": 99}')
    assert refused.returncode == 1
    assert "-32001" in refused.stderr and "limits" in refused.stderr
    accepted = labctl(daemon.station.rpc, "--lease", token, "call", "station.set",
                      '{"instrument": "pump", "parameter": "power_mw", "value": 9}')
    assert accepted.returncode == 0, accepted.stderr


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_leaves_no_process_and_no_port(daemon: RunningDaemon, sig: int) -> None:
    children = children_of(daemon.process.pid)
    assert children, "the simulated testbed runs as a child process"
    assert daemon.stop(sig) == 0
    deadline = time.monotonic() + 10
    while any(pid_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(pid_alive(c) for c in children)
    for name, port in daemon.station.ports.items():
        assert port_is_free(port), name


def test_shutdown_puts_lasers_in_safe_state(tmp_path: Path) -> None:
    """Emulators in their own process, so their state can be read after the daemon is gone."""
    station = write_station(tmp_path, simulated=False)
    sim = subprocess.Popen(labd("sim", "--config", str(station.path), "--control",
                                f"tcp://127.0.0.1:{station.ports['control']}"),
                           cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert sim.stdout is not None
        lines = [sim.stdout.readline().strip() for _ in range(6)]
        assert lines[-1] == "ready", lines
        daemon = subprocess.Popen(labd("serve", "--config", str(station.path)), cwd=ROOT)
        wait_until_serving(station.rpc, daemon, 30)
        with Client(station.rpc) as client:
            client.acquire_lease("tester")
            for laser in ("pump", "aux"):
                client.call("station.set", instrument=laser, parameter="output_enabled",
                            value=True)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0
        for laser in ("pump", "aux"):
            assert raw_exchange(station.ports[laser], b":POW:STAT?") == [b"0\r"], laser
    finally:
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(timeout=20) == 0


def test_a_slow_bench_at_shutdown_is_not_taken_for_a_stalled_loop(tmp_path: Path) -> None:
    """The loop goes on beating while the shutdown abort waits on slow instruments."""
    station = write_station(tmp_path, simulated=False)
    station.path.write_text(station.path.read_text().replace(
        "call_timeout_s = 1.0", "call_timeout_s = 1.0\nwatchdog_s = 0.8"))
    control = f"tcp://127.0.0.1:{station.ports['control']}"
    sim = subprocess.Popen(labd("sim", "--config", str(station.path), "--control", control),
                           cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert sim.stdout is not None
        assert [sim.stdout.readline().strip() for _ in range(6)][-1] == "ready"
        daemon = subprocess.Popen(labd("serve", "--config", str(station.path)), cwd=ROOT,
                                  stderr=subprocess.PIPE, text=True)
        wait_until_serving(station.rpc, daemon, 30)
        with Client(station.rpc) as client:
            client.acquire_lease("tester")
            client.call("station.set", instrument="pump", parameter="output_enabled", value=True)
        for name in ("pump", "aux", "edfa"):
            send_control(control, {"instrument": name, "op": "faults",
                                   "set": {"reply_delay_s": 0.3}})
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
        assert daemon.returncode == 0
        assert "watchdog" not in stderr
        send_control(control, {"instrument": "pump", "op": "clear"})
        assert raw_exchange(station.ports["pump"], b":POW:STAT?") == [b"0\r"]
    finally:
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(timeout=20) == 0


def test_startup_never_switches_a_source_on(daemon: RunningDaemon) -> None:
    with Client(daemon.station.rpc) as client:
        for laser in ("pump", "aux"):
            value = client.call("station.get", instrument=laser, parameter="output_enabled")
            assert value["value"] is False


def test_bad_config_stops_serve_with_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[daemon]\nrpc = 5\n")
    result = subprocess.run(labd("serve", "--config", str(bad)), capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 1
    assert "daemon.rpc:" in result.stderr
    assert "instruments: required key is missing" in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_brings_up_a_locked_soliton_runs_qkd_and_writes_a_report(tmp_path: Path) -> None:
    station = write_default_station(tmp_path)
    result = subprocess.run(labd("demo", "--config", str(station.path), "--report",
                                 str(tmp_path / "report")),
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "single_soliton -> locked" in result.stdout
    assert "state locked after" in result.stdout
    report = json.loads((tmp_path / "report" / "soliton.json").read_text())
    assert report["status"]["soliton_number"] == 1
    assert [t["state"] for t in report["transitions"]][-1] == "locked"
    spectrum = (tmp_path / "report" / "osa_spectrum.csv").read_text().splitlines()
    assert spectrum[0] == "wavelength_nm,power_dbm" and len(spectrum) > 1000
    qkd = json.loads((tmp_path / "report" / "qkd.json").read_text())
    assert [(c["channel"], c["system"]) for c in qkd["status"]["channels"]] == [
        (31, "TR1"), (32, "TR2")]
    # on the live chip comb: the seed's QBER (2.66 % +- 0.5 %), with key from both channels
    for channel in qkd["status"]["channels"]:
        assert channel["qber"] == pytest.approx(0.0266, abs=0.005), channel
        assert channel["sifted_bps"] > 0 and channel["skr_asymptotic_bps"] > 0
    assert {m["channel"] for m in qkd["published"]} == {31, 32}
    summary = (tmp_path / "report" / "summary.txt").read_text()
    assert "state locked" in summary and "C31 TR1" in summary and "C32 TR2" in summary
    assert "exit code 0" in result.stdout
