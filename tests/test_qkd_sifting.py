"""The sifting exchange between Alice's and Bob's halves over ZeroMQ (two endpoints, one host),
and Bob's tally of the combiners' counts."""

from __future__ import annotations

import asyncio

import pytest
import zmq.asyncio

from labd.qkd.patterns import TR2, generate
from labd.qkd.receiver import COMBINERS, Tally
from labd.qkd.sifting import AliceServer, Announcement, LocalAlice, RemoteAlice
from tests.conftest import free_port


def test_bob_gets_alices_announcement_over_zeromq() -> None:
    announcement = Announcement.of(32, generate(TR2.replace(seed=3, pattern_slots=1024)))
    assert sum(announcement.class_shares) == pytest.approx(1.0)
    assert not announcement.secure
    endpoint = f"tcp://127.0.0.1:{free_port()}"

    async def exchange() -> tuple[Announcement, str]:
        context = zmq.asyncio.Context()
        server = AliceServer(LocalAlice({32: announcement}), endpoint, context)
        serving = asyncio.create_task(server.serve())
        bob = RemoteAlice(endpoint, timeout_s=2.0, context=context)
        try:
            received = await bob.announcement(32)
            with pytest.raises(LookupError) as missing:
                await bob.announcement(31)
            return received, str(missing.value)
        finally:
            serving.cancel()
            bob.close()
            server.close()
            context.term()

    received, missing = asyncio.run(exchange())
    assert received == announcement
    assert "no pattern on channel 31" in missing


def test_the_tally_adds_windows_per_class_and_basis() -> None:
    tally = Tally()
    assert tally.block((0.5, 0.16, 0.008)) is None
    counts = {name: 10 * n for n, name in enumerate(COMBINERS, 1)}
    for _ in range(2):
        tally.add(counts, (29e9, 2e9, 1e9))
    block = tally.block((0.5, 0.16, 0.008))
    assert block is not None and block.pulses == pytest.approx(64e9)
    assert block.mu.x.detections == 2 * (10 + 20) and block.mu.x.errors == 2 * 20
    assert block.nu2.y.detections == 2 * (110 + 120) and block.nu2.y.errors == 2 * 120
    with pytest.raises(KeyError, match="tsco12"):
        tally.add({k: v for k, v in counts.items() if k != "tsco12"}, (1.0, 1.0, 1.0))
