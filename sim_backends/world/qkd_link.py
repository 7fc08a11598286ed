"""The optical QKD path: decoy-state BB84 transmitters, MUX, fibre, DEMUX and receiver optics.

It turns a DEMUX port's CW light and the modulators' drive voltages into, for every gate class
(Alice's intensity, basis and bit x Bob's basis and phase setting), the share of the 1 GHz gates
in that class and the mean photon number per gate reaching each of Bob's single-photon detectors.
Detection (efficiency, dark counts, dead time, afterpulsing, click sampling) is `counters`' job.

Transmitter (seed Fig. 3(b), (c))
---------------------------------
DEMUX port -> IM1 (carves 1 GHz pulses) -> PM (global phase randomisation) -> FSMI with a PM in
its Sagnac loop (encoding phase {0, pi/2, pi, 3pi/2}: X = {0, pi}, Y = {pi/2, 3pi/2}, bit 1 =
+pi) -> IM2 (decoy level) -> attenuator. The IMs are the world's `MachZehnderModulator`s (finite
extinction ratio, insertion loss, drifting peak bias, held by MBX bias controllers); the RF drive
adds to the bias. With a = pi V_rf / V_pi, an IM transmits T = c0 + c1 cos a + c2 sin a, where
(c0, c1, c2) (`rf_transfer`) carry all of its present state: ER, loss, and where bias and drift
put it. PMs add phi = pi V / V_pi.

* Drive waveforms (the AWG's samples times the RF driver gain, in volts) are cut into slots of
  sample_rate / clock samples (64 at 64 GSa/s and 1 GHz; slot n = samples [64 n, 64 n + 64)),
  taken as time-aligned with the optical pulse (the pattern generator sets the delays).
  `pattern_optics` reduces a pattern once, vectorised, to per-class moments: sums over the
  class's slots of the slot means of f_i(a1) f_j(a2) h_k(phi_enc), f, h in (1, cos, sin). A
  class's pulse energy, sum of T1 T2, and encoded-phase phasor, sum of T1 T2 e^{i phi_enc}, are
  then exact bilinear forms in the two IMs' (c0, c1, c2): `emit` follows bias drift and the MBX
  loops at every call for a few microseconds, without touching the waveforms again. Pulse
  shape, inter-pulse leak through IM1's finite ER and a phase that is not flat under the pulse
  (|phasor| < 1) are all in the moments. The MBX dither (~ 0.1 Vpp) is left out: it would
  lower the fringe terms by ~ (pi a / V_pi)^2 / 4 ~ 3e-4.
* Labels: from a `SymbolTable` when given (what Alice's random numbers chose); otherwise decoded
  from the physics at the modulators' present state: intensity class by ranking the distinct
  slot energies (levels closer than 1.8 dB count as one), basis and bit from the nearest of the
  four phases.
* Without AWG drives, `Transmitter.ideal_drives` plays the part of an ideal pattern generator: one
  sample per slot, IM1 at its peak, IM2 at the level that would give mu, nu1, nu2 with infinite
  ER (arm phase 2 arccos sqrt(r) from the operating point the bias controller is meant to hold),
  PMs at the target phases. The physics is then the same code, so a bias away from its operating
  point shows in the intensities here too.
* The attenuator is set once (`calibrate_attenuator`, like an operator with a power meter) so
  that the signal class leaves with exactly mu photons per pulse on the light present; it stays
  fixed, so later changes of comb power or IM bias change the intensities. The decoys come out
  high through IM2's ER floor: at ER 30 dB (the seed transmitters' IM2, assumed) TR1's nu1 is
  +0.2 % and nu2 +6 % high; at 25 dB nu2 would be +19 %. Fixed losses in the transmitter
  (modulator insertion losses) are part of that attenuation.
* Global phase randomisation does not change any photon number (the per-slot states are coherent
  states either way); `phase_randomisation_bias` (max over m = 1..4 of |<e^{i m theta}>|, ~ 0 when
  the phases are uniform) says whether the decoy method's Poisson assumption holds.

Which comb lines (seed: 49 GHz comb, 100 GHz channels)
------------------------------------------------------
Nothing selects one line: the transmitter modulates all the DEMUX port passes, its own line near
the channel centre plus the guard lines near the channel edges at ~ -13 dB (`demux`). They are
mutually coherent comb lines; the seed's PM randomises their global phase per pulse ("to eliminate
the phase correlations between the different components of the combs"). The energy of a pulse
is the sum of the line energies (the 49 GHz beat averages out under a pulse many beat periods
long). Each line interferes in the decoders at its own frequency: with a delay mismatch dT between
Alice's and Bob's interferometers, line l carries an extra phase 2 pi f_l dT; the decoder's phase
lock holds the resultant, and the visibility falls by |sum w_l e^{2 pi i f_l dT}|. Broadband
background (ASE, an MI comb's continuum) is incoherent over the interferometer delay: its photons
reach the detectors but do not interfere (QBER 1/2 for them).

Link and receiver (seed Fig. 3(a), (d), (e))
--------------------------------------------
Photons of transmitter i reach Bob's port m with transmittance
tau_im = sum_l w_l T_mux,i(f_l) T_demux,m(f_l) x 10^(-alpha L / 10), w_l the photon share of its
spectral component l. Bob's FSMI is an unbalanced time-bin decoder: the interfering central bin
holds half the light (the short-short and long-long bins fall a delay away, outside the gate),
then an excess loss (circulator, PM, interferometer: the calibration knob design/physics.md
asks for). The central bin splits between output ports d = 0, 1 as
(1 + (-1)^d V gamma Re(C e^{-i phi_B})) / 2, with V = 1 - 2 e_d (misalignment e_d), gamma the
coherent fraction above, C the class's phasor and Bob's phase phi_B = basis pi/2 + setting pi.
Bob's bit is setting XOR d. TR2's receiver has two SPDs and setting 0; TR1's has one SPD
(port 0) and active four-phase modulation (setting 0 or 1, p = 1/2), which loses half the
photons (the seed's "3 dB detection efficiency sacrifice").
Other channels' transmitters leak into Bob's port (tau_jm, j != m): their phases are independent
of Bob's, so those photons split evenly between the ports and add to every class as noise, their
mean over the other transmitter's pattern. The systems share the 1 GHz clock (assumed), so the
same central-bin half of those photons falls in Bob's gates as of his own.

Per class, the photon number at a detector is the mean over that class's slots (exact: it is linear
in the per-slot photon numbers). A detector model that uses 1 - exp(-eta n) on class means makes an
error of order (eta n)^2 relative, ~ 1e-6 here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sim_backends.world.demux import Dwdm
from sim_backends.world.light import Light
from sim_backends.world.modulator import MachZehnderModulator

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
ComplexArray = NDArray[np.complex128]

PLANCK_J_S = 6.62607015e-34
#: Intensity classes, in the order used by every array indexed by class: signal, two weak decoys.
INTENSITY_NAMES = ("mu", "nu1", "nu2")
#: Shape of per-Alice-class arrays: (intensity, basis 0 = X / 1 = Y, bit).
ALICE_CLASSES = (3, 2, 2)
#: Share of the light in the interfering (central) time bin of an unbalanced time-bin decoder.
CENTRAL_BIN_FRACTION = 0.5
#: Slot energies closer than this (natural log, ~ 1.8 dB) are one intensity class when decoding.
_LEVEL_GAP_LN = math.log(1.5)
#: Harmonics checked for the uniformity of the global phase.
_PHASE_HARMONICS = 4
#: Where the bias controllers hold the IMs (arm phase at zero RF, 0 = peak): IM1 carves pulses
#: up from null, IM2 sets the decoy levels down from its peak.
CARVER_OPERATING_POINT_RAD = math.pi
DECOY_OPERATING_POINT_RAD = 0.0
#: Samples reduced at a time by `Transmitter.pattern_optics`: bounds its memory (~ 0.3 GB).
_CHUNK_SAMPLES = 1 << 20


# --- modulators --------------------------------------------------------------------------------


def rf_transfer(modulator: MachZehnderModulator) -> FloatArray:
    """(c0, c1, c2) with T(V_bias + V_rf) = c0 + c1 cos a + c2 sin a, a = pi V_rf / V_pi, at the
    modulator's present bias and drift."""
    offset = math.pi * (modulator.bias_v - modulator.peak_bias_v) / modulator.v_pi_v
    peak = 10.0 ** (-modulator.insertion_loss_db / 10.0)
    leak = 10.0 ** (-modulator.extinction_ratio_db / 10.0)
    swing = peak * (1.0 - leak) / 2.0
    return np.array([peak * (1.0 + leak) / 2.0, swing * math.cos(offset),
                     -swing * math.sin(offset)])


