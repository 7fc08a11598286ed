"""Keysight M8195A AWG: SCPI over a raw socket (port 5025), LF terminated, binary blocks.

Waveforms arrive as IEEE 488.2 definite-length blocks (``#<n><length><bytes>``) whose bytes can
be anything, the terminator and ``;`` included: serve this emulator with ``BinaryAwareLineServer``,
which frames whole messages and passes block payloads beside the text.

Segment rules (M8195A rev. 2): length a multiple of 256 samples and at least 1280, DAC codes
-128..127, one int8 per sample, or (channel 1 in DAC mode MARK/DCM) an int8 sample followed by a
marker byte (bit 0 sample marker to channel 3, bit 1 sync marker to channel 4). Segments may be
defined, written and deleted only in program mode (stopped): while running the instrument refuses.
Error codes: -222 for lengths and ids off the rules, -223 for data past the segment end (as the
M8190A/M8194A manuals state), -221 for a command the current state refuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from sim_backends.blocks import BinaryAwareLineServer, BlockStore
from sim_backends.faults import Faults
from sim_backends.scpi import (
    Call,
    Command,
    ScpiError,
    ScpiParser,
    compile_pattern,
    data_out_of_range,
    data_type_error,
    illegal_value,
)
from sim_backends.world.awg import (
    AMPLITUDE_RANGE_VPP,
    CHANNELS,
    SAMPLE_RATE_RANGE_HZ,
    SEGMENT_GRANULARITY,
    SEGMENT_MIN_SAMPLES,
    ArbitraryWaveformGenerator,
    DacMode,
    Segment,
)

_MAX_SEGMENT_ID = 16_777_215  # option -SEQ: up to ~16 M segments
_Word = TypeVar("_Word", bound=str)

_DAC_MODES = {mode: compile_pattern(long) for mode, long in (
    (DacMode.SINGLE, "SINGle"), (DacMode.DUAL, "DUAL"), (DacMode.FOUR, "FOUR"),
    (DacMode.MARKER, "MARKer"), (DacMode.DUAL_DUPLICATE, "DCDuplicate"),
    (DacMode.DUAL_MARKER, "DCMarker"))}
_FUNCTION_MODES = {mode: compile_pattern(long) for mode, long in (
    ("ARB", "ARBitrary"), ("STS", "STSequence"), ("STSC", "STSCenario"))}


def settings_conflict() -> ScpiError:
    return ScpiError(-221, "Settings conflict")


def _integer(call: Call, index: int) -> int:
    value = call.number(index)
    if not value.is_integer():
        raise data_type_error()
    return int(value)


def _choice(call: Call, choices: dict[_Word, re.Pattern[str]]) -> _Word:
    word = call.arg().strip()
    for value, pattern in choices.items():
        if pattern.fullmatch(word):
            return value
    raise illegal_value()


class M8195AEmulator:
    """One M8195A driving the AWG of the simulated world."""

    read_terminator = b"\n"
    write_terminator = b"\n"
    server_type = BinaryAwareLineServer  # what must serve it: LineServer would cut its blocks

    def __init__(self, awg: ArbitraryWaveformGenerator, sync: Callable[[], float] = lambda: 0.0,
                 serial: str = "MY55A00123") -> None:
        self.awg = awg
        self.sync = sync
        self.serial = serial
        self.parser = ScpiParser(self._commands())
        self.faults = Faults()
        self.blocks = BlockStore()

    def new_session(self) -> M8195AEmulator:
        return self

    def handle(self, message: str) -> str | bytes | None:
        """Run one program message; blocks it carried and no command claimed are dropped."""
        self.sync()
        try:
            return self.parser.handle(message)
        finally:
            self.blocks.clear()

    def _commands(self) -> list[Command]:
        awg = self.awg
        return [
            Command("*IDN", lambda _: f"Keysight Technologies,M8195A,{self.serial},4.1.0.0"),
            Command("*OPC", lambda _: "1"),
            Command(":INSTrument:DACMode", lambda _: awg.dac_mode.value, self._set_dac_mode),
            Command("[:SOURce]:FREQuency:RASTer", lambda _: f"{awg.sample_rate_hz:.10E}",
                    self._set_sample_rate),
            Command(":FUNCtion#:MODE", lambda _: awg.function_mode, self._set_function_mode),
            Command(":OUTPut#[:STATe]", lambda c: str(int(awg.output_on[self._channel(c)])),
                    self._set_output),
            Command(":VOLTage#[:LEVel][:IMMediate][:AMPLitude]",
                    lambda c: f"{awg.amplitude_vpp[self._channel(c)]:.6g}", self._set_amplitude),
            Command(":INITiate[:IMMediate]", write=lambda _: awg.start()),
            Command(":ABORt", write=self._abort),
            Command(":STATus:OPERation:RUN:CONDition", lambda _: str(self._run_condition())),
            Command(":TRACe#:DEFine", write=self._define),
            Command(":TRACe#[:DATA]", write=self._write_data),
            Command(":TRACe#:DELete:ALL", write=self._delete_all),
            Command(":TRACe#:DELete", write=self._delete),
            Command(":TRACe#:SELect", lambda c: str(awg.selected_segment[self._channel(c)]),
                    self._select),
            Command(":TRACe#:CATalog", self._catalog),
        ]

    def _channel(self, call: Call) -> int:
        channel = call.suffixes[0]
        if channel not in CHANNELS:
            raise ScpiError(-114, "Header suffix out of range")
        return channel

    def _signal_channel(self, call: Call) -> int:
        """A channel that plays its own segments in the current DAC mode."""
        channel = self._channel(call)
        if channel not in self.awg.dac_mode.signal_channels:
            raise settings_conflict()
        return channel

    def _program_mode(self) -> None:
        if self.awg.running:
            raise settings_conflict()

    def _set_dac_mode(self, call: Call) -> None:
        mode = _choice(call, _DAC_MODES)
        self._program_mode()
        self.awg.dac_mode = mode

    def _set_sample_rate(self, call: Call) -> None:
        rate_hz = call.number(0, {"HZ": 1.0, "MHZ": 1e6, "GHZ": 1e9})
        low, high = SAMPLE_RATE_RANGE_HZ
        if not low <= rate_hz <= high:
            raise data_out_of_range()
        self.awg.sample_rate_hz = rate_hz

    def _set_function_mode(self, call: Call) -> None:
        self.awg.function_mode = _choice(call, _FUNCTION_MODES)

    def _set_output(self, call: Call) -> None:
        self.awg.output_on[self._channel(call)] = call.boolean()

    def _set_amplitude(self, call: Call) -> None:
        amplitude_vpp = call.number(0, {"V": 1.0, "MV": 1e-3})
        low, high = AMPLITUDE_RANGE_VPP
        if not low <= amplitude_vpp <= high:
            raise data_out_of_range()
        self.awg.amplitude_vpp[self._channel(call)] = amplitude_vpp

    def _abort(self, _: Call) -> None:
        self.awg.running = False

    def _run_condition(self) -> int:
        """Bit n-1 set for each channel n playing (``:STAT:OPER:RUN:COND?``)."""
        if not self.awg.running:
            return 0
        return sum(1 << (channel - 1) for channel in self.awg.playing_channels)

    def _define(self, call: Call) -> None:
        channel = self._signal_channel(call)
        self._program_mode()
        segment_id, length = self._segment_id(call), _integer(call, 1)
        init_code = _integer(call, 2) if len(call.args) > 2 else 0
        if length < SEGMENT_MIN_SAMPLES or length % SEGMENT_GRANULARITY or \
                not -128 <= init_code <= 127:
            raise data_out_of_range()
        self.awg.segments[channel][segment_id] = Segment.filled(length, init_code)

    def _write_data(self, call: Call) -> None:
        channel = self._signal_channel(call)
        self._program_mode()
        segment = self._segment(channel, self._segment_id(call))
        offset = _integer(call, 1)
        width = 2 if channel == 1 and self.awg.dac_mode.has_markers else 1
        data = np.frombuffer(self._payload(call), dtype=np.int8)
        if offset < 0 or data.size % width:
            raise data_out_of_range()
        count = data.size // width
        if offset + count > segment.codes.size:
            raise ScpiError(-223, "Too much data")
        pairs = data.reshape(count, width)
        segment.codes[offset:offset + count] = pairs[:, 0]
        if width == 2:
            segment.marker_bits[offset:offset + count] = pairs[:, 1].view(np.uint8) & 0b11

    def _payload(self, call: Call) -> bytes:
        """The bytes of a block argument, or comma-separated values (one per byte) after it."""
        if call.arg(2).startswith("#"):
            payload = self.blocks.claim(call.arg(2))
            if payload is None:
                raise ScpiError(-161, "Invalid block data")
            return payload
        values = [_integer(call, index) for index in range(2, len(call.args))]
        if any(not -128 <= value <= 127 for value in values):
            raise data_out_of_range()
        return np.array(values, dtype=np.int8).tobytes()

    def _delete_all(self, call: Call) -> None:
        channel = self._channel(call)
        self._program_mode()
        self.awg.segments[channel].clear()

    def _delete(self, call: Call) -> None:
        channel = self._channel(call)
        self._program_mode()
        if self.awg.segments[channel].pop(self._segment_id(call), None) is None:
            raise data_out_of_range()

    def _select(self, call: Call) -> None:
        channel = self._signal_channel(call)
        segment_id = self._segment_id(call)
        self._segment(channel, segment_id)
        self.awg.selected_segment[channel] = segment_id

    def _catalog(self, call: Call) -> str:
        segments = self.awg.segments[self._channel(call)]
        pairs = [f"{sid},{segment.codes.size}" for sid, segment in sorted(segments.items())]
        return ",".join(pairs) if pairs else "0,0"

    def _segment_id(self, call: Call) -> int:
        segment_id = _integer(call, 0)
        if not 1 <= segment_id <= _MAX_SEGMENT_ID:
            raise data_out_of_range()
        return segment_id

    def _segment(self, channel: int, segment_id: int) -> Segment:
        segment = self.awg.segments[channel].get(segment_id)
        if segment is None:
            raise data_out_of_range()
        return segment
