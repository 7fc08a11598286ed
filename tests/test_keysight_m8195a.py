"""Keysight M8195A: driver bytes, emulator framing and rules, the two together, faults."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import numpy as np
import pytest
from numpy.typing import NDArray
from pymeasure.test import expected_protocol

from drivers.errors import (
    ConnectionLost,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
)
from drivers.keysight_m8195a import M8195AAwg
from sim_backends.instruments.keysight_m8195a import M8195AEmulator
from sim_backends.scpi import ScpiError
from sim_backends.world.awg import ArbitraryWaveformGenerator, DacMode, Segment
from tests.conftest import EmulatorThread

NO_ERROR = (b"SYST:ERR?", b'0,"No error"')
LF, SEMICOLON = 10, 59


def block(data: bytes) -> bytes:
    """An IEEE 488.2 definite-length block."""
    length = str(len(data)).encode()
    return b"#" + str(len(length)).encode() + length + data


def awkward_codes(length: int = 1280) -> NDArray[np.int8]:
    """DAC codes full of the bytes a line framer trips on (LF, ';'), ending with an LF."""
    return np.resize(np.array([0, LF, SEMICOLON, -127, 127, LF], dtype=np.int8), length)


def frame_marker(length: int) -> NDArray[np.bool_]:
    """One marker pulse of 128 samples per pattern: a frame sync."""
    return np.arange(length) < 128


# --- the driver's bytes -----------------------------------------------------------------------

def test_upload_sends_codes_and_marker_bytes_as_one_int8_block() -> None:
    codes = awkward_codes()
    bits = frame_marker(codes.size).astype(np.int8)
    data = np.column_stack((codes, bits)).ravel().tobytes()
    pairs = [(b":INST:DACM?", b"DCM"), (b":TRAC1:DEL:ALL", None), (b":TRAC1:DEF 1,1280", None),
             NO_ERROR, (b":TRAC1:DATA 1,0," + block(data) + b"\n", None), NO_ERROR,
             (b":TRAC1:SEL 1", None), NO_ERROR]
    with expected_protocol(M8195AAwg, pairs, name="awg") as awg:
        awg.upload_pattern(1, codes / 127, frame_marker(codes.size))


def test_upload_sets_the_dac_mode_and_sends_plain_codes_off_the_marker_channel() -> None:
    codes = awkward_codes(1536)
    pairs = [(b":INST:DACM?", b"FOUR"), (b":INST:DACM DCM", None), NO_ERROR,
             (b":TRAC2:DEL:ALL", None), (b":TRAC2:DEF 1,1536", None), NO_ERROR,
             (b":TRAC2:DATA 1,0," + block(codes.tobytes()) + b"\n", None), NO_ERROR,
             (b":TRAC2:SEL 1", None), NO_ERROR]
    with expected_protocol(M8195AAwg, pairs, name="awg") as awg:
        awg.upload_pattern(2, codes / 127)


def test_rate_outputs_start_and_stop_protocol() -> None:
    outputs_on = [pair for ch in (1, 2, 3, 4) for pair in ((f":OUTP{ch} ON".encode(), None),
                                                           NO_ERROR)]
    pairs = [(b":FREQ:RAST?", b"6.4000000000E+10"), *outputs_on, (b":INIT:IMM", None), NO_ERROR,
             (b":ABOR", None), *[(f":OUTP{ch}?".encode(), b"1") for ch in (1, 2, 3, 4)]]
    with expected_protocol(M8195AAwg, pairs, name="awg") as awg:
        assert awg.sample_rate_hz == 64e9
        awg.output_enabled = True
        awg.start()
        awg.stop()
        assert awg.output_enabled is True


def test_instrument_error_raises_naming_instrument_and_command() -> None:
    pairs = [(b":INST:DACM?", b"DCM"), (b":TRAC2:DEL:ALL", None), (b":TRAC2:DEF 1,1280", None),
             (b"SYST:ERR?", b'-221,"Settings conflict"'), NO_ERROR]
    with (expected_protocol(M8195AAwg, pairs, name="awg") as awg,
          pytest.raises(InstrumentReportedError) as caught):
        awg.upload_pattern(2, np.zeros(1280))
    assert (caught.value.instrument, caught.value.command) == ("awg", ":TRAC2:DEF")
    assert "-221" in str(caught.value)


@pytest.mark.parametrize(("channel", "samples", "markers", "rule"), [
    (1, np.zeros(1000), None, "multiple of 256.*at least 1280.*repeat the pattern 32 times"),
    (1, np.zeros(256), None, "repeat the pattern 5 times"),
    (1, np.full(1280, 1.01), None, r"\[-1, 1\]"),
    (1, np.full(1280, np.nan), None, r"\[-1, 1\]"),
    (2, np.zeros(1280), frame_marker(1280), "channel 1 in DAC mode MARK or DCM"),
    (3, np.zeros(1280), None, "channel 3 plays no pattern in DAC mode DCM"),
    (1, np.zeros(1280), np.arange(1280) % 100 < 50, "edges closer than 128"),
    (1, np.zeros(1280), np.zeros(1024, bool), r"\(1280,\) or \(1280, 2\)"),
])
def test_patterns_the_instrument_cannot_loop_raise_before_any_exchange(
        channel: int, samples: NDArray[np.float64], markers: NDArray[np.bool_] | None,
        rule: str) -> None:
    with expected_protocol(M8195AAwg, [], name="awg") as awg, pytest.raises(ValueError,
                                                                           match=rule):
        awg.upload_pattern(channel, samples, markers)


# --- the emulator on a socket -----------------------------------------------------------------

@pytest.fixture
def awg_world() -> ArbitraryWaveformGenerator:
    return ArbitraryWaveformGenerator()


@pytest.fixture
def emulator(awg_world: ArbitraryWaveformGenerator) -> M8195AEmulator:
    return M8195AEmulator(awg_world)


@pytest.fixture
def served(emulator: M8195AEmulator) -> Iterator[EmulatorThread]:
    thread = EmulatorThread(emulator)
    yield thread
    thread.close()


def exchange(port: int, message: bytes, replies: int = 0) -> list[bytes]:
    """Send one raw message (terminator included); read that many LF-terminated replies."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(message)
        received = b""
        while received.count(b"\n") < replies:
            received += sock.recv(4096)
        return received.splitlines()