def rf_for_transmission(
    modulator: MachZehnderModulator, relative_transmission: ArrayLike, operating_point_rad: float
) -> FloatArray:
    """RF voltage a pattern generator applies for transmission ``r`` x peak, assuming an infinite
    ER and the modulator held at ``operating_point_rad`` by its bias controller."""
    arm_phase = 2.0 * np.arccos(np.sqrt(np.asarray(relative_transmission, dtype=float)))
    volts = (arm_phase - operating_point_rad) * modulator.v_pi_v / math.pi
    return np.asarray(np.mod(volts + modulator.v_pi_v, 2.0 * modulator.v_pi_v) - modulator.v_pi_v)


def hold_at(modulator: MachZehnderModulator, operating_point_rad: float) -> MachZehnderModulator:
    """Set the bias where the arm phase at zero RF is ``operating_point_rad`` (a locked MBX)."""
    modulator.bias_v = modulator.peak_bias_v + operating_point_rad * modulator.v_pi_v / math.pi
    return modulator


@dataclass
class PhaseModulator:
    """LiNbO3 phase modulator: phase pi V / V_pi."""

    v_pi_v: float = 4.0

    def phase_rad(self, drive_v: ArrayLike) -> FloatArray:
        return math.pi * np.asarray(drive_v, dtype=float) / self.v_pi_v

    def drive_for(self, phase_rad: ArrayLike) -> FloatArray:
        """RF voltage for ``phase_rad`` (taken in [0, 2 pi))."""
        return np.mod(np.asarray(phase_rad, dtype=float), 2.0 * math.pi) * self.v_pi_v / math.pi


