"""Transmitter patterns: Alice's random choices per 1 GHz slot and the AWG samples encoding them.

A transmitter (seed Fig. 3(b)) is IM1 (carves pulses) -> PM (global phase) -> FSMI with a PM in
its Sagnac loop (encoding phase) -> IM2 (decoy level) -> attenuator. One pattern period of L slots
is a ``SymbolRecord`` (what Alice sent, kept for sifting and estimation) and four drive waveforms
of ``samples_per_slot`` samples per slot (64 at 64 GSa/s and 1 GHz; slot n = samples
[64 n, 64 n + 64)), played looped by one Keysight M8195A.

Random choices
--------------
Per slot: intensity class mu / nu1 / nu2 with integer weights (29:2:1), basis X / Y with p_X, a
bit, and a global phase. QKD's security rests on Eve being unable to predict them, so they come
from the OS CSPRNG (``secrets.token_bytes``: getrandom, ChaCha20 on Linux) by default. numpy's
PCG64 is not a CSPRNG: its 128-bit state follows from a few outputs, after which every later
choice is known. Draws are exact, without modulo bias: a uniform integer below n takes
ceil(log2 n)-bit words (several to a byte when they fit: a bit or a basis costs 1/8 byte) and
rejects those >= n (``uniform_below``); the class is a uniform integer below the weights' sum (32
for 29:2:1, no rejection), the basis a uniform integer below the denominator of p_X as a fraction
(limited to 2^16: 0.9 is drawn as exactly 9/10). The seed's settings take 1.75 random bytes per
slot (11 bits of choices); drawing them runs at about half the rate at which the OS hands out
those bytes (``bench/bench_patterns.py``). A seed switches
to ``SeededRandom``, SHAKE-256 of (seed, call number): reproducible, for tests only, INSECURE.

Caveat for key: a looped AWG segment repeats the same choices every period. Once sifting has
announced the bases of one period's detected slots, Eve knows the basis of those slots in every
later period. A looped pattern serves characterisation (gains, QBERs, decoy statistics); key needs
fresh choices every slot (a QRNG streamed to the modulators), which no segment here provides.

Global phase: ``phase_levels`` discrete values 2 pi j / N (default 16), or continuous uniform on
[0, 2 pi) (a 2^53-point grid) with ``phase_levels=None``. Discrete by default because that is what
a DAC can send: with 8 bits a "continuous" phase is rounded to ~ 240 unevenly weighted codes, while
N exact levels match the discrete-phase-randomisation analysis (Cao, Zhang, Lo, Ma, NJP 17,
053014 (2015): N ~ 10 already gives nearly the continuous key rate). The default PM gains put
pi / 8 on exactly 15 DAC codes, so the 16 global phases and the four encoding phases are exact.

Mapping to volts (the same conventions as sim_backends/world/qkd_link.py)
------------------------------------------------------------------------
An MZM held by its bias controller at arm phase phi_0 transmits, with a = pi V_rf / V_pi and
extinction leak e = 10^(-ER/10), T / T_peak = ((1 + e) + (1 - e) cos(a + phi_0)) / 2; a PM adds
pi V / V_pi. IM1 is held at null (phi_0 = pi) and carves a Gaussian optical pulse of
``pulse_fwhm_ps`` at the slot centre (its peak drive is -V_pi). IM2 is held at peak (phi_0 = 0)
and is flat over each slot at the level nu_k / mu, inverted with IM2's ER if
``decoy_extinction_db`` is given (exact decoy levels), else with infinite ER (levels come out high
by e (mu / nu_k - 1), as the world documents). The PMs are flat over each slot at the phase
wrapped to [-pi, pi). IM2 and the PMs switch at slot edges, where IM1 blocks the light.

AWG samples: volts / RF gain (V at the modulator per AWG unit: AWG amplitude / 2 x driver gain, a
calibration) in [-1, 1] (a drive that would clip is an error), rounded to the DAC's int8 codes
(code / 127), so that what is recorded is what is played. The decoy levels then move by the
rounding (up to ~ 10 % for nu2 near IM2's null at an arbitrary gain); ``expected_intensities``
holds what the codes give, and a level further than ``intensity_tolerance`` from its target is an
error naming the IM2 gain that fits (``suggest_im2_gain``).

AWG channels, DAC mode, sync
----------------------------
M8195A segments hold a multiple of 256 samples and at least 1280: at 64 samples per slot a
pattern is a multiple of 4 slots and at least 20. Four drives need DAC mode FOUR (channel 1 IM1,
2 PM global phase, 3 PM encoder, 4 IM2: ``AWG_CHANNEL``). The M8195A has markers only on channel
1 in modes MARK and DCM, which play at most two analog channels, so the same module cannot also
give the frame sync. ``Pattern.sync_marker`` (high for the first 256 samples of each period,
rising at slot 0) is for a second, clock-shared module in MARK or DCM mode (its sync marker M2
out of channel 4), or any other output the receiver's time controller can gate on; slot n of the
record is the n-th slot after that rising edge.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Annotated, Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FloatArray = NDArray[np.float64]
CodeArray = NDArray[np.int8]
UIntArray = NDArray[np.unsignedinteger[Any]]

#: Arm phase at zero RF where the bias controllers hold the IMs (0 = peak), as in the world.
CARVER_OPERATING_POINT_RAD = math.pi
DECOY_OPERATING_POINT_RAD = 0.0
#: M8195A: DAC code of a +1 sample, segment granularity and minimum length in samples.
FULL_SCALE_CODE = 127
SEGMENT_GRANULARITY = 256
SEGMENT_MIN_SAMPLES = 1280
#: Longest pattern accepted, samples per channel: a quarter of the 16 GSa extended memory.
MAX_PATTERN_SAMPLES = 4 << 30
#: Width of the frame sync pulse: >= 128 samples, the marker outputs' minimum edge spacing.
SYNC_MARKER_SAMPLES = 256
#: DAC mode the four drives need (it has no markers: see the module docstring).
AWG_DAC_MODE = "FOUR"
#: Largest denominator of p_X drawn exactly, and largest number of discrete global phases.
_MAX_DENOMINATOR = 1 << 16
#: Grid of the continuous global phase: 2^53 points, a double's resolution on [0, 1).
_CONTINUOUS_LEVELS = 1 << 53
_WORD_TYPES = tuple((8 * size, np.dtype(f"<u{size}")) for size in (1, 2, 4, 8))


class Drive(StrEnum):
    """The four modulator drives (named as the world's ``ModulatorDrives`` fields, less _v)."""

    IM1 = "im1"  # pulse carver, held at null
    PM_RANDOM = "pm_random"  # global phase randomisation
    PM_ENCODE = "pm_encode"  # FSMI encoding phase
    IM2 = "im2"  # decoy level, held at peak


#: M8195A channel of each drive in DAC mode FOUR.
AWG_CHANNEL: Mapping[Drive, int] = {Drive.IM1: 1, Drive.PM_RANDOM: 2, Drive.PM_ENCODE: 3,
                                    Drive.IM2: 4}


# --- random source -------------------------------------------------------------------------------


class RandomSource(Protocol):
    """Where Alice's random bytes come from; ``secure`` says whether Eve may not predict them."""

    secure: bool

    def read(self, n: int) -> bytes: ...


class OsRandom:
    """The operating system's CSPRNG (``secrets.token_bytes``): the default, secure source."""

    secure = True

    def read(self, n: int) -> bytes:
        return secrets.token_bytes(n)


class SeededRandom:
    """INSECURE, for tests: read number i returns SHAKE-256(key, i), key from the seed.

    Anyone who knows or guesses the seed knows every choice: never use it for key.
    """

    secure = False

    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError("the seed must be a non-negative integer")
        seed_bytes = seed.to_bytes(max(1, (seed.bit_length() + 7) // 8), "little")
        self._key = hashlib.blake2b(seed_bytes, person=b"labd.qkd.seeded").digest()
        self._reads = 0

    def read(self, n: int) -> bytes:
        block = hashlib.shake_256(self._key + self._reads.to_bytes(8, "little")).digest(n)
        self._reads += 1
        return block


def uniform_below(source: RandomSource, n: int, count: int) -> UIntArray:
    """``count`` integers uniform on [0, n), exactly: words of ceil(log2 n) bits, those >= n
    rejected (each word is kept with probability > 1/2). The dtype is the smallest word."""
    if not 1 <= n <= 1 << 64 or count < 0:
        raise ValueError(f"need 1 <= n <= 2^64 and count >= 0, not n={n}, count={count}")
    bits = (n - 1).bit_length()
    dtype = next(word for width, word in _WORD_TYPES if bits <= width)
    if bits == 0:
        return np.zeros(count, dtype)
    rounds, filled = [], 0
    while filled < count:
        need = count - filled
        draw = need * (1 << bits) // n + 64  # enough for one round nearly always
        words = _words(source, bits, dtype, draw)
        kept = (words if n == 1 << bits else words[words < n])[:need]
        rounds.append(kept)
        filled += kept.size
    return rounds[0] if len(rounds) == 1 else np.concatenate(rounds)


def _words(source: RandomSource, bits: int, dtype: np.dtype[Any], count: int) -> UIntArray:
    """``count`` words of ``bits`` bits: 8 // bits of them from each byte when bits <= 4 (a
    basis or bit choice takes one eighth of a byte, not a byte), else each in a whole word."""
    mask = dtype.type((1 << bits) - 1)
    if bits > 4:
        return np.frombuffer(source.read(count * dtype.itemsize), dtype) & mask
    per_byte = 8 // bits
    raw = np.frombuffer(source.read(-(-count // per_byte)), np.uint8)
    words = np.empty((raw.size, per_byte), np.uint8)  # word k: byte k // per_byte
    for field in range(per_byte):  # one long vectorised pass per field
        np.bitwise_and(raw >> (field * bits), mask, out=words[:, field])
    return words.reshape(-1)[:count]


# --- settings ------------------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModulatorCalibration(_Frozen):
    """One modulator and the AWG channel driving it."""

    v_pi_v: Annotated[float, Field(gt=0, description="half-wave voltage at the RF port")]
    rf_gain_v: Annotated[float, Field(
        gt=0, description="volts at the modulator per AWG unit (AWG amplitude / 2 x driver gain)")]


#: A PM of V_pi 4 V whose RF gain puts pi / 8 on exactly 15 DAC codes (full scale 127).
_PM = ModulatorCalibration(v_pi_v=4.0, rf_gain_v=4.0 * FULL_SCALE_CODE / 120)


class TransmitterSettings(_Frozen):
    """One transmitter's pattern: protocol choices, timing and modulator calibration.

    Defaults are the seed's TR1 with the simulated testbed's modulators (IM V_pi 4.5 V, PM 4 V);
    the IM2 gain is ``suggest_im2_gain``'s for TR1's levels. Change fields with ``replace``
    (validated), not ``model_copy``.
    """

    intensities: Annotated[tuple[float, float, float], Field(
        description="mu, nu1, nu2: mean photons per pulse at the output")] = (0.50, 0.16, 0.008)
    class_weights: Annotated[tuple[int, int, int], Field(
        description="sending ratio of mu, nu1, nu2")] = (29, 2, 1)
    p_x: Annotated[float, Field(gt=0, lt=1, description="probability of basis X")] = 0.5
    phase_levels: Annotated[int | None, Field(
        ge=2, le=_MAX_DENOMINATOR, description="discrete global phases; None: continuous")] = 16
    pattern_slots: Annotated[int, Field(ge=1, description="slots per pattern period")] = 1 << 14
    clock_hz: Annotated[float, Field(gt=0)] = 1e9
    sample_rate_hz: Annotated[float, Field(gt=0, description="AWG DAC sample rate")] = 64e9
    pulse_fwhm_ps: Annotated[float, Field(gt=0, description="IM1's optical pulse, FWHM")] = 80.0
    im1: ModulatorCalibration = ModulatorCalibration(v_pi_v=4.5, rf_gain_v=5.0)
    pm_random: ModulatorCalibration = _PM
    pm_encode: ModulatorCalibration = _PM
    im2: ModulatorCalibration = ModulatorCalibration(v_pi_v=4.5, rf_gain_v=7.505)
    decoy_extinction_db: Annotated[float | None, Field(
        gt=0, description="IM2's extinction ratio for exact decoy levels; None: infinite")] = None
    intensity_tolerance: Annotated[float, Field(
        gt=0, description="largest relative error of a decoy level after DAC rounding")] = 0.01
    seed: Annotated[int | None, Field(
        ge=0, description="None: OS CSPRNG; an integer: reproducible and INSECURE")] = None

    @field_validator("intensities")
    @classmethod
    def _decoy_order(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        mu, nu1, nu2 = value
        if not (mu > nu1 > nu2 > 0 and nu1 + nu2 < mu):
            raise ValueError("need mu > nu1 > nu2 > 0 and nu1 + nu2 < mu (two weak decoys; IM2 "
                             "from its peak cannot make vacuum)")
        return value

    @field_validator("class_weights")
    @classmethod
    def _positive_weights(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(value) < 1 or sum(value) > 1 << 32:
            raise ValueError("weights must be positive integers summing to at most 2^32")
        return value

    @model_validator(mode="after")
    def _timing(self) -> TransmitterSettings:
        per_slot = self.sample_rate_hz / self.clock_hz
        samples = round(per_slot)
        if samples < 1 or abs(per_slot - samples) > 1e-9 * per_slot:
            raise ValueError(f"sample rate {self.sample_rate_hz:g} Sa/s is not a whole number of "
                             f"samples per {self.clock_hz:g} Hz slot")
        step = SEGMENT_GRANULARITY // math.gcd(samples, SEGMENT_GRANULARITY)
        least = step * math.ceil(SEGMENT_MIN_SAMPLES / (samples * step))
        n = self.pattern_slots * samples
        if n % SEGMENT_GRANULARITY or n < SEGMENT_MIN_SAMPLES or n > MAX_PATTERN_SAMPLES:
            raise ValueError(
                f"pattern_slots {self.pattern_slots} gives {n} samples; an M8195A segment holds a "
                f"multiple of {SEGMENT_GRANULARITY} samples, at least {SEGMENT_MIN_SAMPLES} (at "
                f"most {MAX_PATTERN_SAMPLES} here): at {samples} samples per slot use a multiple "
                f"of {step} slots, at least {least}")
        if self.pulse_fwhm_ps * 1e-12 > 0.25 / self.clock_hz:
            raise ValueError("pulse_fwhm_ps must be at most a quarter slot, so that the pulse is "
                             "< 2e-5 of its peak at the slot edges where the other drives switch")
        return self

    @property
    def samples_per_slot(self) -> int:
        return round(self.sample_rate_hz / self.clock_hz)

    @property
    def basis_probability(self) -> Fraction:
        """p_X as drawn: the nearest fraction with a denominator of at most 2^16."""
        return Fraction(self.p_x).limit_denominator(_MAX_DENOMINATOR)

    def calibration(self, drive: Drive) -> ModulatorCalibration:
        calibration: ModulatorCalibration = getattr(self, drive.value)
        return calibration

    def replace(self, **changes: Any) -> TransmitterSettings:
        """A copy with ``changes``, validated."""
        return TransmitterSettings.model_validate({**self.model_dump(), **changes})


#: The seed's transmitters (seed Sec. III): TR1 0.50 / 0.16 / 0.008, TR2 0.60 / 0.06 / 0.008.
TR1 = TransmitterSettings()
TR2 = TransmitterSettings(intensities=(0.60, 0.06, 0.008),
                          im2=ModulatorCalibration(v_pi_v=4.5, rf_gain_v=4.685))


# --- Alice's record ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SymbolRecord:
    """What Alice sent in each slot of one pattern period (slot n: n-th after the sync edge)."""

    intensity: NDArray[np.uint8]  # 0 mu, 1 nu1, 2 nu2
    basis: NDArray[np.uint8]  # 0 X, 1 Y
    bit: NDArray[np.uint8]
    phase_index: UIntArray  # global phase = 2 pi phase_index / phase_levels
    phase_levels: int
    secure: bool  # drawn from the OS CSPRNG (False: seeded, insecure)

    def __post_init__(self) -> None:
        n = self.intensity.size
        if n == 0 or any(a.size != n for a in (self.basis, self.bit, self.phase_index)):
            raise ValueError("record arrays must be non-empty and of equal length")

    @property
    def n_slots(self) -> int:
        return self.intensity.size

    @property
    def encoding_phase_rad(self) -> FloatArray:
        """FSMI phase: X {0, pi}, Y {pi/2, 3 pi/2}; bit 1 adds pi."""
        return (self.basis * (math.pi / 2) + self.bit * math.pi).astype(np.float64)

    @property
    def global_phase_rad(self) -> FloatArray:
        return (self.phase_index * (2 * math.pi / self.phase_levels)).astype(np.float64)


def draw_symbols(settings: TransmitterSettings, source: RandomSource) -> SymbolRecord:
    """Alice's choices for one period, each exactly distributed (see the module docstring)."""
    n = settings.pattern_slots
    mu_weight, nu1_weight, nu2_weight = settings.class_weights
    draws = uniform_below(source, mu_weight + nu1_weight + nu2_weight, n)
    # class = how many of the two upper bounds the draw reaches (two passes, no search)
    intensity = ((draws >= mu_weight).view(np.uint8)
                 + (draws >= mu_weight + nu1_weight).view(np.uint8))
    p_x = settings.basis_probability
    basis = uniform_below(source, p_x.denominator, n) >= p_x.numerator
    levels = settings.phase_levels or _CONTINUOUS_LEVELS
    return SymbolRecord(
        intensity=intensity,
        basis=basis.view(np.uint8),
        bit=uniform_below(source, 2, n),
        phase_index=uniform_below(source, levels, n),
        phase_levels=levels,
        secure=source.secure,
    )


# --- modulators ----------------------------------------------------------------------------------


def mzm_transmission(
    volts: ArrayLike, v_pi_v: float, operating_point_rad: float, extinction_db: float | None
) -> FloatArray:
    """T / T_peak of an MZM held at ``operating_point_rad`` for RF ``volts``."""
    leak = 0.0 if extinction_db is None else 10.0 ** (-extinction_db / 10.0)
    phase = math.pi * np.asarray(volts, dtype=float) / v_pi_v + operating_point_rad
    return np.asarray(((1.0 + leak) + (1.0 - leak) * np.cos(phase)) / 2.0)


def mzm_drive_v(
    relative: ArrayLike, v_pi_v: float, operating_point_rad: float, extinction_db: float | None
) -> FloatArray:
    """RF volts for T / T_peak = ``relative`` (the inverse of ``mzm_transmission``), on the
    rising arm phase from the operating point, wrapped to [-V_pi, V_pi)."""
    leak = 0.0 if extinction_db is None else 10.0 ** (-extinction_db / 10.0)
    r = np.asarray(relative, dtype=float)
    if np.any(r < leak) or np.any(r > 1.0):
        raise ValueError(f"an MZM with {extinction_db} dB extinction transmits {leak:.3g} to 1 "
                         "of its peak")
    arm = np.arccos(np.clip((2.0 * r - 1.0 - leak) / (1.0 - leak), -1.0, 1.0))
    return np.asarray(_wrap_rad(arm - operating_point_rad) * v_pi_v / math.pi)


def _wrap_rad(phase: ArrayLike) -> FloatArray:
    """Phase wrapped to [-pi, pi)."""
    return np.asarray(np.mod(np.asarray(phase, dtype=float) + math.pi, 2 * math.pi) - math.pi)


def _codes(drive: Drive, volts: FloatArray, gain_v: float) -> CodeArray:
    """DAC codes for ``volts`` at the modulator; an error if a drive would clip."""
    peak = float(np.abs(volts).max())
    if peak > gain_v * (1.0 + 1e-12):
        raise ValueError(f"{drive.value} drive would clip: it needs {peak:.4g} V at the modulator "
                         f"but full scale is +-{gain_v:.4g} V; raise its RF gain to at least "
                         f"{peak:.4g} V per unit")
    return np.rint(np.clip(volts / gain_v, -1.0, 1.0) * FULL_SCALE_CODE).astype(np.int8)


def _decoy_codes(settings: TransmitterSettings, gain_v: float) -> tuple[CodeArray, FloatArray]:
    """IM2's code per class and the intensities those codes give (mu kept, through the ER model)."""
    mu = settings.intensities[0]
    im2 = settings.im2
    er = settings.decoy_extinction_db
    volts = mzm_drive_v(np.asarray(settings.intensities) / mu, im2.v_pi_v,
                        DECOY_OPERATING_POINT_RAD, er)
    codes = _codes(Drive.IM2, volts, gain_v)
    played = mzm_transmission(codes / FULL_SCALE_CODE * gain_v, im2.v_pi_v,
                              DECOY_OPERATING_POINT_RAD, er)
    return codes, mu * played / played[0]


def suggest_im2_gain(settings: TransmitterSettings) -> float:
    """The IM2 RF gain (V per AWG unit) whose DAC codes come closest to the decoy levels: the
    gains that put a decoy exactly on a code from 64 to 127, the best by the worse decoy."""
    target = np.asarray(settings.intensities)
    volts = mzm_drive_v(target / target[0], settings.im2.v_pi_v, DECOY_OPERATING_POINT_RAD,
                        settings.decoy_extinction_db)[1:]
    gains = (volts[:, None] * FULL_SCALE_CODE / np.arange(64, FULL_SCALE_CODE + 1)).ravel()
    gains = gains[gains >= np.abs(volts).max()]
    errors = [np.abs(_decoy_codes(settings, float(g))[1][1:] / target[1:] - 1).max()
              for g in gains]
    return float(gains[int(np.argmin(errors))])


# --- pattern -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    """One pattern period: Alice's record and the AWG codes that send it.

    ``slot_codes`` hold each drive compactly: (n_slots, 1) codes for drives held over a slot,
    (1, samples_per_slot) for IM1's pulse, the same in every slot; ``codes`` expands them.
    """

    settings: TransmitterSettings
    symbols: SymbolRecord
    slot_codes: Mapping[Drive, CodeArray]
    expected_intensities: FloatArray  # mu, nu1, nu2 that the IM2 codes give, per the ER model
    pattern_id: str  # BLAKE2b of the settings and the record

    @property
    def n_samples(self) -> int:
        return self.symbols.n_slots * self.settings.samples_per_slot

    def codes(self, drive: Drive) -> CodeArray:
        """The int8 DAC codes of ``drive`` over the period."""
        shape = (self.symbols.n_slots, self.settings.samples_per_slot)
        return np.broadcast_to(self.slot_codes[drive], shape).reshape(-1)

    def samples(self, drive: Drive) -> FloatArray:
        """AWG samples in [-1, 1] (code / 127: ``upload_pattern`` sends them unchanged); 8 bytes
        a sample, so ``codes`` suits long patterns better."""
        return self.codes(drive) / float(FULL_SCALE_CODE)

    def volts(self, drive: Drive) -> FloatArray:
        """What reaches the modulator: samples x RF gain."""
        return self.samples(drive) * self.settings.calibration(drive).rf_gain_v

    def sync_marker(self) -> NDArray[np.bool_]:
        """Frame sync: high for the first ``SYNC_MARKER_SAMPLES`` samples, rising at slot 0."""
        return np.arange(self.n_samples) < SYNC_MARKER_SAMPLES


def encode(settings: TransmitterSettings, symbols: SymbolRecord) -> Pattern:
    """The AWG codes of the four drives for ``symbols`` (vectorised: look-up tables per slot)."""
    if symbols.n_slots != settings.pattern_slots:
        raise ValueError(f"{symbols.n_slots} symbols for a pattern of {settings.pattern_slots}")
    im2_codes, expected = _decoy_codes(settings, settings.im2.rf_gain_v)
    target = np.asarray(settings.intensities)
    error = np.abs(expected / target - 1.0)
    if error.max() > settings.intensity_tolerance:
        worst = int(np.argmax(error))
        raise ValueError(
            f"DAC rounding puts {('mu', 'nu1', 'nu2')[worst]} at {expected[worst]:.4g}, "
            f"{error[worst]:.2%} from {target[worst]:.4g} (tolerance "
            f"{settings.intensity_tolerance:.2%}); an IM2 RF gain of "
            f"{suggest_im2_gain(settings):.6g} V per unit fits the levels")

    samples = settings.samples_per_slot
    t_s = ((np.arange(samples) + 0.5) / samples - 0.5) / settings.clock_hz
    pulse = np.exp(-4.0 * math.log(2.0) * (t_s / (settings.pulse_fwhm_ps * 1e-12)) ** 2)
    carve_v = mzm_drive_v(pulse, settings.im1.v_pi_v, CARVER_OPERATING_POINT_RAD, None)

    def phase_codes(drive: Drive, phase_rad: ArrayLike) -> CodeArray:
        calibration = settings.calibration(drive)
        volts = _wrap_rad(phase_rad) * calibration.v_pi_v / math.pi
        return _codes(drive, volts, calibration.rf_gain_v)

    quadrant = symbols.basis + 2 * symbols.bit  # encoding phase / (pi / 2)
    encode_table = phase_codes(Drive.PM_ENCODE, np.arange(4) * (math.pi / 2))
    if symbols.phase_levels <= _MAX_DENOMINATOR:
        level_phase = np.arange(symbols.phase_levels) * (2 * math.pi / symbols.phase_levels)
        random_codes = phase_codes(Drive.PM_RANDOM, level_phase)[symbols.phase_index]
    else:
        random_codes = phase_codes(Drive.PM_RANDOM, symbols.global_phase_rad)
    slot_codes = {
        Drive.IM1: _codes(Drive.IM1, carve_v, settings.im1.rf_gain_v)[None, :],
        Drive.PM_RANDOM: random_codes[:, None],
        Drive.PM_ENCODE: encode_table[quadrant][:, None],
        Drive.IM2: im2_codes[symbols.intensity][:, None],
    }
    return Pattern(settings, symbols, slot_codes, expected, _pattern_id(settings, symbols))


def generate(settings: TransmitterSettings) -> Pattern:
    """Draw a period's choices (OS CSPRNG, or the insecure seeded stream if ``settings.seed``)
    and encode them."""
    source: RandomSource = OsRandom() if settings.seed is None else SeededRandom(settings.seed)
    return encode(settings, draw_symbols(settings, source))


def _pattern_id(settings: TransmitterSettings, symbols: SymbolRecord) -> str:
    digest = hashlib.blake2b(settings.model_dump_json().encode(), digest_size=16,
                             person=b"labd.qkd.pattern")
    for array in (symbols.intensity, symbols.basis, symbols.bit, symbols.phase_index):
        digest.update(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()