def test_block_holding_terminator_and_semicolon_bytes_is_framed_whole(
        served: EmulatorThread, awg_world: ArbitraryWaveformGenerator) -> None:
    codes = awkward_codes()  # its last byte is LF: the message's own LF follows it
    message = (b":TRAC1:DEF 1,1280\n:TRAC1:DATA 1,0," + block(codes.tobytes())
               + b"\n:trac1:data 1,1278,#12\x0a\x3b;:SYST:ERR?\n")
    assert exchange(served.port, message, 1) == [b'0,"No error"']
    expected = codes.copy()
    expected[1278:] = [LF, SEMICOLON]
    np.testing.assert_array_equal(awg_world.segments[1][1].codes, expected)


def test_block_longer_than_the_stream_limit_without_any_terminator_byte(
        served: EmulatorThread, awg_world: ArbitraryWaveformGenerator) -> None:
    length = 4 * 65536  # asyncio's readuntil gives up past 64 KiB without a separator
    message = (f":TRAC1:DEF 1,{length},5;:TRAC1:DATA 1,0,".encode()
               + block(bytes(length)) + b";*OPC?\n")
    assert exchange(served.port, message, 1) == [b"1"]
    assert not awg_world.segments[1][1].codes.any()


def test_segment_rules_and_states_give_the_instruments_error_codes(
        served: EmulatorThread) -> None:
    errors = exchange(served.port, b"".join([
        b":TRAC1:DEF 1,1000\n",  # not a multiple of 256
        b":TRAC1:DEF 1,1024\n",  # below 1280
        b":TRAC1:DEF 1,1536,200\n",  # init code off -128..127
        b":TRAC1:DEF 1,1536\n",
        b":TRAC1:DATA 1,1500," + block(bytes(64)) + b"\n",  # past the end
        b":TRAC1:DATA 7,0," + block(bytes(4)) + b"\n",  # undefined segment
        b":TRAC1:DATA 1,0,#\n",  # no block after all
        b":TRAC2:DEF 1,1280\n",  # channel 2 plays nothing in SING
        b":TRAC5:DEF 1,1280\n",
        b":INIT:IMM;:TRAC1:DEF 2,1280;:INST:DACM FOUR;:ABOR\n",  # program mode only
        b":TRAC1:BOGUS\n", b":FREQ:RAST 70e9\n", b":INST:DACM SEVEN\n", b":VOLT1 2\n",
        *[b":SYST:ERR?\n"] * 15]), 15)
    assert [int(e.split(b",")[0]) for e in errors] == [
        -222, -222, -222, -223, -222, -161, -221, -114, -221, -221, -113, -222, -224, -222, 0]