# --- what Alice sends ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SymbolTable:
    """Alice's choices over one pattern period, one entry per slot."""

    intensity: IntArray  # index into INTENSITY_NAMES
    basis: IntArray  # 0 = X, 1 = Y
    bit: IntArray
    global_phase_rad: FloatArray

    def __post_init__(self) -> None:
        n = self.intensity.size
        if n == 0 or any(a.size != n for a in (self.basis, self.bit, self.global_phase_rad)):
            raise ValueError("symbol table arrays must be non-empty and of equal length")

    @property
    def encoding_phase_rad(self) -> FloatArray:
        return np.asarray(self.basis * (math.pi / 2) + self.bit * math.pi, dtype=float)

    @classmethod
    def random(
        cls,
        n_slots: int,
        rng: np.random.Generator,
        class_weights: tuple[int, ...] = (29, 2, 1),
        p_x: float = 0.5,
    ) -> SymbolTable:
        """Shuffled choices whose class and basis proportions are exact (largest remainder)."""
        return cls(
            intensity=rng.permutation(_exact_labels(n_slots, np.asarray(class_weights, float))),
            basis=rng.permutation(_exact_labels(n_slots, np.array([p_x, 1.0 - p_x]))),
            bit=rng.permutation(_exact_labels(n_slots, np.array([0.5, 0.5]))),
            global_phase_rad=rng.uniform(0.0, 2.0 * math.pi, n_slots),
        )


def _exact_labels(n: int, weights: FloatArray) -> IntArray:
    """n labels 0..k-1 in proportion to ``weights``, rounded by largest remainder, sorted."""
    share = n * weights / weights.sum()
    counts = np.floor(share).astype(np.int64)
    counts[np.argsort(counts - share)[: n - counts.sum()]] += 1
    return np.repeat(np.arange(weights.size, dtype=np.int64), counts)


@dataclass(frozen=True)
class ModulatorDrives:
    """Voltages at the modulators' RF inputs over one pattern period (AWG samples x driver gain)."""

    sample_rate_hz: float
    im1_v: FloatArray
    pm_random_v: FloatArray
    pm_encode_v: FloatArray
    im2_v: FloatArray

    def __post_init__(self) -> None:
        n = self.im1_v.size
        if n == 0 or any(a.size != n for a in (self.pm_random_v, self.pm_encode_v, self.im2_v)):
            raise ValueError("drive waveforms must be non-empty and of equal length")


