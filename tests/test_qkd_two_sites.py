"""Two sites: Alice's and Bob's halves in two daemons, the sifting information over ZeroMQ.

One simulated testbed (``labd sim``, as for daemons on other hosts) serves both: Alice's daemon
(``[qkd] site = "alice"``) has the AWGs and serves the sifting endpoint, Bob's (``site = "bob"``)
the time controllers and asks Alice there. The world runs at the wall clock's pace, so Bob's
0.6 s counting windows are 0.6 s of gates.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from labd.client import Client
from labd.rpc import ErrorCode, RpcError
from tests.conftest import ROOT, StationFile, free_ports, labd, running_daemon
from tests.test_qkd_daemon import QBER_TOLERANCE, RUN_S, SEED_QBER, write_qkd_station


def write_site_station(testbed: StationFile, directory: Path, site: str,
                       sifting: str) -> StationFile:
    """The station of one of two sites, on the testbed that ``labd sim`` serves from
    ``testbed``'s file: no [simulation], its own endpoints and record, only its site's QKD
    instruments (Alice the AWGs, Bob the time controllers), ``[qkd] site`` and ``sifting``."""
    directory.mkdir()
    rpc, pub = (f"tcp://127.0.0.1:{port}" for port in free_ports(2))
    text = re.sub(r"\[simulation\]\n(?:.+\n)*\n", "", testbed.path.read_text())
    text = text.replace(testbed.rpc, rpc).replace(testbed.pub, pub)
    text = text.replace(str(testbed.path.parent), str(directory))
    text = text.replace("[qkd]\n", f'[qkd]\nsite = "{site}"\nsifting = "{sifting}"\n')
    absent = {"alice": ("spd", "counter"), "bob": ("awg", "awg")}[site]
    text = re.sub(rf"\[instruments\.{absent[0]}\d+\]\n(?:.+\n)*", "", text)
    text = re.sub(rf"^{absent[1]} = .*\n", "", text, flags=re.M)
    path = directory / "instruments.toml"
    path.write_text(text)
    return StationFile(path, rpc, pub, {})


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_alice_and_bob_in_two_daemons_sift_over_zeromq(tmp_path: Path) -> None:
    """Bob cannot start before Alice; then he counts TR1 on C31 at the seed's QBER."""
    testbed = write_qkd_station(tmp_path, {31: "TR1"}, speed=1.0, bias=False)
    sifting = f"tcp://127.0.0.1:{free_ports(1)[0]}"
    alice_station = write_site_station(testbed, tmp_path / "alice", "alice", sifting)
    bob_station = write_site_station(testbed, tmp_path / "bob", "bob", sifting)
    sim = subprocess.Popen(labd("sim", "--config", str(testbed.path)), cwd=ROOT,
                           stdout=subprocess.PIPE, text=True)
    try:
        assert sim.stdout is not None
        while sim.stdout.readline().strip() != "ready":
            assert sim.poll() is None, "labd sim exited"
        with running_daemon(alice_station), running_daemon(bob_station):
            alice, bob = (Client(s.rpc, timeout_s=60.0) for s in (alice_station, bob_station))
            alice.acquire_lease("alice")
            bob.acquire_lease("bob")
            with pytest.raises(RpcError) as early:
                bob.call("qkd.start", channels=[{"channel": 31}])
            assert early.value.code == ErrorCode.INSTRUMENT_FAULT
            assert "sends no pattern on channel 31" in early.value.message
            sent = alice.call("qkd.start", channels=[{"channel": 31,
                                                      "transmitter": {"pattern_slots": 4096}}])
            assert sent["running"] and sent["channels"][0]["qber"] is None
            with pytest.raises(RpcError) as settings:
                bob.call("qkd.start", channels=[{"channel": 31, "transmitter": {"p_x": 0.6}}])
            assert "Alice's daemon draws the patterns" in settings.value.message
            bob.call("qkd.start", channels=[{"channel": 31}])
            time.sleep(RUN_S)
            counted = bob.call("qkd.stop")["channels"][0]
            assert alice.call("qkd.stop")["running"] is False
            alice.close()
            bob.close()
    finally:
        sim.terminate()
        sim.wait(timeout=20)
    assert counted["error"] is None and counted["block_s"] > 0
    assert counted["qber"] == pytest.approx(SEED_QBER, abs=QBER_TOLERANCE)
    assert counted["skr_asymptotic_bps"] > 0
