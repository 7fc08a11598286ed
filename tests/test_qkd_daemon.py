"""qkd.start / status / stop over a real daemon on the simulated testbed (subprocesses, sockets).

Stations here have the default instruments.toml's receiver calibration ([qkd.channels.31] for
TR1-type systems, [qkd.channels.32] for TR2-type ones) and feed Alice's DEMUX with the seed's
ideal single-soliton comb (``[simulation] comb = "ideal"``) instead of bringing the chip to a
soliton first, which takes a minute; the comb is the same shape, so every QKD figure is too. The
world runs 100x the wall clock, with 60 s counting windows; an update (reset, 0.6 s, read) takes
~ 2 s on a shared 2-core machine, so a 10 s run is a block of a few minutes.

Tolerances: the seed's QBER, 2.66 +- 0.5 % (its TR1 spread is 0.48 %); its key rates within
25 % at its averaging time, one hour: the finite-key rate (Lim 2014) that the gains and QBERs
measured here give for a one-hour block, after post-processing. Channels compared with each other
(adjacent vs not): at the seed's resolution (see the test).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labd.client import Client, Subscription
from labd.config import load_config
from labd.qkd import estimation
from labd.rpc import ErrorCode, RpcError
from tests.conftest import (
    ROOT,
    RunningDaemon,
    StationFile,
    free_ports,
    running_daemon,
)
from tests.test_daemon import labctl

SEED_QBER, QBER_TOLERANCE, SEED_QBER_SPREAD = 0.0266, 0.005, 0.0033
SEED_SKR_BPS = {"TR1": 78.764e3, "TR2": 195.360e3}
HOUR_S = 3600.0
RUN_S = 10.0
#: Eight systems on C28 to C35, TR1- and TR2-type in turn.
EIGHT = {c: ("TR1", "TR2")[c % 2] for c in range(28, 36)}


def write_qkd_station(directory: Path, systems: dict[int, str], speed: float = 100.0,
                      bias: bool = True) -> StationFile:
    """A pump (the one required role), and per system an AWG and an ID1000 (and, if ``bias``,
    the bias controller on the first TR1), calibrated as the default instruments.toml; counting
    windows of 0.6 s of wall time at ``speed``."""
    shipped = load_config(ROOT / "instruments.toml").qkd.channels
    calibration = {shipped[k].system: shipped[k] for k in shipped}
    names = ["rpc", "pub", "control", "pump", "bias",
             *(f"{kind}{c}" for c in systems for kind in ("awg", "spd"))]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    rpc, pub = f"tcp://127.0.0.1:{ports['rpc']}", f"tcp://127.0.0.1:{ports['pub']}"
    text = f"""
[daemon]
rpc = "{rpc}"
pub = "{pub}"
database = "{directory / 'labd.sqlite'}"
call_timeout_s = 5.0

[simulation]
seed = 7
speed = {speed}
comb = "ideal"
control = "tcp://127.0.0.1:{ports['control']}"

[instruments.pump]
role = "pump_laser"
model = "santec.TSL570"
resource = "TCPIP::127.0.0.1::{ports['pump']}::SOCKET"

[instruments.bias]
role = "bias"
model = "thorlabs.MBX"
resource = "TCPIP::127.0.0.1::{ports['bias']}::SOCKET"

[qkd]
update_interval_s = 0.6
integration_time_s = {0.6 * speed}
"""
    biased = next(c for c, system in systems.items() if system == "TR1") if bias else None
    for channel, system in systems.items():
        fields = calibration[system].model_dump(exclude={"awg", "counter", "bias"})
        text += f"""
[instruments.awg{channel}]
role = "awg"
model = "keysight.M8195A"
resource = "TCPIP::127.0.0.1::{ports[f'awg{channel}']}::SOCKET"

[instruments.spd{channel}]
role = "spd_counter"
model = "idquantique.ID1000"
resource = "tcp://127.0.0.1:{ports[f'spd{channel}']}"

