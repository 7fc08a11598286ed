"""The daemon as operators rely on it: leases, abort, faults, reconnection, concurrency, record."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import zmq

from labd.client import AsyncClient, Client, DaemonTimeout, Subscription
from labd.leases import LeaseTable
from labd.rpc import ErrorCode, RpcError
from sim_backends.control import send_control
from tests.conftest import RunningDaemon


def wait_for(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def status(client: Client, name: str) -> dict:
    return next(i for i in client.call("station.list")["instruments"] if i["name"] == name)


def test_second_operator_is_refused_naming_the_holder(daemon: RunningDaemon) -> None:
    with daemon.operator("alice") as alice, Client(daemon.station.rpc) as bob:
        with pytest.raises(RpcError) as caught:
            bob.call("lease.acquire", holder="bob")
        assert caught.value.code == ErrorCode.LEASE_HELD
        assert "alice" in caught.value.message
        with pytest.raises(RpcError) as caught:
            bob.call("station.set", instrument="pump", parameter="power_mw", value=1.0,
                     lease="guess")
        assert caught.value.code == ErrorCode.LEASE_HELD
        # observers read without a lease
        assert bob.call("station.get", instrument="pump", parameter="power_mw")["unit"] == "mW"
        assert bob.call("lease.status")["holder"] == "alice"
        alice.call("lease.release")
        assert bob.call("lease.status")["holder"] is None
        bob.acquire_lease("bob")
        bob.call("station.set", instrument="pump", parameter="power_mw", value=2.0)


def test_lease_expires_unless_renewed(daemon: RunningDaemon) -> None:
    with Client(daemon.station.rpc) as client:
        client.acquire_lease("alice", ttl_s=1.0)
        time.sleep(0.6)
        client.call("lease.renew", ttl_s=1.0)
        time.sleep(0.6)  # 1.2 s after acquiring: alive only because it was renewed
        client.call("station.set", instrument="pump", parameter="power_mw", value=1.0)
        time.sleep(1.2)
        assert client.call("lease.status")["holder"] is None
        with pytest.raises(RpcError) as caught:
            client.call("station.set", instrument="pump", parameter="power_mw", value=1.0)
        assert caught.value.code == ErrorCode.LEASE_REQUIRED


def test_abort_needs_no_lease_and_turns_sources_off(daemon: RunningDaemon) -> None:
    safety_messages = Subscription(daemon.station.pub, ("safety",), timeout_s=10)
    with daemon.operator() as operator, Client(daemon.station.rpc) as anyone:
        for laser in ("pump", "aux"):
            operator.call("station.set", instrument=laser, parameter="output_enabled", value=True)
        time.sleep(0.3)  # let the SUB connect before the abort is published
        result = anyone.call("safety.abort", reason="test")
        assert [s["instrument"] for s in result["steps"]] == ["edfa", "aux", "pump"]
        assert all(s["ok"] for s in result["steps"])
        for laser in ("pump", "aux"):
            assert not operator.call("station.get", instrument=laser,
                                     parameter="output_enabled")["value"]
        assert anyone.call("safety.status")["last_abort"]["reason"] == "test"
    topic, message = next(safety_messages)
    assert topic == "safety" and message["reason"] == "test"
    safety_messages.close()


def test_stalled_instrument_is_reported_without_blocking_the_others(daemon: RunningDaemon) -> None:
    send_control(daemon.station.control, {"op": "faults", "instrument": "pump",
                                          "set": {"stall": True}})
    with Client(daemon.station.rpc) as client, Client(daemon.station.rpc) as other:
        with ThreadPoolExecutor(1) as pool:
            stalled = pool.submit(client.call, "station.get", instrument="pump",
                                  parameter="power_mw")
            time.sleep(0.2)
            for _ in range(5):
                other.call("station.get", instrument="aux", parameter="power_mw")
            assert not stalled.done(), "aux was answered only after the stalled pump gave up"
            with pytest.raises(RpcError) as caught:
                stalled.result(timeout=30)
        assert caught.value.code == ErrorCode.INSTRUMENT_FAULT
        assert caught.value.data["instrument"] == "pump"
        pump = status(client, "pump")
        assert pump["connected"] is False and pump["last_error"]
        send_control(daemon.station.control, {"op": "clear", "instrument": "pump"})
        wait_for(lambda: status(client, "pump")["connected"], 15, "pump reconnected")
        assert client.call("station.get", instrument="pump", parameter="power_mw")["unit"] == "mW"


def test_dropped_connection_is_reconnected(daemon: RunningDaemon) -> None:
    telemetry = Subscription(daemon.station.pub, ("instrument.pump",), timeout_s=20)
    send_control(daemon.station.control, {"op": "faults", "instrument": "pump",
                                          "set": {"drop_connection": True}})
    events = []
    for _, message in telemetry:
        if "event" in message:
            events.append(message["event"])
            if events[-1] == "disconnected":
                send_control(daemon.station.control, {"op": "clear", "instrument": "pump"})
            if events[-1] == "connected":
                break
    telemetry.close()
    assert events[:2] == ["disconnected", "connected"]


def test_garbage_reply_is_an_instrument_fault_naming_the_command(daemon: RunningDaemon) -> None:
    send_control(daemon.station.control, {"op": "faults", "instrument": "aux",
                                          "set": {"garbage_reply": True}})
    with Client(daemon.station.rpc) as client:
        with pytest.raises(RpcError) as caught:
            client.call("station.get", instrument="aux", parameter="wavelength_nm")
        assert caught.value.code == ErrorCode.INSTRUMENT_FAULT
        assert caught.value.data["command"] == ":WAV?"
        send_control(daemon.station.control, {"op": "clear", "instrument": "aux"})
        wait_for(lambda: status(client, "aux")["connected"], 15, "aux usable again")


def test_queued_instrument_error_surfaces_on_the_next_set(daemon: RunningDaemon) -> None:
    send_control(daemon.station.control, {"op": "error", "instrument": "pump", "code": -300,
                                          "message": "Device-specific error"})
    with daemon.operator() as client:
        with pytest.raises(RpcError) as caught:
            client.call("station.set", instrument="pump", parameter="power_mw", value=3.0)
        assert caught.value.code == ErrorCode.INSTRUMENT_FAULT
        assert "-300" in caught.value.message
        assert status(client, "pump")["connected"] is True  # the instrument still answers


def test_twenty_clients_at_once_get_their_own_replies(daemon: RunningDaemon) -> None:
    parameters = ["wavelength_nm", "power_mw", "output_enabled"]

    def session(index: int) -> int:
        with Client(daemon.station.rpc, timeout_s=30) as client:
            for round_ in range(10):
                name = parameters[(index + round_) % 3]
                instrument = "pump" if index % 2 else "aux"
                reply = client.call("station.get", instrument=instrument, parameter=name)
                assert (reply["instrument"], reply["parameter"]) == (instrument, name)
        return index

    with ThreadPoolExecutor(20) as pool:
        assert sorted(pool.map(session, range(20))) == list(range(20))


def test_oversized_requests_are_refused_and_the_daemon_serves_on(daemon: RunningDaemon) -> None:
    limit = 1 << 20
    with Client(daemon.station.rpc) as client:
        reply = client.request(b" " * (limit + 1))
        assert reply["error"]["code"] == ErrorCode.REQUEST_TOO_LARGE
        assert reply["error"]["data"] == {"size": limit + 1, "limit": limit}
        client.timeout_s = 2.0
        with pytest.raises(DaemonTimeout):  # beyond the hard limit ZeroMQ drops it unread
            client.request(b" " * (limit * 17))
        client.timeout_s = 10.0
        assert client.call("station.list")["instruments"]


def test_dealer_clients_are_served_too(daemon: RunningDaemon) -> None:
    with zmq.Context.instance().socket(zmq.DEALER) as dealer:
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(daemon.station.rpc)
        for request_id in (1, 2, 3):
            dealer.send_multipart([b"", json.dumps({"jsonrpc": "2.0", "id": request_id,
                                                    "method": "lease.status"}).encode()])
        replies = []
        for _ in range(3):
            assert dealer.poll(10_000)
            _, body = dealer.recv_multipart()
            replies.append(json.loads(body)["id"])
        assert sorted(replies) == [1, 2, 3]


def test_everything_is_recorded(daemon: RunningDaemon) -> None:
    with daemon.operator("carol") as client:
        client.call("station.set", instrument="pump", parameter="power_mw", value=4.0)
        with pytest.raises(RpcError):
            client.call("station.set", instrument="pump", parameter="power_mw", value=40.0)
        client.call("safety.abort", reason="recorded")
    time.sleep(0.5)
    assert daemon.stop() == 0
    db = sqlite3.connect(daemon.station.path.parent / "labd.sqlite")
    (ended,) = db.execute("SELECT ended FROM runs").fetchone()
    assert ended is not None
    commands = db.execute("SELECT holder, method, params, error FROM commands").fetchall()
    assert commands[0][:2] == ("carol", "station.set")
    assert json.loads(commands[0][2]) == {"instrument": "pump", "parameter": "power_mw",
                                          "value": 4.0}
    assert commands[0][3] is None and "limits" in commands[1][3]
    seqs = [s for (s,) in db.execute(
        "SELECT seq FROM telemetry WHERE topic = 'instrument.pump' ORDER BY seq")]
    assert len(seqs) >= 3 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    reasons = [json.loads(b)["reason"] for (b,) in db.execute(
        "SELECT body FROM telemetry WHERE topic = 'safety'")]
    assert reasons == ["recorded", "daemon shutdown"]



def test_labctl_exports_a_run_as_csv_and_hdf5(daemon: RunningDaemon, tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    with daemon.operator("dave") as client:
        client.call("station.set", instrument="pump", parameter="power_mw", value=6.0)
    time.sleep(0.6)
    assert daemon.stop() == 0
    database = daemon.station.path.parent / "labd.sqlite"
    result = labctl_local("export", "1", "--database", str(database), "--out",
                          str(tmp_path / "csv"))
    assert result.returncode == 0, result.stderr
    commands = (tmp_path / "csv" / "commands.csv").read_text().splitlines()
    assert commands[0] == "t,holder,method,params,error" and ",dave,station.set," in commands[1]
    pump_rows = (tmp_path / "csv" / "telemetry" / "instrument.pump.csv").read_text().splitlines()
    assert pump_rows[0].startswith("t,seq,") and len(pump_rows) >= 3
    result = labctl_local("export", "1", "--database", str(database), "--format", "hdf5",
                          "--out", str(tmp_path / "run.h5"))
    assert result.returncode == 0, result.stderr
    with h5py.File(tmp_path / "run.h5") as h5:
        assert h5["commands/holder"][0] == b"dave"
        assert h5["telemetry/instrument.pump/power_mw"][-1] == pytest.approx(6.0)
    missing = labctl_local("export", "7", "--database", str(database))
    assert missing.returncode == 1 and "no run 7" in missing.stderr


def labctl_local(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "labctl"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60)


def test_async_client_calls_concurrently_and_recovers_from_a_timeout(
        daemon: RunningDaemon) -> None:
    async def scenario() -> list[Any]:
        clients = [AsyncClient(daemon.station.rpc) for _ in range(5)]
        replies = await asyncio.gather(*(
            c.call("station.get", instrument="pump", parameter="power_mw") for c in clients))
        send_control(daemon.station.control, {"op": "faults", "instrument": "aux",
                                              "set": {"stall": True}})
        slow = AsyncClient(daemon.station.rpc, timeout_s=0.3)
        with pytest.raises(DaemonTimeout):
            await slow.call("station.get", instrument="aux", parameter="power_mw")
        replies.append(await slow.call("lease.status"))  # a fresh socket after the timeout
        send_control(daemon.station.control, {"op": "clear", "instrument": "aux"})
        await slow.acquire_lease("async")
        replies.append(await slow.call("station.set", instrument="pump", parameter="power_mw",
                                       value=2.0))
        for client in [*clients, slow]:
            client.close()
        return replies

    replies = asyncio.run(scenario())
    assert [r["unit"] for r in replies[:5]] == ["mW"] * 5
    assert replies[5] == {"holder": None, "expires_at": None}
    assert replies[6]["value"] == 2.0


def test_edfa_interlock_ramp_and_abort_reach_the_edfa_first(daemon: RunningDaemon) -> None:
    with daemon.operator() as client:
        with pytest.raises(RpcError) as caught:
            client.call("station.set", instrument="edfa", parameter="enabled", value=True)
        assert caught.value.code == ErrorCode.INTERLOCK
        assert "pump laser is off" in caught.value.message
        client.call("station.set", instrument="pump", parameter="power_mw", value=10.0)
        client.call("station.set", instrument="pump", parameter="output_enabled", value=True)
        wait_for(lambda: client.call("station.get", instrument="edfa",
                                     parameter="input_mw")["value"] > 1.0, 10, "seed seen")
        client.call("station.set", instrument="edfa", parameter="enabled", value=True)
        started = time.monotonic()
        client.call("station.set", instrument="edfa", parameter="output_w", value=1.0)
        assert time.monotonic() - started >= 0.8  # 1 W at the configured 1 W/s
        wait_for(lambda: client.call("station.get", instrument="edfa",
                                     parameter="measured_output_w")["value"] > 0.9, 15,
                 "EDFA output up")
        result = client.call("safety.abort", reason="test")
        assert result["steps"][0]["instrument"] == "edfa"
        edfa = {p: client.call("station.get", instrument="edfa", parameter=p)["value"]
                for p in ("enabled", "output_w")}
        assert edfa == {"enabled": False, "output_w": 0.0}


def test_pump_lost_while_the_edfa_runs_aborts(daemon: RunningDaemon) -> None:
    safety = Subscription(daemon.station.pub, ("safety",), timeout_s=20)
    with daemon.operator() as client:
        client.call("station.set", instrument="pump", parameter="power_mw", value=10.0)
        client.call("station.set", instrument="pump", parameter="output_enabled", value=True)
        wait_for(lambda: client.call("station.get", instrument="edfa",
                                     parameter="input_mw")["value"] > 1.0, 10, "seed seen")
        client.call("station.set", instrument="edfa", parameter="enabled", value=True)
        send_control(daemon.station.control, {"op": "faults", "instrument": "pump",
                                              "set": {"drop_connection": True}})
        _, message = next(safety)
        assert "pump" in message["reason"]
        assert message["steps"][0]["instrument"] == "edfa" and message["steps"][0]["ok"]
        assert client.call("station.get", instrument="edfa", parameter="enabled")["value"] is False
    safety.close()


def test_lease_tokens_survive_a_command_line() -> None:
    """A token beginning with '-' is read by labctl's parser as an option (a CI run failed so)."""
    table = LeaseTable()
    tokens = [table.acquire("alice", ttl_s=60.0).token for _ in range(500)]
    assert len(set(tokens)) == 500
    assert all(re.fullmatch(r"[0-9a-f]{32}", token) for token in tokens)
