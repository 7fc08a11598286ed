"""The arbitrary waveform generator (Keysight M8195A class) as the world needs it.

The QKD modulators receive exactly what the AWG plays: per channel the selected segment of int8
DAC codes, looped, at the DAC sample rate, while the AWG runs and that output is on. The DAC mode
decides which channels generate a signal and where markers go:

- ``SING`` channel 1; ``DUAL`` channels 1 and 4; ``FOUR`` channels 1 to 4;
- ``MARK`` channel 1, its sample marker (M1) out of channel 3 and sync marker (M2) out of 4;
- ``DCD`` channels 1 and 2, channel 3 duplicating 1 and channel 4 duplicating 2;
- ``DCM`` channels 1 and 2, channel 1's markers out of channels 3 and 4.

Markers are per-sample bits stored with channel 1's samples (M1 bit 0, M2 bit 1). The instrument
turns them into edges, at least 128 samples apart between two rising (or two falling) edges;
the world keeps the bits as written.

Not modelled: internal vs extended memory and its sample-rate divider (every channel plays at the
DAC rate), sequencing (``STS``/``STSC`` play nothing here), output offset, the DAC's analog
bandwidth and rise time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

CHANNELS = (1, 2, 3, 4)
FULL_SCALE_CODE = 127  # DAC code of a +1 sample; codes run -128..127
SEGMENT_GRANULARITY = 256
SEGMENT_MIN_SAMPLES = 1280
SAMPLE_RATE_RANGE_HZ = (53.76e9, 65.0e9)
AMPLITUDE_RANGE_VPP = (0.075, 1.0)  # single-ended, into 50 ohm
SAMPLE_MARKER_BIT = 0b01  # M1, out of channel 3
SYNC_MARKER_BIT = 0b10  # M2, out of channel 4


class DacMode(StrEnum):
    """``:INST:DACM``: how the four DACs are used (values are the instrument's short forms)."""

    SINGLE = "SING"
    DUAL = "DUAL"
    FOUR = "FOUR"
    MARKER = "MARK"
    DUAL_DUPLICATE = "DCD"
    DUAL_MARKER = "DCM"

    @property
    def signal_channels(self) -> tuple[int, ...]:
        """Channels whose own segments are played."""
        return _SIGNAL_CHANNELS[self]

    @property
    def has_markers(self) -> bool:
        """Whether channel 1 carries marker bits (out of channels 3 and 4)."""
        return self in (DacMode.MARKER, DacMode.DUAL_MARKER)

    def source_channel(self, channel: int) -> int | None:
        """Whose segment an analog output plays: itself, the channel it duplicates, or none."""
        if channel in self.signal_channels:
            return channel
        return {3: 1, 4: 2}.get(channel) if self is DacMode.DUAL_DUPLICATE else None


_SIGNAL_CHANNELS = {
    DacMode.SINGLE: (1,),
    DacMode.DUAL: (1, 4),
    DacMode.FOUR: (1, 2, 3, 4),
    DacMode.MARKER: (1,),
    DacMode.DUAL_DUPLICATE: (1, 2),
    DacMode.DUAL_MARKER: (1, 2),
}


@dataclass
class Segment:
    """One waveform segment: DAC codes and the marker bits of each sample."""

    codes: NDArray[np.int8]
    marker_bits: NDArray[np.uint8]

    @staticmethod
    def filled(length: int, code: int = 0) -> Segment:
        return Segment(np.full(length, code, dtype=np.int8), np.zeros(length, dtype=np.uint8))


@dataclass(frozen=True)
class Playback:
    """What one output sends to its modulator now: a segment looping since ``played_for_s``."""

    samples: NDArray[np.float64]  # DAC code / 127: +1 full scale, -128 gives -1.0079
    sample_rate_hz: float
    amplitude_vpp: float  # output swing for samples -1..+1
    played_for_s: float  # since :INIT:IMM; the sample now is int(played_for_s * rate) % len
    sample_marker: NDArray[np.bool_] | None  # M1 on channel 3, None if that output is off
    sync_marker: NDArray[np.bool_] | None  # M2 on channel 4, None if that output is off

    @property
    def volts(self) -> NDArray[np.float64]:
        """The output voltage of each sample (into 50 ohm)."""
        return self.samples * self.amplitude_vpp / 2


@dataclass
class ArbitraryWaveformGenerator:
    """State of a four-channel AWG: segments, selection, outputs, run state."""

    sample_rate_hz: float = 64e9
    dac_mode: DacMode = DacMode.SINGLE
    function_mode: str = "ARB"  # ARB, STS (sequence) or STSC (scenario)
    running: bool = False
    played_for_s: float = 0.0
    segments: dict[int, dict[int, Segment]] = field(
        default_factory=lambda: {channel: {} for channel in CHANNELS})
    selected_segment: dict[int, int] = field(
        default_factory=lambda: dict.fromkeys(CHANNELS, 1))
    output_on: dict[int, bool] = field(
        default_factory=lambda: dict.fromkeys(CHANNELS, False))
    amplitude_vpp: dict[int, float] = field(
        default_factory=lambda: dict.fromkeys(CHANNELS, 0.5))

    def advance(self, dt_s: float) -> None:
        """Let the outputs play on for ``dt_s``."""
        if self.running:
            self.played_for_s += dt_s

    def start(self) -> None:
        self.running = True
        self.played_for_s = 0.0

    @property
    def playing_channels(self) -> tuple[int, ...]:
        """Analog outputs fed from a segment while running (signal channels and duplicates)."""
        return tuple(c for c in CHANNELS if self.dac_mode.source_channel(c) is not None)

    def played(self, channel: int) -> Playback | None:
        """The waveform and markers on output ``channel`` now; None if it sends no waveform.

        None when stopped, outside arbitrary mode, with the output off, on a channel that plays
        no segment in this DAC mode (marker outputs included), or with no defined segment selected.
        """
        source = self.dac_mode.source_channel(channel)
        if not (self.running and self.function_mode == "ARB" and self.output_on[channel]):
            return None
        segment = None if source is None else \
            self.segments[source].get(self.selected_segment[source])
        if segment is None:
            return None
        with_markers = self.dac_mode.has_markers and source == 1
        return Playback(
            samples=segment.codes.astype(np.float64) / FULL_SCALE_CODE,
            sample_rate_hz=self.sample_rate_hz,
            amplitude_vpp=self.amplitude_vpp[channel],
            played_for_s=self.played_for_s,
            sample_marker=self._marker(segment, SAMPLE_MARKER_BIT, 3) if with_markers else None,
            sync_marker=self._marker(segment, SYNC_MARKER_BIT, 4) if with_markers else None,
        )

    def _marker(self, segment: Segment, bit: int, output: int) -> NDArray[np.bool_] | None:
        return (segment.marker_bits & bit) != 0 if self.output_on[output] else None
