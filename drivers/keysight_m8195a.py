"""Keysight M8195A arbitrary waveform generator: the QKD transmitters' modulator drive.

pymeasure has no M8195A driver, so ``KeysightM8195A`` is one (SCPI over a raw socket, port 5025,
LF terminated; waveforms as IEEE 488.2 blocks of int8 DAC codes); ``M8195AAwg`` adapts it to the
``Awg`` role. Facts it relies on (M8195A rev. 2 user's guide, Keysight IQtools, qudi, pyarbtools):

- a segment holds a multiple of 256 samples, at least 1280; DAC codes run -128..127 and a sample
  in [-1, 1] is sent as ``round(127 x)``;
- in DAC mode ``MARK`` (channel 1) or ``DCM`` (channels 1 and 2) channel 1's data interleaves a
  code and a marker byte per sample: bit 0 the sample marker out of channel 3, bit 1 the sync
  marker out of channel 4; two rising (or falling) marker edges must be >= 128 samples apart;
- segments are defined, written and deleted only while stopped (the instrument refuses with
  ``-221`` while running), and without option -SEQ a channel has one segment.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pymeasure.instruments import Channel, Instrument, SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from drivers.errors import RaiseQueuedErrors, talking
from drivers.visa import low_latency

TERMINATION = "\n"
SEGMENT_GRANULARITY = 256
SEGMENT_MIN_SAMPLES = 1280
FULL_SCALE_CODE = 127
MARKER_EDGE_SPACING = 128  # samples between two rising (or two falling) marker edges
SAMPLE_RATE_RANGE_HZ = (53.76e9, 65.0e9)
SEGMENT = 1  # the one segment each channel uses

# DAC mode -> channels that play their own segments; the marker modes add channels 3 and 4.
SIGNAL_CHANNELS = {"SING": (1,), "DUAL": (1, 4), "FOUR": (1, 2, 3, 4), "MARK": (1,),
                   "DCD": (1, 2), "DCM": (1, 2)}
MARKER_MODES = ("MARK", "DCM")
DUPLICATED_CHANNELS = {"DCD": (3, 4)}


def _on_off(reply: Any) -> bool:
    if reply not in (0, 1):
        raise ValueError(f"not an output state: {reply!r}")
    return bool(reply)


class M8195AChannel(Channel):
    """One of the four outputs and its waveform memory."""

    output_enabled = Channel.control(
        ":OUTP{ch}?", ":OUTP{ch} %s",
        """Control whether the output drives its connector (bool).""",
        validator=strict_discrete_set, values=(True, False), cast=int, get_process=_on_off,
        set_process=lambda on: "ON" if on else "OFF", check_set_errors=True,
    )

    amplitude_vpp = Channel.control(
        ":VOLT{ch}?", ":VOLT{ch} %g",
        """Control the output swing in V peak-to-peak for samples -1..+1 (75 mV to 1 V).""",
        validator=strict_range, values=(0.075, 1.0), check_set_errors=True,
    )

    selected_segment = Channel.control(
        ":TRAC{ch}:SEL?", ":TRAC{ch}:SEL %d",
        """Control the segment played in arbitrary mode.""",
        cast=int, check_set_errors=True,
    )

    def delete_all_segments(self) -> None:
        self.write(":TRAC{ch}:DEL:ALL")

    def define_segment(self, segment: int, length: int) -> None:
        """Reserve ``length`` samples (initialised to code 0) as ``segment``."""
        self.write(f":TRAC{{ch}}:DEF {segment},{length}")

    def write_segment(self, segment: int, data: NDArray[np.int8], offset: int = 0) -> None:
        """Write int8 data (codes, or code/marker pairs) into ``segment`` from sample ``offset``."""
        self.write_binary_values(f":TRAC{{ch}}:DATA {segment},{offset},", data, datatype="b",
                                 termination=TERMINATION)


class KeysightM8195A(RaiseQueuedErrors, SCPIMixin, Instrument):
    """Keysight M8195A 65 GSa/s four-channel AWG (SCPI through its soft front panel)."""

    channels = Instrument.MultiChannelCreator(M8195AChannel, (1, 2, 3, 4))

    dac_mode = Instrument.control(
        ":INST:DACM?", ":INST:DACM %s",
        """Control how the DACs are used: SING, DUAL, FOUR, MARK, DCD or DCM.""",
        validator=strict_discrete_set, values=tuple(SIGNAL_CHANNELS), cast=str,
        check_set_errors=True,
    )

    sample_rate_hz = Instrument.control(
        ":FREQ:RAST?", ":FREQ:RAST %.12g",
        """Control the DAC sample rate in Hz (53.76 to 65 GSa/s).""",
        validator=strict_range, values=SAMPLE_RATE_RANGE_HZ, check_set_errors=True,
    )

    function_mode = Instrument.control(
        ":FUNC:MODE?", ":FUNC:MODE %s",
        """Control the sequencer: ARB (one segment looped), STS (sequence), STSC (scenario).""",
        validator=strict_discrete_set, values=("ARB", "STS", "STSC"), cast=str,
        check_set_errors=True,
    )

    running_channels = Instrument.measurement(
        ":STAT:OPER:RUN:COND?",
        """Get the channels generating now, as a bit mask (bit n-1 for channel n).""",
        cast=int,
    )

    def __init__(self, adapter: Any, name: str = "Keysight M8195A", **kwargs: Any) -> None:
        super().__init__(adapter, name, **kwargs)

    def start(self) -> None:
        """Start generating (``:INIT:IMM``)."""
        self.write(":INIT:IMM")

    def abort(self) -> None:
        """Stop generating, back to program mode (``:ABOR``)."""
        self.write(":ABOR")



def dac_codes(samples: NDArray[np.float64]) -> NDArray[np.int8]:
    """Samples in [-1, 1] as DAC codes, ``round(127 x)``."""
    values = np.asarray(samples, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all(np.abs(values) <= 1.0):  # NaN fails
        raise ValueError("samples must be a non-empty 1-D array of values in [-1, 1]")
    length = values.size
    if length < SEGMENT_MIN_SAMPLES or length % SEGMENT_GRANULARITY:
        repeat = math.lcm(length, SEGMENT_GRANULARITY) // length
        repeat *= math.ceil(SEGMENT_MIN_SAMPLES / (repeat * length))
        raise ValueError(
            f"a pattern of {length} samples cannot loop seamlessly: a segment holds a multiple "
            f"of {SEGMENT_GRANULARITY} samples and at least {SEGMENT_MIN_SAMPLES}; repeat the "
            f"pattern {repeat} times")
    return np.rint(values * FULL_SCALE_CODE).astype(np.int8)


def marker_bits(markers: NDArray[np.bool_], length: int) -> NDArray[np.int8]:
    """Marker byte per sample: column 0 the sample marker (bit 0), column 1 the sync marker."""
    levels = np.asarray(markers, dtype=bool)
    columns = levels.reshape(-1, 1) if levels.ndim == 1 else levels
    if columns.ndim != 2 or columns.shape[0] != length or columns.shape[1] > 2:
        raise ValueError(f"markers must be ({length},) or ({length}, 2) booleans")
    for column in columns.T:
        _check_marker_edges(column)
    return (columns * (1 << np.arange(columns.shape[1]))).sum(axis=1).astype(np.int8)


def _check_marker_edges(marker: NDArray[np.bool_]) -> None:
    """Edges of a looped marker must be >= 128 samples apart, rising to rising, falling to falling.

    So a marker can flag a frame, not each symbol: at 64 GSa/s and 1 GBd a symbol is 64 samples.
    """
    change = marker.astype(np.int8) - np.roll(marker.astype(np.int8), 1)
    for edge in (1, -1):
        at = np.flatnonzero(change == edge)
        if at.size > 1 and np.diff(np.append(at, at[0] + marker.size)).min() < MARKER_EDGE_SPACING:
            raise ValueError(f"marker edges closer than {MARKER_EDGE_SPACING} samples: the "
                             "M8195A cannot output them")


class M8195AAwg:
    """The ``Awg`` role on an M8195A: one looped pattern per channel, markers on channel 1.

    ``dac_mode`` is set when a pattern is uploaded: ``DCM`` (default) drives two modulators from
    channels 1 and 2, with channel 1's sample and sync markers out of channels 3 and 4.
    """

    def __init__(self, resource: Any, name: str, timeout_s: float = 5.0,
                 dac_mode: str = "DCM") -> None:
        if dac_mode not in SIGNAL_CHANNELS:
            raise ValueError(f"dac_mode must be one of {sorted(SIGNAL_CHANNELS)}")
        self.name = name
        self.dac_mode = dac_mode
        with talking(name, "connect"):
            self.device = KeysightM8195A(
                resource, name=name, visa_library="@py", read_termination=TERMINATION,
                write_termination=TERMINATION, timeout=int(timeout_s * 1000))
            low_latency(self.device.adapter)

    @property
    def output_channels(self) -> tuple[int, ...]:
        """Outputs in use in the DAC mode: signal channels, duplicates, marker outputs."""
        extra = (3, 4) if self.dac_mode in MARKER_MODES else DUPLICATED_CHANNELS.get(
            self.dac_mode, ())
        return tuple(sorted({*SIGNAL_CHANNELS[self.dac_mode], *extra}))

    @property
    def output_enabled(self) -> bool:
        with talking(self.name, ":OUTP?"):
            return all(self.device.channels[c].output_enabled for c in self.output_channels)

    @output_enabled.setter
    def output_enabled(self, value: bool) -> None:
        with talking(self.name, ":OUTP"):
            for channel in self.output_channels:
                self.device.channels[channel].output_enabled = value

    @property
    def sample_rate_hz(self) -> float:
        with talking(self.name, ":FREQ:RAST?"):
            return float(self.device.sample_rate_hz)

    def upload_pattern(self, channel: int, samples: NDArray[np.float64],
                       markers: NDArray[np.bool_] | None = None) -> None:
        """Load a pattern to loop on ``channel`` (stopped AWG) and select it.

        The length must already be a multiple of 256 samples and at least 1280, so that the
        segment loops seamlessly; a ValueError names the repeat count that makes it so. Markers
        (per sample; a second column for the sync marker) exist on channel 1 in MARK/DCM only.
        """
        data = self._segment_data(channel, samples, markers)
        device = self.device
        with talking(self.name, ":INST:DACM"):
            if device.dac_mode != self.dac_mode:
                device.dac_mode = self.dac_mode
        target = device.channels[channel]
        with talking(self.name, f":TRAC{channel}:DEF"):
            target.delete_all_segments()
            target.define_segment(SEGMENT, data.size // (2 if self._has_markers(channel) else 1))
            device.check_set_errors()
        with talking(self.name, f":TRAC{channel}:DATA"):
            target.write_segment(SEGMENT, data)
            device.check_set_errors()
        with talking(self.name, f":TRAC{channel}:SEL"):
            target.selected_segment = SEGMENT

    def start(self) -> None:
        with talking(self.name, ":INIT:IMM"):
            self.device.start()
            self.device.check_set_errors()

    def stop(self) -> None:
        with talking(self.name, ":ABOR"):
            self.device.abort()

    def safe_state(self) -> None:
        """Stop generating and switch every output off."""
        self.stop()
        self.output_enabled = False

    def close(self) -> None:
        self.device.adapter.close()

    def _has_markers(self, channel: int) -> bool:
        return channel == 1 and self.dac_mode in MARKER_MODES

    def _segment_data(self, channel: int, samples: NDArray[np.float64],
                      markers: NDArray[np.bool_] | None) -> NDArray[np.int8]:
        """What ``:TRAC:DATA`` carries: codes, or code/marker pairs on a marker channel."""
        if channel not in SIGNAL_CHANNELS[self.dac_mode]:
            raise ValueError(f"channel {channel} plays no pattern in DAC mode {self.dac_mode}")
        if markers is not None and not self._has_markers(channel):
            raise ValueError("markers go with channel 1 in DAC mode MARK or DCM only")
        codes = dac_codes(samples)
        if not self._has_markers(channel):
            return codes
        no_markers = np.zeros(codes.size, dtype=bool)
        bits = marker_bits(no_markers if markers is None else markers, codes.size)
        return np.column_stack((codes, bits)).ravel()
