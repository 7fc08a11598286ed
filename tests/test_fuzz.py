"""Thousands of generated requests, well-formed or not: every one answered, the daemon unharmed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RunningDaemon, running_daemon, write_station

METHODS = ["station.list", "station.get", "station.set", "lease.status", "lease.acquire",
           "rpc.discover", "no.such", "", "safety.status"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=10,
)
params = st.dictionaries(
    st.sampled_from(["instrument", "parameter", "value", "lease", "holder", "x"]),
    st.sampled_from(["pump", "aux", "edfa", "power_mw", "wavelength_nm"]) | json_values,
    max_size=4,
)
requests = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "1.0", 2]),
     "method": st.sampled_from(METHODS) | json_values},
    optional={"id": st.integers() | st.text(max_size=5) | st.none() | st.floats(),
              "params": params | json_values},
)
payloads = (
    requests.map(lambda r: json.dumps(r).encode())
    | st.lists(requests, min_size=1, max_size=3).map(lambda r: json.dumps(r).encode())
    | st.binary(max_size=64)
)


@pytest.fixture(scope="module")
def fuzzed_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    station = write_station(Path(tmp_path_factory.mktemp("fuzz")))
    with running_daemon(station) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def req_socket(fuzzed_daemon: RunningDaemon) -> Iterator[zmq.Socket[Any]]:
    sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(fuzzed_daemon.station.rpc)
    yield sock
    sock.close()


def assert_valid_reply(reply: Any) -> None:
    assert reply["jsonrpc"] == "2.0"
    assert ("result" in reply) != ("error" in reply)
    if "error" in reply:
        assert isinstance(reply["error"]["code"], int)
        assert reply["error"]["message"]


@settings(max_examples=1000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(payload=payloads)
def test_every_generated_request_gets_a_json_rpc_reply(
        req_socket: zmq.Socket[Any], payload: bytes) -> None:
    req_socket.send(payload)
    assert req_socket.poll(20_000), f"no reply to {payload!r}"
    reply = json.loads(req_socket.recv())
    for item in reply if isinstance(reply, list) else [reply]:
        assert_valid_reply(item)


def test_daemon_is_unharmed_after_the_fuzzing(fuzzed_daemon: RunningDaemon,
                                              req_socket: zmq.Socket[Any]) -> None:
    req_socket.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "station.list"}).encode())
    assert req_socket.poll(10_000)
    reply = json.loads(req_socket.recv())
    assert all(i["connected"] for i in reply["result"]["instruments"] if i["implemented"])
    assert fuzzed_daemon.process.poll() is None