def test_identity_catalogue_run_condition(served: EmulatorThread) -> None:
    replies = exchange(served.port, b"*IDN?\n:TRAC1:CAT?\n:TRAC1:DEF 3,1280;:TRAC1:DEF 1,2560;"
                       b":TRAC1:CAT?;:STAT:OPER:RUN:COND?\n:INST:DACM DCD;:INIT;"
                       b":STAT:OPER:RUN:COND?;:INST:DACM?;:FREQ:RAST 60 GHZ;:FREQ:RAST?\n", 4)
    assert replies[0].startswith(b"Keysight Technologies,M8195A,")
    assert replies[1:] == [b"0,0", b"1,2560,3,1280;0", b"15;DCD;6.0000000000E+10"]


# --- the driver against the emulator --------------------------------------------------------

@pytest.fixture
def awg(served: EmulatorThread) -> Iterator[M8195AAwg]:
    driver = M8195AAwg(served.resource, name="awg", timeout_s=2.0)
    yield driver
    driver.close()


def test_uploaded_patterns_are_played_bit_exactly(
        awg: M8195AAwg, awg_world: ArbitraryWaveformGenerator) -> None:
    rng = np.random.default_rng(3)
    im = rng.uniform(-1, 1, 64 * 40)  # 40 symbols of 64 samples: a multiple of 256
    pm = rng.uniform(-1, 1, 64 * 40)
    markers = np.column_stack((frame_marker(im.size), np.arange(im.size) < 1024))
    awg.upload_pattern(1, im, markers)
    awg.upload_pattern(2, pm)
    awg.output_enabled = True
    assert awg_world.played(1) is None  # loaded, not started
    awg.start()
    assert awg.device.running_channels == 0b11
    intensity, phase = awg_world.played(1), awg_world.played(2)
    assert intensity is not None and phase is not None
    np.testing.assert_array_equal(intensity.samples, np.rint(im * 127) / 127)
    np.testing.assert_array_equal(phase.samples, np.rint(pm * 127) / 127)
    assert phase.volts.max() == pytest.approx(0.25, abs=0.25 / 127)  # 0.5 Vpp by default
    assert intensity.sample_rate_hz == awg.sample_rate_hz == 64e9
    np.testing.assert_array_equal(intensity.sample_marker, markers[:, 0])
    np.testing.assert_array_equal(intensity.sync_marker, markers[:, 1])
    assert phase.sample_marker is None
    awg.safe_state()
    assert awg_world.played(1) is None
    assert awg.output_enabled is False


def test_a_megasample_pattern_round_trips(awg: M8195AAwg,
                                          awg_world: ArbitraryWaveformGenerator) -> None:
    samples = np.random.default_rng(4).uniform(-1, 1, 2**20)
    awg.upload_pattern(2, samples)
    np.testing.assert_array_equal(awg_world.segments[2][1].codes, np.rint(samples * 127))


def test_upload_while_running_is_refused_by_the_instrument(
        awg: M8195AAwg, awg_world: ArbitraryWaveformGenerator) -> None:
    awg.upload_pattern(1, np.zeros(1280))
    awg.start()
    with pytest.raises(InstrumentReportedError, match="-221") as caught:
        awg.upload_pattern(1, np.ones(1280))
    assert caught.value.command == ":TRAC1:DEF"
    assert not awg_world.segments[1][1].codes.any()  # the playing segment is untouched
    awg.stop()
    awg.upload_pattern(1, np.ones(1280))
    assert (awg_world.segments[1][1].codes == 127).all()


def test_instrument_properties_against_the_emulator(awg: M8195AAwg,
                                                    awg_world: ArbitraryWaveformGenerator) -> None:
    device = awg.device
    device.dac_mode = "FOUR"
    device.sample_rate_hz = 53.76e9
    device.function_mode = "STS"
    device.channels[3].output_enabled = True
    device.channels[4].amplitude_vpp = 0.8
    assert (device.dac_mode, device.sample_rate_hz, device.function_mode) == ("FOUR", 53.76e9,
                                                                             "STS")
    assert device.channels[4].amplitude_vpp == 0.8
    assert (awg_world.dac_mode, awg_world.output_on[3], awg_world.amplitude_vpp[4]) == (
        DacMode.FOUR, True, 0.8)
    device.write(":FREQ:RAST 66e9")  # past pymeasure's validator: the instrument refuses
    with pytest.raises(InstrumentReportedError, match="-222"):
        device.check_set_errors()