@dataclass(frozen=True)
class PatternOptics:
    """A pattern reduced per Alice class (intensity, basis, bit): slot counts and the moments
    sum over slots of mean over samples of f_i(a1) f_j(a2) h_k(phi_enc), f, h = (1, cos, sin).

    Valid while the modulators' V_pi stay as they were; bias, drift, ER and loss enter later.
    """

    slots: IntArray  # (3, 2, 2)
    moments: FloatArray  # (3, 2, 2, 3, 3, 3)
    phase_randomisation_bias: float

    @property
    def period_slots(self) -> int:
        return int(self.slots.sum())

    def class_sums(
        self, im1_transfer: FloatArray, im2_transfer: FloatArray
    ) -> tuple[FloatArray, ComplexArray]:
        """Per class, sum over its slots of the energy transmission g = <T1 T2> and of g c."""
        sums = np.einsum("i,j,...ijk->...k", im1_transfer, im2_transfer, self.moments)
        return sums[..., 0], sums[..., 1] + 1j * sums[..., 2]


@dataclass(frozen=True)
class Emission:
    """What a transmitter sends: photons per pulse per class at its output, and their spectrum."""

    slots: IntArray  # per Alice class, in one pattern period
    photons: FloatArray  # mean photon number per pulse per Alice class (0 where no slots)
    phasor: ComplexArray  # photon-weighted mean e^{i phi_enc} per Alice class
    frequency_hz: FloatArray  # spectral components of the light ...
    photon_fraction: FloatArray  # ... their share of the photons (sums to 1, or all 0 when dark)
    coherent: BoolArray  # ... comb or laser line (True) or broadband background (False)
    clock_hz: float
    phase_randomisation_bias: float

    @property
    def intensity(self) -> FloatArray:
        """Realised mean photon number per pulse of each intensity class (0 if unused)."""
        slots = self.slots.sum(axis=(1, 2))
        total = (self.photons * self.slots).sum(axis=(1, 2))
        return np.divide(total, slots, out=np.zeros(3), where=slots > 0)

    @property
    def mean_photons(self) -> float:
        """Mean photon number per slot over the whole pattern."""
        return float((self.photons * self.slots).sum() / self.slots.sum())