[qkd.channels.{channel}]
awg = "awg{channel}"
counter = "spd{channel}"
{'bias = "bias"' if channel == biased else ""}
""" + "".join(f"{key} = {value!r}\n".replace("'", '"') for key, value in fields.items())
    path = directory / "instruments.toml"
    path.write_text(text)
    return StationFile(path, rpc, pub, ports)


@pytest.fixture(scope="module")
def qkd_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    """TR1 on C31, TR2 on C32 (adjacent) and on C34 (two channels away)."""
    station = write_qkd_station(tmp_path_factory.mktemp("qkd"), {31: "TR1", 32: "TR2",
                                                                 34: "TR2"})
    with running_daemon(station) as daemon:
        yield daemon


@pytest.fixture
def operator(qkd_daemon: RunningDaemon) -> Iterator[Client]:
    client = Client(qkd_daemon.station.rpc, timeout_s=60.0)
    client.acquire_lease("qkd tester")
    yield client
    client.call("qkd.stop")
    client.call("lease.release", lease=client.lease)
    client.close()


def run(client: Client, channels: list[dict[str, Any]] | None,
        seconds: float = RUN_S) -> dict[int, dict[str, Any]]:
    """Start, count for ``seconds``, stop; the last status per channel."""
    client.call("qkd.start", **({} if channels is None else {"channels": channels}))
    time.sleep(seconds)
    status = client.call("qkd.stop")
    return {c["channel"]: c for c in status["channels"]}


def hour_rate_bps(status: dict[str, Any], efficiency: float) -> float:
    """Finite-key rate, after post-processing, of a one-hour block at the measured gains and
    QBERs (the sending ratio 29:2:1 of the seed's systems)."""
    classes = [estimation.ClassEstimate(**status["classes"][k]) for k in estimation.CLASS_NAMES]
    protocol = estimation.Protocol(efficiency=efficiency)
    return estimation.estimate(estimation.block_of(classes, protocol, HOUR_S), protocol).skr_bps


def assert_seed_like(status: dict[str, Any]) -> None:
    assert status["error"] is None
    assert status["block_s"] >= 120.0
    assert status["qber"] == pytest.approx(SEED_QBER, abs=QBER_TOLERANCE)
    for name in estimation.CLASS_NAMES:
        assert status["classes"][name]["gain"] > 0
    assert 0 < status["skr_bps"] < status["skr_asymptotic_bps"] < status["sifted_bps"]
    efficiency = {"TR1": 0.80, "TR2": 0.85}[status["system"]]
    seed = SEED_SKR_BPS[status["system"]]
    assert hour_rate_bps(status, efficiency) == pytest.approx(seed, rel=0.25)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tr1_and_tr2_alone_and_together_give_the_seed_qber_and_key_rates(
    operator: Client, qkd_daemon: RunningDaemon
) -> None:
    estimates = Subscription(qkd_daemon.station.pub, ("qkd.",), timeout_s=30.0)
    tr1 = run(operator, [{"channel": 31}])[31]
    assert tr1["system"] == "TR1"
    assert_seed_like(tr1)
    topic, message = next(estimates)
    estimates.close()
    assert topic == "qkd.31" and {"qber", "skr_bps", "classes", "seq", "t"} <= set(message)

    tr2 = run(operator, [{"channel": 32}])[32]
    assert_seed_like(tr2)

    both = run(operator, None)  # the seed's second scenario: TR1 and TR2 on adjacent channels
    assert set(both) == {31, 32}
    for status in both.values():
        assert_seed_like(status)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_adjacent_and_non_adjacent_channels_do_not_differ(operator: Client) -> None:
    """Not significantly at the seed's resolution: its QBERs spread by 0.33 to 0.48 % over an
    hour. The counts here resolve far less (~ 1e-5): the neighbour's guard-line crosstalk
    (qkd_link.py) does show, as ~ 0.04 % more QBER on TR1 beside TR2."""
    adjacent = run(operator, [{"channel": 31}, {"channel": 32}])
    apart = run(operator, [{"channel": 31}, {"channel": 34}])
    for a, b in ((adjacent[31], apart[31]), (adjacent[32], apart[34])):
        assert abs(a["qber"] - b["qber"]) < SEED_QBER_SPREAD / 3
        # MUX + DEMUX lose 4.7 to 5.2 dB depending on the channel (seed): up to 12 % in gain
        assert a["gain"] == pytest.approx(b["gain"], rel=0.15)
        efficiency = {"TR1": 0.80, "TR2": 0.85}[a["system"]]
        assert hour_rate_bps(a, efficiency) == pytest.approx(hour_rate_bps(b, efficiency),
                                                             rel=0.15)


def test_bad_requests_are_refused_with_what_was_wrong(operator: Client) -> None:
    with pytest.raises(RpcError) as unknown:
        operator.call("qkd.start", channels=[{"channel": 40}])
    assert unknown.value.code == ErrorCode.INVALID_PARAMS
    assert "channel 40" in unknown.value.message and unknown.value.data["known"] == [31, 32, 34]
    with pytest.raises(RpcError) as mu:
        operator.call("qkd.start", channels=[
            {"channel": 31, "transmitter": {"intensities": [0.6, 0.16, 0.008]}}])
    assert mu.value.code == ErrorCode.INVALID_PARAMS and "mu" in mu.value.message
    with pytest.raises(RpcError) as order:
        operator.call("qkd.start", channels=[
            {"channel": 32, "transmitter": {"intensities": [0.6, 0.008, 0.06]}}])
    assert "channels[0].transmitter" in order.value.message and "nu1" in order.value.message
    with pytest.raises(RpcError) as twice:
        operator.call("qkd.start", channels=[{"channel": 32}, {"channel": 32}])
    assert "twice" in twice.value.message
    with Client(operator.endpoint) as observer, pytest.raises(RpcError) as lease:
        observer.call("qkd.start")
    assert lease.value.code == ErrorCode.LEASE_REQUIRED
    assert operator.call("qkd.status")["running"] is False


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_eight_channels_at_once_run_and_report(tmp_path: Path) -> None:
    station = write_qkd_station(tmp_path, EIGHT, speed=20.0, bias=False)
    with running_daemon(station) as daemon:
        client = Client(station.rpc, timeout_s=120.0)
        client.acquire_lease("qkd tester", ttl_s=600)
        started = client.call("qkd.start", channels=[
            {"channel": c, "transmitter": {"pattern_slots": 4096}} for c in EIGHT])
        assert started["running"] and len(started["channels"]) == 8
        with pytest.raises(RpcError) as busy:
            client.call("qkd.start")
        assert busy.value.code == ErrorCode.BUSY
        time.sleep(RUN_S)
        status = {c["channel"]: c for c in client.call("qkd.stop")["channels"]}
        client.close()
        daemon.stop()
    assert sorted(status) == sorted(EIGHT)
    for channel, entry in status.items():
        assert entry["system"] == EIGHT[channel] and entry["error"] is None
        assert entry["block_s"] > 0
        assert entry["qber"] == pytest.approx(SEED_QBER, abs=QBER_TOLERANCE), channel
        assert entry["skr_asymptotic_bps"] > 0


def test_labctl_starts_watches_and_stops_qkd(operator: Client, qkd_daemon: RunningDaemon) -> None:
    rpc, lease = qkd_daemon.station.rpc, ("--lease", operator.lease or "")
    started = labctl(rpc, *lease, "--timeout", "60", "qkd", "start", "--channels", "32,34")
    assert started.returncode == 0, started.stderr
    assert started.stdout.splitlines()[0] == "running"
    assert "C32 TR2" in started.stdout and "C34 TR2" in started.stdout
    time.sleep(3.0)
    status = labctl(rpc, "qkd", "status")  # an observer: no lease needed
    assert status.returncode == 0, status.stderr
    assert re.search(r"C32 TR2: QBER \d\.\d\d %, gain .* kbps", status.stdout), status.stdout
    stopped = labctl(rpc, *lease, "--json", "qkd", "stop")
    assert stopped.returncode == 0, stopped.stderr
    result = json.loads(stopped.stdout)
    assert result["running"] is False
    assert [c["channel"] for c in result["channels"]] == [32, 34]
    refused = labctl(rpc, "qkd", "start")
    assert refused.returncode == 1 and str(int(ErrorCode.LEASE_REQUIRED)) in refused.stderr