# --- faults -----------------------------------------------------------------------------------

@pytest.fixture
def impatient_awg(served: EmulatorThread) -> Iterator[M8195AAwg]:
    driver = M8195AAwg(served.resource, name="awg", timeout_s=0.3)
    yield driver
    driver.close()


def test_dropped_connection_is_a_typed_error(impatient_awg: M8195AAwg,
                                             emulator: M8195AEmulator) -> None:
    emulator.faults.drop_connection = True
    # pyvisa-py reports a socket closed by the peer as a timeout on the next read
    with pytest.raises((ConnectionLost, InstrumentTimeout)) as caught:
        impatient_awg.sample_rate_hz  # noqa: B018 - the read is the point
    assert (caught.value.instrument, caught.value.command) == ("awg", ":FREQ:RAST?")


def test_stalled_instrument_times_out(impatient_awg: M8195AAwg,
                                      emulator: M8195AEmulator) -> None:
    emulator.faults.stall = True
    with pytest.raises(InstrumentTimeout, match="FREQ:RAST"):
        impatient_awg.sample_rate_hz  # noqa: B018


def test_slow_instrument_still_answers(awg: M8195AAwg, emulator: M8195AEmulator) -> None:
    emulator.faults.reply_delay_s = 0.3
    began = time.monotonic()
    assert awg.sample_rate_hz == 64e9
    assert time.monotonic() - began >= 0.3


def test_garbage_reply_is_unreadable(awg: M8195AAwg, emulator: M8195AEmulator) -> None:
    emulator.faults.garbage_reply = True
    with pytest.raises(InstrumentError, match="unreadable reply") as caught:
        awg.output_enabled  # noqa: B018
    assert caught.value.command == ":OUTP?"


def test_queued_instrument_error_raises_on_the_next_checked_command(
        awg: M8195AAwg, emulator: M8195AEmulator) -> None:
    emulator.parser.push(ScpiError(-310, "System error"))
    with pytest.raises(InstrumentReportedError, match="-310") as caught:
        awg.start()
    assert caught.value.command == ":INIT:IMM"


# --- the world device -------------------------------------------------------------------------

def test_world_plays_what_the_dac_mode_routes() -> None:
    awg = ArbitraryWaveformGenerator(dac_mode=DacMode.DUAL_DUPLICATE)
    awg.segments[1][1] = Segment.filled(1280, -128)
    awg.segments[2][1] = Segment.filled(1280, 64)
    awg.output_on.update({1: True, 3: True, 4: True})
    awg.start()
    played = {channel: awg.played(channel) for channel in (1, 2, 3, 4)}
    assert played[2] is None  # output 2 off
    assert played[1] is not None and played[3] is not None and played[4] is not None
    assert played[1].samples[0] == -128 / 127 and played[3].samples[0] == -128 / 127
    assert played[4].samples[0] == 64 / 127
    awg.dac_mode = DacMode.MARKER  # channels 3 and 4 now carry channel 1's markers
    awg.segments[1][1].marker_bits[:2] = [0b01, 0b10]
    marked = awg.played(1)
    assert marked is not None and awg.played(3) is None
    assert marked.sample_marker is not None and marked.sync_marker is not None
    assert (marked.sample_marker[:3].tolist(), marked.sync_marker[:3].tolist()) == (
        [True, False, False], [False, True, False])
    awg.output_on[4] = False
    assert awg.played(1).sync_marker is None  # type: ignore[union-attr]
    awg.function_mode = "STS"  # sequencing is not modelled: nothing is claimed to play
    assert awg.played(1) is None


def test_world_counts_playing_time_only_while_running() -> None:
    awg = ArbitraryWaveformGenerator()
    awg.advance(1.0)
    awg.start()
    awg.advance(0.25)
    awg.advance(0.5)
    awg.running = False
    awg.advance(2.0)
    assert awg.played_for_s == 0.75  # exact: binary fractions
