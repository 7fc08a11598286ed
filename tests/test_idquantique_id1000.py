"""ID Quantique ID1000: the driver's messages, driver and emulator over real ZeroMQ sockets, the
ZeroMQ adapter's failures and recovery, and the counting world's click statistics."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zmq
from pymeasure.test import expected_protocol

from drivers.errors import (
    ConnectionLost,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
)
from drivers.idquantique_id1000 import ID1000, ID1000Counter
from drivers.zmq_adapter import ZmqAdapter
from sim_backends.instruments.idquantique_id1000 import GatedCounterWiring, ID1000Emulator
from sim_backends.world.counters import (
    ClassFlux,
    CounterMode,
    CountingSystem,
    DetectorInput,
    SinglePhotonDetector,
    registered_events,
)
from tests.conftest import free_port

# --- the driver's messages (pymeasure's ProtocolAdapter works per message, like REQ/REP) ------


def connect_pairs(inputs: tuple[int, ...] = (1,), gated: tuple[int, ...] = ()) -> list[Any]:
    """What the role sends on connection: find the counters, put each in CYCLE mode."""
    pairs: list[Any] = [(f"INPU{n}:ENAB?", "ON" if n in inputs else "OFF") for n in range(1, 5)]
    pairs += [(f"TSCO{k}:WIND:ENAB?", "ON" if k in gated else "OFF") for k in range(1, 13)]
    blocks = [f"INPU{n}" for n in inputs] + [f"TSCO{k}" for k in gated]
    return pairs + [(f"{b}:COUN:MODE CYCLE", "Value set to CYCLE") for b in blocks]


def test_connection_finds_enabled_inputs_and_gated_combiners() -> None:
    pairs = connect_pairs(inputs=(1, 2), gated=(9,))
    with expected_protocol(ID1000Counter, pairs, name="spd") as counter:
        assert list(counter.counters) == ["input1", "input2", "tsco9"]


def test_integration_time_is_set_on_every_counter_in_ms() -> None:
    pairs = [*connect_pairs(gated=(9,)),
             ("INPU1:COUN:INTE 250", "Value set to 250"),
             ("TSCO9:COUN:INTE 250", "Value set to 250"),
             ("INPU1:COUN:INTE?", "250")]
    with expected_protocol(ID1000Counter, pairs, name="spd") as counter:
        counter.integration_time_s = 0.25
        assert counter.integration_time_s == 0.25
        with pytest.raises(ValueError, match="outside"):
            counter.integration_time_s = 70.0  # 65535 ms at most: refused before the wire
        counter.safe_state()  # nothing to switch off, nothing sent


def test_read_counts_by_counter_name() -> None:
    pairs = [*connect_pairs(gated=(9,)), ("INPU1:COUN?", "1234"), ("TSCO9:COUN?", "56")]
    with expected_protocol(ID1000Counter, pairs, name="spd") as counter:
        assert counter.read_counts() == {"input1": 1234, "tsco9": 56}


def test_error_reply_raises_naming_instrument_and_command() -> None:
    pairs = [*connect_pairs(), ("INPU1:COUN:INTE 5", "SCPI_ERR_INVALID_VALUE")]
    with (expected_protocol(ID1000Counter, pairs, name="spd") as counter,
          pytest.raises(InstrumentReportedError) as caught):
        counter.integration_time_s = 0.005
    assert caught.value.instrument == "spd"
    assert caught.value.command == "INPU1:COUN:INTE"
    assert "SCPI_ERR_INVALID_VALUE" in str(caught.value)


def test_input_block_properties() -> None:
    pairs = [("INPU2:THRE 1V", "Value set to 0.999424V"), ("INPU2:THRE?", "0.999424V"),
             ("INPU2:ENAB OFF", "Value set to OFF"), ("INPU2:ENAB?", "OFF"),
             ("INPU2:DELAY 1500", "Value set to 1500TB"), ("INPU2:DELAY?", "1500TB"),
             ("INPU2:COUN:MODE ACCUM", "Value set to ACCUM"), ("INPU2:COUN:RESE",
                                                               "Counter value set to 0 ")]
    with expected_protocol(ID1000, pairs) as tc:
        tc.input_2.threshold_v = 1
        assert tc.input_2.threshold_v == pytest.approx(0.999424)
        tc.input_2.enabled = False
        assert tc.input_2.enabled is False
        tc.input_2.delay_ps = 1500
        assert tc.input_2.delay_ps == 1500
        tc.input_2.mode = "accumulate"
        tc.input_2.reset_counter()


# --- driver and emulator over ZeroMQ, on a world with a fake clock -----------------------------


class FakeClock:
    """World time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now_s = 0.0