@dataclass
class Transmitter:
    """One decoy-state BB84 transmitter (seed Fig. 3(b)) and its attenuator setting."""

    im1: MachZehnderModulator
    im2: MachZehnderModulator
    intensities: tuple[float, float, float] = (0.50, 0.16, 0.008)
    class_weights: tuple[int, int, int] = (29, 2, 1)
    p_x: float = 0.5
    clock_hz: float = 1e9
    pm_random: PhaseModulator = field(default_factory=PhaseModulator)
    pm_encode: PhaseModulator = field(default_factory=PhaseModulator)
    attenuation_db: float | None = None

    @classmethod
    def seed_tr1(cls, rng: np.random.Generator) -> Transmitter:
        return cls.seeded(rng, (0.50, 0.16, 0.008))

    @classmethod
    def seed_tr2(cls, rng: np.random.Generator) -> Transmitter:
        return cls.seeded(rng, (0.60, 0.06, 0.008))

    @classmethod
    def seeded(
        cls, rng: np.random.Generator, intensities: tuple[float, float, float]
    ) -> Transmitter:
        """IM1 at 25 dB ER biased at null, IM2 at 30 dB (assumed) at peak."""
        return cls(
            im1=hold_at(MachZehnderModulator(rng), CARVER_OPERATING_POINT_RAD),
            im2=hold_at(MachZehnderModulator(rng, extinction_ratio_db=30.0),
                        DECOY_OPERATING_POINT_RAD),
            intensities=intensities,
        )

    def random_symbols(self, n_slots: int, rng: np.random.Generator) -> SymbolTable:
        return SymbolTable.random(n_slots, rng, self.class_weights, self.p_x)

    def ideal_drives(self, symbols: SymbolTable) -> ModulatorDrives:
        """An ideal pattern generator: one sample per slot at the nominal levels (infinite ER)."""
        level = np.asarray(self.intensities) / self.intensities[0]
        n = symbols.intensity.size
        carve = rf_for_transmission(self.im1, 1.0, CARVER_OPERATING_POINT_RAD)
        return ModulatorDrives(
            sample_rate_hz=self.clock_hz,
            im1_v=np.full(n, float(carve)),
            pm_random_v=self.pm_random.drive_for(symbols.global_phase_rad),
            pm_encode_v=self.pm_encode.drive_for(symbols.encoding_phase_rad),
            im2_v=rf_for_transmission(self.im2, level[symbols.intensity],
                                      DECOY_OPERATING_POINT_RAD),
        )

    def pattern_optics(
        self, drives: ModulatorDrives | None = None, symbols: SymbolTable | None = None
    ) -> PatternOptics:
        """Reduce a pattern: the drives (ideal ones from ``symbols`` if no drives), labelled by
        ``symbols`` if given, else decoded from the drives. Once per pattern: ~ 0.5 us/sample."""
        if drives is None:
            if symbols is None:
                raise ValueError("need drive waveforms, a symbol table, or both")
            drives = self.ideal_drives(symbols)
        moments, global_phase = self._slot_moments(drives)
        if symbols is None:
            g, phasor = _slot_energy_and_phasor(moments, rf_transfer(self.im1),
                                                rf_transfer(self.im2))
            intensity, basis, bit = _decode_labels(g, phasor)
        elif symbols.intensity.size != global_phase.size:
            raise ValueError(f"{symbols.intensity.size} symbols for {global_phase.size} slots")
        else:
            intensity, basis, bit = symbols.intensity, symbols.basis, symbols.bit
        index = np.ravel_multi_index((intensity, basis, bit), ALICE_CLASSES)
        n_classes = math.prod(ALICE_CLASSES)
        class_moments = np.stack([np.bincount(index, column, n_classes)
                                  for column in moments.reshape(index.size, -1).T], axis=-1)
        harmonics = np.exp(1j * np.outer(np.arange(1, _PHASE_HARMONICS + 1), global_phase))
        return PatternOptics(
            slots=np.bincount(index, minlength=n_classes).reshape(ALICE_CLASSES),
            moments=class_moments.astype(float).reshape((*ALICE_CLASSES, 3, 3, 3)),
            phase_randomisation_bias=float(np.abs(harmonics.mean(axis=1)).max()),
        )

    def _samples_per_slot(self, drives: ModulatorDrives) -> int:
        per_slot = drives.sample_rate_hz / self.clock_hz
        samples = round(per_slot)
        if samples < 1 or abs(per_slot - samples) > 1e-9 * per_slot:
            raise ValueError(f"sample rate {drives.sample_rate_hz} Sa/s is not a whole number "
                             f"of samples per {self.clock_hz} Hz slot")
        if drives.im1_v.size % samples:
            raise ValueError(f"pattern of {drives.im1_v.size} samples is not whole slots of "
                             f"{samples}")
        return samples

    def _slot_moments(self, drives: ModulatorDrives) -> tuple[FloatArray, FloatArray]:
        """Per slot, the moments (n, 3, 3, 3), and the global phase at the pulse (power-weighted
        at the IMs' present state), in chunks of slots."""
        samples = self._samples_per_slot(drives)
        n = drives.im1_v.size // samples
        moments = np.empty((n, 3, 3, 3))
        global_phase = np.empty(n)
        c1, c2 = rf_transfer(self.im1), rf_transfer(self.im2)
        step = max(1, _CHUNK_SAMPLES // samples)
        for first in range(0, n, step):
            part = slice(first * samples, min(n, first + step) * samples)
            f1 = _harmonics(drives.im1_v[part], samples, self.im1.v_pi_v)
            f2 = _harmonics(drives.im2_v[part], samples, self.im2.v_pi_v)
            h = _harmonics(drives.pm_encode_v[part], samples, self.pm_encode.v_pi_v)
            slots = slice(first, first + f1.shape[1])
            moments[slots] = np.einsum("ims,jms,kms->mijk", f1, f2, h, optimize=True) / samples
            power = np.tensordot(c1, f1, 1) * np.tensordot(c2, f2, 1)
            random = self.pm_random.phase_rad(drives.pm_random_v[part].reshape(-1, samples))
            global_phase[slots] = np.arctan2((power * np.sin(random)).sum(axis=1),
                                             (power * np.cos(random)).sum(axis=1))
        return moments, global_phase

    def calibrate_attenuator(self, light: Light, optics: PatternOptics) -> float:
        """Set the attenuator so the signal class leaves with ``mu`` photons per pulse; in dB."""
        slots = optics.slots[0].sum()
        cw_photons = _photon_components(light, self.clock_hz)[1].sum()
        if slots == 0 or cw_photons <= 0.0:
            raise ValueError("calibration needs light and signal-class slots")
        energy = optics.class_sums(rf_transfer(self.im1), rf_transfer(self.im2))[0]
        before = cw_photons * energy[0].sum() / slots
        self.attenuation_db = 10.0 * math.log10(before / self.intensities[0])
        return self.attenuation_db

    def emit(self, light: Light, optics: PatternOptics) -> Emission:
        """Photon numbers per class at the output for this light, pattern, IM state, attenuator."""
        if self.attenuation_db is None:
            raise RuntimeError("attenuator not calibrated: call calibrate_attenuator first")
        freq, photons, coherent = _photon_components(light, self.clock_hz)
        cw_photons = photons.sum()
        attenuation = 10.0 ** (-self.attenuation_db / 10.0)
        energy, phasor_sum = optics.class_sums(rf_transfer(self.im1), rf_transfer(self.im2))
        per_pulse = np.divide(energy, optics.slots, out=np.zeros(ALICE_CLASSES),
                              where=optics.slots > 0)
        phasor = np.divide(phasor_sum, energy, out=np.zeros(ALICE_CLASSES, complex),
                           where=energy > 0)
        return Emission(
            slots=optics.slots,
            photons=cw_photons * attenuation * per_pulse,
            phasor=phasor,
            frequency_hz=freq,
            photon_fraction=photons / cw_photons if cw_photons > 0 else np.zeros_like(photons),
            coherent=coherent,
            clock_hz=self.clock_hz,
            phase_randomisation_bias=optics.phase_randomisation_bias,
        )


def _harmonics(volts: FloatArray, samples: int, v_pi_v: float) -> FloatArray:
    """(1, cos a, sin a) of a = pi V / V_pi, shaped (3, slots, samples)."""
    phase = math.pi * volts.reshape(-1, samples) / v_pi_v
    out = np.empty((3, *phase.shape))
    out[0] = 1.0
    np.cos(phase, out=out[1])
    np.sin(phase, out=out[2])
    return out


def _slot_energy_and_phasor(
    moments: FloatArray, c1: FloatArray, c2: FloatArray
) -> tuple[FloatArray, ComplexArray]:
    """Per slot: energy transmission g and encoded-phase phasor c, from its moments."""
    sums = np.einsum("i,j,mijk->mk", c1, c2, moments)
    g = sums[:, 0]
    phasor = np.divide(sums[:, 1] + 1j * sums[:, 2], g, out=np.zeros(g.size, complex),
                       where=g > 0)
    return g, phasor


def _decode_labels(g: FloatArray, phasor: ComplexArray) -> tuple[IntArray, IntArray, IntArray]:
    """Class labels from the physics: energy levels ranked (0 = brightest), nearest quadrant."""
    log_g = np.log(np.maximum(g, np.finfo(float).tiny))
    levels = np.unique(log_g)
    gaps = np.diff(levels)
    cuts = np.sort(np.argsort(gaps)[::-1][: len(INTENSITY_NAMES) - 1])
    cuts = cuts[gaps[cuts] > _LEVEL_GAP_LN]
    thresholds = (levels[cuts] + levels[cuts + 1]) / 2.0
    intensity = (log_g[:, None] < thresholds[None, :]).sum(axis=1).astype(np.int64)
    quadrant = np.round(np.angle(phasor) / (math.pi / 2)).astype(np.int64) % 4
    return intensity, quadrant % 2, quadrant // 2


def _photon_components(light: Light, clock_hz: float) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Spectral components of ``light``: frequency, CW photons per slot, coherent (line) or not.

    The background is cut at its sample points with trapezoid weights.
    """
    bg_f = light.background_frequency_hz
    bg_weight = np.zeros(bg_f.size)
    if bg_f.size > 1:
        step = np.diff(bg_f) / 2.0
        bg_weight[:-1] += step
        bg_weight[1:] += step
    freq = np.concatenate([light.line_frequency_hz, bg_f])
    power_w = 1e-3 * np.concatenate([light.line_power_mw, light.background_mw_per_hz * bg_weight])
    coherent = np.concatenate(
        [np.ones(light.line_frequency_hz.size, bool), np.zeros(bg_f.size, bool)])
    return freq, power_w / (PLANCK_J_S * freq) / clock_hz, coherent


# --- link and receiver ---------------------------------------------------------------------------


@dataclass
class Fibre:
    """Standard single-mode fibre span."""

    length_km: float = 25.0
    attenuation_db_per_km: float = 0.2

    @property
    def loss_db(self) -> float:
        return self.length_km * self.attenuation_db_per_km

    @property
    def transmittance(self) -> float:
        return 10.0 ** (-self.loss_db / 10.0)


@dataclass
class Receiver:
    """Bob's decoder optics (seed Fig. 3(d), (e)): FSMI time-bin decoder, one or two SPDs.

    ``excess_loss_db`` (circulator, PM, interferometer beyond the central bin's 3 dB) and
    ``misalignment`` e_d are per-channel calibrations. Defaults: 3 dB, so the receiver loses 6 dB
    in all; with MUX + DEMUX (~5 dB, ~0.4 dB more for the guard lines' photons), 25 km, TR1's
    single SPD and eta_det = 0.15, Y0 = 1e-6 per SPD, the asymptotic GLLP rates are ~100 kbps
    (TR1) and ~205 kbps (TR2): 0.79 and 0.95 above the seed's 78.8 and 195.4 kbps, left for
    dead time and post-processing. e_d = 0.026 gives the seed's signal QBER, 2.66 %, with those
    dark counts (`misalignment_for_qber`).
    """

    detectors: int = 2
    four_phase: bool = False
    p_x: float = 0.5
    excess_loss_db: float = 3.0
    misalignment: float = 0.026
    delay_mismatch_s: float = 0.0

    def __post_init__(self) -> None:
        if self.detectors not in (1, 2):
            raise ValueError(f"a receiver has 1 or 2 SPDs, not {self.detectors}")
        if self.detectors == 1 and not self.four_phase:
            raise ValueError("a single-SPD receiver needs four-phase active modulation")

    @classmethod
    def seed_tr1(cls) -> Receiver:
        return cls(detectors=1, four_phase=True)

    @classmethod
    def seed_tr2(cls) -> Receiver:
        return cls(detectors=2)

    @property
    def settings(self) -> tuple[int, ...]:
        """Bob's phase settings within a basis: 0 and pi (four-phase), or 0 only."""
        return (0, 1) if self.four_phase else (0,)

    @property
    def visibility(self) -> float:
        return 1.0 - 2.0 * self.misalignment

    @property
    def optics_transmittance(self) -> float:
        """From the receiver's input to both detector ports together (central bin, excess loss)."""
        return CENTRAL_BIN_FRACTION * 10.0 ** (-self.excess_loss_db / 10.0)


@dataclass(frozen=True)
class GateClasses:
    """For one receiver, every gate class: its share of the gates and the photons per gate at
    each detector. Rows run over (intensity, Alice basis, Alice bit, Bob basis, Bob setting);
    Bob's bit for a click on detector d is ``setting XOR d``."""

    clock_hz: float
    intensity: IntArray
    alice_basis: IntArray
    alice_bit: IntArray
    bob_basis: IntArray
    bob_setting: IntArray
    gate_fraction: FloatArray  # expected share of all gates (clock periods) in this class
    signal_photons: FloatArray  # (rows, detectors): from this channel's transmitter
    noise_photons: FloatArray  # (detectors,): from the other channels, the same in every class
    intensity_realised: FloatArray  # Alice's mean photon number per intensity class
    transmittance: float  # Alice's output to the detector ports (both together), signal path

    @property
    def photons(self) -> FloatArray:
        """Mean photon number per gate at each detector: signal plus crosstalk noise."""
        return self.signal_photons + self.noise_photons[None, :]

    @property
    def detectors(self) -> int:
        return int(self.signal_photons.shape[1])

    def bob_bit(self, detector: int) -> IntArray:
        return self.bob_setting ^ detector


@dataclass
class QkdLink:
    """Alice's comb DEMUX, her transmitters, MUX, fibre, Bob's DEMUX and his receivers, keyed by
    ITU channel (seed Fig. 2(a) and 3(a))."""

    source_demux: Dwdm
    mux: Dwdm
    demux: Dwdm
    fibre: Fibre
    transmitters: dict[int, Transmitter]
    receivers: dict[int, Receiver]

    @classmethod
    def build(cls, rng: np.random.Generator,
              systems: Mapping[int, tuple[tuple[float, float, float], Receiver]]) -> QkdLink:
        """Systems (transmitter intensities, receiver) by ITU channel over the seed's 25 km;
        DWDM units and IMs drawn from ``rng``."""
        return cls(
            source_demux=Dwdm.draw(rng),
            mux=Dwdm.draw(rng),
            demux=Dwdm.draw(rng),
            fibre=Fibre(),
            transmitters={c: Transmitter.seeded(rng, k) for c, (k, _) in systems.items()},
            receivers={c: rx for c, (_, rx) in systems.items()},
        )

    @classmethod
    def seed(
        cls, rng: np.random.Generator, tr1_channel: int = 31, tr2_channel: int = 32
    ) -> QkdLink:
        """The seed's two systems over 25 km; DWDM units and IMs drawn from ``rng``."""
        return cls.build(rng, {tr1_channel: ((0.50, 0.16, 0.008), Receiver.seed_tr1()),
                               tr2_channel: ((0.60, 0.06, 0.008), Receiver.seed_tr2())})

    def channel_light(self, comb: Light) -> dict[int, Light]:
        """The comb after Alice's DEMUX, at each transmitter's input."""
        return self.source_demux.split(comb, self.transmitters)

    def calibrate_attenuators(
        self, comb: Light, optics: Mapping[int, PatternOptics]
    ) -> dict[int, float]:
        """Set every transmitter's attenuator on the light present now; dB per channel."""
        light = self.channel_light(comb)
        return {c: self.transmitters[c].calibrate_attenuator(light[c], optics[c]) for c in optics}

    def emissions(self, comb: Light, optics: Mapping[int, PatternOptics]) -> dict[int, Emission]:
        """What each transmitter playing a pattern sends on the light present now."""
        light = self.channel_light(comb)
        return {c: self.transmitters[c].emit(light[c], optics[c]) for c in optics}

    def path(self, emission: Emission, tx_channel: int, rx_channel: int) -> tuple[float, float]:
        """Photon transmittance from transmitter ``tx_channel``'s output through MUX, fibre and
        Bob's DEMUX to receiver ``rx_channel``'s input, and the coherent (interfering) part of it
        after the delay-mismatch phases."""
        f = emission.frequency_hz
        through = (emission.photon_fraction * self.mux.transmission(tx_channel, f)
                   * self.demux.transmission(rx_channel, f) * self.fibre.transmittance)
        mismatch = self.receivers[rx_channel].delay_mismatch_s
        coherent = np.where(emission.coherent, through, 0.0) * np.exp(2j * math.pi * f * mismatch)
        return float(through.sum()), float(abs(coherent.sum()))

    def gate_classes(self, emissions: Mapping[int, Emission]) -> dict[int, GateClasses]:
        """Gate classes of every receiver whose channel's transmitter is emitting."""
        return {c: self._receiver_classes(c, emissions) for c in self.receivers if c in emissions}

    def _receiver_classes(self, channel: int, emissions: Mapping[int, Emission]) -> GateClasses:
        rx = self.receivers[channel]
        own = emissions[channel]
        through, coherent = self.path(own, channel, channel)
        transmittance = through * rx.optics_transmittance
        contrast = rx.visibility * coherent / through if through > 0 else 0.0

        rows = np.array(list(itertools.product(*map(range, ALICE_CLASSES), range(2), rx.settings)))
        k, a_basis, a_bit, b_basis, setting = rows.T
        bob_phase = b_basis * (math.pi / 2) + setting * math.pi
        fringe = contrast * (own.phasor[k, a_basis, a_bit] * np.exp(-1j * bob_phase)).real
        sign = (-1.0) ** np.arange(rx.detectors)
        signal = own.photons[k, a_basis, a_bit, None] * transmittance * (
            1.0 + sign[None, :] * fringe[:, None]) / 2.0

        leaked = sum((emissions[j].mean_photons * self.path(emissions[j], j, channel)[0]
                      for j in emissions if j != channel), 0.0)
        noise = np.full(rx.detectors, leaked * rx.optics_transmittance / 2.0)

        p_bob = np.where(b_basis == 0, rx.p_x, 1.0 - rx.p_x) / len(rx.settings)
        return GateClasses(
            clock_hz=own.clock_hz,
            intensity=k, alice_basis=a_basis, alice_bit=a_bit, bob_basis=b_basis,
            bob_setting=setting,
            gate_fraction=own.slots[k, a_basis, a_bit] / own.slots.sum() * p_bob,
            signal_photons=signal,
            noise_photons=noise,
            intensity_realised=own.intensity,
            transmittance=transmittance,
        )


def misalignment_for_qber(qber: float, eta_mu: float, dark_yield: float, e0: float = 0.5) -> float:
    """Misalignment e_d that gives signal QBER ``qber`` in the standard model
    E Q = e0 Y0 + e_d (1 - exp(-eta mu)), Q = Y0 + 1 - exp(-eta mu) (design/physics.md, sec. 5)."""
    signal = 1.0 - math.exp(-eta_mu)
    return (qber * (dark_yield + signal) - e0 * dark_yield) / signal