class ServedEmulator:
    """The emulator's REP server on a free loopback port, in an event loop on its own thread."""

    def __init__(self, emulator: ID1000Emulator) -> None:
        self.emulator = emulator
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._run(emulator.start("127.0.0.1", self.port))

    def _run(self, coroutine: Any) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(5)

    @property
    def resource(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def close(self) -> None:
        if not self.loop.is_closed():
            self._run(self.emulator.close())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()


# A busy detector, so that dead time matters: 200 kcps dark, 1 us dead: R tau = 0.2
DARK_HZ, DEAD_S = 2.0e5, 1.0e-6
MARKERS = {"mu.X.0": ClassFlux(gate_rate_hz=1e8, mean_photons=0.0)}  # gates, no light


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def counting() -> CountingSystem:
    detector = SinglePhotonDetector(dark_count_rate_hz=DARK_HZ, dead_time_s=DEAD_S,
                                    afterpulse_probability=0.0)
    return CountingSystem(np.random.default_rng(11), inputs={1: DetectorInput(detector)},
                          flux=lambda n: MARKERS if n == 1 else {})


@pytest.fixture
def served(counting: CountingSystem, clock: FakeClock) -> Iterator[ServedEmulator]:
    def sync() -> float:
        counting.advance(clock.now_s - counting.time_s)
        return counting.time_s

    wiring = {9: GatedCounterWiring(((1, "mu.X.0"),), marker_link="INPU3")}
    server = ServedEmulator(ID1000Emulator(counting, sync, gated=wiring))
    yield server
    server.close()


def exchange(resource: str, *messages: str) -> list[str]:
    """Send each message on a raw REQ socket and collect the replies."""
    context: zmq.Context[Any] = zmq.Context.instance()
    with context.socket(zmq.REQ) as socket:
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(resource)
        replies = []
        for message in messages:
            socket.send_string(message)
            assert socket.poll(2000), f"no reply to {message!r}"
            replies.append(socket.recv_string())
        return replies


def test_emulator_answers_every_message_in_the_controllers_words(served: ServedEmulator) -> None:
    replies = exchange(
        served.resource, "*IDN?", "INPU1:COUN:INTE 250", "input1:counter:integrationtime?",
        "INPU1:COUN:INTE 1000;MODE CYCL", "INPU2:THRE 1", "INPU2:THRE 500mV;THRE?", "INPU2:ENAB",
        "INPU1:COUN:RESE", "TSCO9:FIR:LINK?;:TSCO9:WIND:BEGI:LINK?", "TSCO3:FIR:LINK?")
    assert replies[0].startswith("ID Quantique,ID1000,")
    assert replies[1:] == [
        "Value set to 250", "250", "Value set to 1000;Value set to CYCLE",
        "Value set to 0.999424V", "Value set to 0.499712V;0.499712V", "Value set to ON",
        "Counter value set to 0 ", "INPU1;INPU3", "NONE"]


def test_emulator_errors_are_the_reply(served: ServedEmulator) -> None:
    replies = exchange(served.resource, "INPU1:BOGUS 1", "INPU1:THRE abc", "INPU1:COUN:INTE 0",
                       "INPU7:COUN?", "INPU1:THRE 1 furlong", "INPU1:COUN:MODE SOMETIMES",
                       "INPU1:THRE", "", "INPU1:COUN?")
    assert replies == ["SCPI_ERR_INVALID_CMD", "SCPI_ERR_PARAM_TYPE", "SCPI_ERR_INVALID_VALUE",
                       "SCPI_ERR_NUM_SUF_INVALID", "SCPI_ERR_PARAM_UNITS", "SCPI_ERR_PARAM_TYPE",
                       "SCPI_ERR_PARAM_COUNT", "SCPI_ERR_NO_COMMAND", "0"]


def test_driver_reports_a_bad_command_as_the_instrument_error(served: ServedEmulator) -> None:
    tc = ID1000(served.resource, timeout_s=2.0)
    try:
        with pytest.raises(InstrumentReportedError, match="SCPI_ERR_INVALID_CMD"):
            tc.ask("HIST1:BWID?")  # histograms are not emulated
        assert tc.identity().startswith("ID Quantique,ID1000")  # the exchange goes on
    finally:
        tc.adapter.close()


def test_counts_appear_once_a_window_has_elapsed(served: ServedEmulator,
                                                 clock: FakeClock) -> None:
    counter = ID1000Counter(served.resource, name="spd")
    try:
        assert list(counter.counters) == ["input1", "input2", "input3", "input4", "tsco9"]
        counter.integration_time_s = 0.1
        assert counter.integration_time_s == pytest.approx(0.1)
        clock.now_s += 0.099
        assert counter.read_counts()["input1"] == 0  # the first window is still open
        clock.now_s += 0.002
        counts = counter.read_counts()
        assert counts["input1"] == served.emulator.input_counters[1].value > 0
        assert counts["input2"] == 0  # nothing plugged in
        # dark clicks inside the marker windows: 1e8 gates/s x 0.5 ns covers 5 % of the time
        assert 0 < counts["tsco9"] < counts["input1"] * 0.1
    finally:
        counter.close()


def test_dark_counts_through_the_driver_match_rate_times_window_less_dead_time(
        served: ServedEmulator, clock: FakeClock) -> None:
    """Registered rate R / (1 + R tau) (non-paralysable dead time), here 16 667 per 100 ms;
    renewal theory gives the spread, sqrt(R T / (1 + R tau)^3) = 108 per window. The mean of 40
    windows must lie within 5 standard errors (+-85): the 17 % dead-time loss is ~40x that."""
    counter = ID1000Counter(served.resource, name="spd")
    try:
        counter.integration_time_s = 0.1
        windows = []
        for _ in range(40):
            clock.now_s += 0.1
            windows.append(counter.read_counts()["input1"])
        busy = DARK_HZ * DEAD_S
        expected = DARK_HZ * 0.1 / (1 + busy)
        spread = math.sqrt(DARK_HZ * 0.1 / (1 + busy) ** 3)
        assert abs(np.mean(windows) - expected) < 5 * spread / math.sqrt(len(windows))
        assert 0.5 * spread < np.std(windows) < 1.5 * spread
    finally:
        counter.close()


# --- faults: what the driver does --------------------------------------------------------------


def test_stall_times_out_then_the_adapter_recovers(served: ServedEmulator) -> None:
    counter = ID1000Counter(served.resource, name="spd", timeout_s=0.3)
    try:
        served.emulator.faults.stall = True
        with pytest.raises(InstrumentTimeout) as caught:
            counter.read_counts()
        assert (caught.value.instrument, caught.value.command) == ("spd", "INPU1:COUN?")
        served.emulator.faults.stall = False
        # the lazy pirate reopened the REQ socket: the next exchange works
        assert counter.read_counts()["input1"] == 0
    finally:
        counter.close()


def test_drop_connection_is_a_lost_connection_until_mended(served: ServedEmulator) -> None:
    counter = ID1000Counter(served.resource, name="spd", timeout_s=0.3)
    try:
        served.emulator.faults.drop_connection = True
        with pytest.raises(ConnectionLost) as caught:
            counter.read_counts()
        assert (caught.value.instrument, caught.value.command) == ("spd", "INPU1:COUN?")
        with pytest.raises(ConnectionLost):  # nothing listens any more
            counter.read_counts()
        served.emulator.faults.drop_connection = False
        time.sleep(0.3)  # the controller comes back; ZeroMQ reconnects by itself
        assert counter.read_counts()["input1"] == 0
    finally:
        counter.close()


def test_reply_delay_is_a_slow_but_correct_reply(served: ServedEmulator) -> None:
    counter = ID1000Counter(served.resource, name="spd", timeout_s=1.0)
    try:
        served.emulator.faults.reply_delay_s = 0.2
        started = time.monotonic()
        assert counter.integration_time_s == 1.0
        assert time.monotonic() - started >= 0.2
    finally:
        counter.close()


def test_garbage_reply_is_an_unreadable_reply(served: ServedEmulator) -> None:
    counter = ID1000Counter(served.resource, name="spd", timeout_s=1.0)
    try:
        served.emulator.faults.garbage_reply = True
        with pytest.raises(InstrumentError, match="unreadable reply") as caught:
            counter.read_counts()
        assert (caught.value.instrument, caught.value.command) == ("spd", "INPU1:COUN?")
        served.emulator.faults.garbage_reply = False
        assert counter.read_counts()["input1"] == 0
    finally:
        counter.close()


def test_adapter_reports_an_endpoint_nobody_listens_on() -> None:
    adapter = ZmqAdapter(f"tcp://127.0.0.1:{free_port()}", name="spd", timeout_s=0.2)
    try:
        with pytest.raises(ConnectionLost, match="no connection"):
            adapter.write("*IDN?")
        with pytest.raises(InstrumentError, match="no reply pending"):
            adapter.read()
    finally:
        adapter.close()
    with pytest.raises(ValueError, match="not a ZeroMQ endpoint"):
        ZmqAdapter("TCPIP::127.0.0.1::5555::SOCKET")


# --- the counting world ------------------------------------------------------------------------


@pytest.mark.parametrize(("rate_hz", "window_s", "dead_s"),
                         [(1.0e6, 0.01, 100e-9), (50.0, 0.01, 100e-9), (1.0e7, 0.001, 1e-6)])
def test_registered_events_follow_renewal_theory(rate_hz: float, window_s: float,
                                                 dead_s: float) -> None:
    """Mean R T / (1 + R tau) exactly; variance R T / (1 + R tau)^3 for large counts (Poisson
    when R tau << 1). 3000 draws: mean within 5 standard errors, variance within 15 %
    (its relative standard error is sqrt(2 / 3000) = 2.6 %)."""
    rng = np.random.default_rng(3)
    draws = np.array([registered_events(rng, rate_hz, window_s, dead_s) for _ in range(3000)])
    busy = rate_hz * dead_s
    mean = rate_hz * window_s / (1 + busy)
    variance = mean / (1 + busy) ** 2
    assert abs(draws.mean() - mean) < 5 * math.sqrt(variance / draws.size)
    assert draws.var() == pytest.approx(variance, rel=0.15)


def test_clicks_split_by_gate_class_with_afterpulses() -> None:
    """Two classes at 0.5 GHz each, mu 0.5 and 0.05 photons per gate, 10 % efficiency, 1 %
    afterpulses, dead time 50 ns: per class clicks = f (1 - e^(-eta mu)) T / (1 + R tau) plus
    the untimed clicks (dark, afterpulses) landing in its 0.5 ns windows (25 % of the time
    each). Expected within 5 sigma (Poisson sigma, an upper bound for dead-time counts)."""
    flux = {"mu": ClassFlux(5e8, 0.5), "nu": ClassFlux(5e8, 0.05)}
    detector = SinglePhotonDetector(efficiency=0.1, dark_count_rate_hz=1e4, dead_time_s=50e-9,
                                    afterpulse_probability=0.01)
    world = CountingSystem(np.random.default_rng(5), inputs={1: DetectorInput(detector)},
                           flux=lambda _: flux)
    singles, mu, nu = world.add_counter(1), world.add_counter(1, "mu"), world.add_counter(1, "nu")
    world.advance(1.0)
    photon_hz = {k: f.gate_rate_hz * -math.expm1(-0.1 * f.mean_photons) for k, f in flux.items()}
    true_hz = 1e4 + sum(photon_hz.values())
    kept = 1 / (1 + true_hz * 50e-9)
    registered = true_hz * kept
    untimed_hz = (1e4 * kept + 0.01 * registered) * 0.25
    for counter, name in ((mu, "mu"), (nu, "nu")):
        expected = photon_hz[name] * kept + untimed_hz
        assert abs(counter.value - expected) < 5 * math.sqrt(expected)
    assert abs(singles.value - registered * 1.01) < 5 * math.sqrt(registered)
    assert mu.value + nu.value <= singles.value


def test_windows_cycle_and_accumulate() -> None:
    """The default detector: 500 dark counts per s, 1 s windows."""
    world = CountingSystem(np.random.default_rng(2))
    cycle, total = world.add_counter(1), world.add_counter(1)
    total.mode = CounterMode.ACCUMULATE
    world.advance(0.999)
    assert cycle.value == total.value == 0  # no window has completed yet
    windows = []
    for _ in range(3):
        world.advance(0.5)
        world.advance(0.5)
        windows.append(cycle.value)
    assert total.value == sum(windows)  # the same clicks, latched at the same window ends
    world.advance(10.25)  # ten windows end at once: only the last one is reported
    assert abs(cycle.value - 500) < 5 * math.sqrt(500)
    assert abs(total.value - 500 * 14) < 5 * math.sqrt(500 * 14)  # windows ended at 1..14 s


def test_a_threshold_above_the_pulses_or_a_disabled_input_counts_nothing() -> None:
    world = CountingSystem(np.random.default_rng(4))
    counter = world.add_counter(1)
    world.inputs[1].threshold_v = 2.5  # the detector's pulses are 2 V high
    world.advance(1.0)
    assert counter.value == 0
    world.inputs[1].threshold_v = 0.5
    world.inputs[1].enabled = False
    world.advance(1.0)
    assert counter.value == 0
    world.inputs[1].enabled = True
    world.advance(1.0)
    assert counter.value > 0
