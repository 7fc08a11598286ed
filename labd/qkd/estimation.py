"""Decoy-state BB84 per channel: gains, QBERs, two-decoy bounds, asymptotic and finite-key rates.

Protocol (seed paper, Sec. III; design/physics.md, sec. 5)
----------------------------------------------------------
Phase-encoded BB84 with one signal and two weak decoys at clock rate f_rep. Every gate, Alice
picks an intensity k in {mu, nu1, nu2} (mean photon number at her output) with probability p_k
(seed 29:2:1) and a basis X or Y with p_X, p_Y = 1 - p_X; Bob picks his basis independently with
the same probabilities. Sifting keeps the gates in which Bob clicked and both chose the same
basis, a share q = p_X^2 + p_Y^2 of the gates (1/2 for the seed's p_X = 1/2). Both bases' sifted
bits are key material (symmetric BB84): the phase errors of one basis are bounded by the bit
errors of the other. Intensities are announced after the quantum stage.

Conventions
-----------
* A block is the counts one estimate is made from (accumulated over the run or a long window:
  see the finite key below): per class k, ``sent`` (gates in which Alice sent intensity k, both
  bases) and, per basis B, the sifted detections n_{B,k} (both in B, Bob
  clicked; a double click counts, with a random bit) and their errors m_{B,k}. Counts may be
  expected values (floats). Block size N = sum_k sent_k gates; block time T = N / f_rep.
* Gain Q_k = (n_{X,k} + n_{Y,k}) / (q sent_k): Bob's click probability per gate of class k
  (per pulse sent, not per detector). It assumes Bob's click probability does not depend on his
  basis (Lim et al. 2014 assume the same, their Sec. V). QBER E_k = (m_X + m_Y) / (n_X + n_Y);
  a class without detections reports E_k = 1/2 (nothing is known).
* Rates are bits per second of block time: ``sifted_bps`` = sum_{k,B} n_{B,k} / T (all classes:
  Lim's raw key uses every intensity), ``skr_bps`` = efficiency x l / T with l the finite key
  length, ``skr_asymptotic_bps`` the GLLP bound below. ``efficiency`` (post-processing: the
  share of time or throughput not lost to it, default 1) scales the finite-key rate only; the
  asymptotic rate is the bare formula, comparable with physics.md's numbers.
* h(x) is the binary entropy; an error rate above 1/2 enters every h as 1/2 (no key), which also
  keeps the rates non-increasing in the signal errors.

Asymptotic bounds: two weak decoys (Ma, Qi, Zhao, Lo, PRA 72, 012326 (2005))
------------------------------------------------------------------------------
With 0 <= nu2 < nu1 and nu1 + nu2 < mu (nu2 = 0.008 in the seed is *not* vacuum)::

    Y0_L = max((nu1 Q_nu2 e^nu2 - nu2 Q_nu1 e^nu1) / (nu1 - nu2), 0)
    Y1_L = mu / (mu (nu1 - nu2) - (nu1^2 - nu2^2))
           * [Q_nu1 e^nu1 - Q_nu2 e^nu2 - (nu1^2 - nu2^2) / mu^2 (Q_mu e^mu - Y0_L)]
    e1_U = (E_nu1 Q_nu1 e^nu1 - E_nu2 Q_nu2 e^nu2) / ((nu1 - nu2) Y1_L)

Y1_L is clipped to [0, 1] (Y1 is a probability, so the clipped value is still a lower bound) and
e1_U to [0, 1/2] (1/2 when Y1_L = 0). GLLP rate (Gottesman, Lo, Luetkenhaus, Preskill 2004, as
written by Ma et al. 2005), clipped at 0::

    R = q p_mu f_rep { Y1_L mu e^-mu [1 - h(e1_U)] - f_EC Q_mu h(E_mu) }

Note the sign of the nu2 terms: errors in the nu2 class *lower* e1_U (they are attributed to
background), so adding errors to nu2 alone can raise the rate. Errors in mu or nu1 never do.

Finite key (Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307 (2014), arXiv:1311.7129)
-------------------------------------------------------------------------------------
Lim's intensities map as mu1 = mu, mu2 = nu1, mu3 = nu2; their conditions mu1 > mu2 + mu3 and
mu2 > mu3 >= 0 are checked (the seed: 0.50 > 0.168, 0.60 > 0.068; nu2 = 0 is allowed). Their key
basis X and test basis Z become, in turn, each of the seed's bases with the other as test; the
block's key is l = l_X + l_Y, each term Lim's Eq. (1) at eps_sec / 2 and eps_cor / 2, so the
concatenated key is eps_sec-secret and eps_cor-correct by the triangle inequality (each basis's
privacy amplification counting the other basis's announcements as Eve's information). Per key
basis X (test basis Z), with eps = (eps_sec / 2) / 21 (their Eq. (B4)) and
tau_n = sum_k p_k e^-k k^n / n!::

    delta(n) = sqrt(n / 2 ln(1 / eps))                                  Hoeffding, Eqs. (A1), (A2)
    n_{X,k}^+- = e^k / p_k (n_{X,k} +- delta(n_X)),  n_X = sum_k n_{X,k}
    m_{Z,k}^+- = e^k / p_k (m_{Z,k} +- delta(m_Z)),  m_Z = sum_k m_{Z,k}
    s_{X,0} >= tau0 (mu2 n_{X,mu3}^- - mu3 n_{X,mu2}^+) / (mu2 - mu3)                       Eq. (2)
    s_{X,1} >= tau1 mu1 [n_{X,mu2}^- - n_{X,mu3}^+
               - (mu2^2 - mu3^2) / mu1^2 (n_{X,mu1}^+ - s_{X,0} / tau0)]
               / (mu1 (mu2 - mu3) - mu2^2 + mu3^2)                                          Eq. (3)
    v_{Z,1} <= tau1 (m_{Z,mu2}^+ - m_{Z,mu3}^-) / (mu2 - mu3)                                Eq. (4)
    phi_X <= v_{Z,1} / s_{Z,1} + gamma(eps_sec / 2, v_{Z,1} / s_{Z,1}, s_{Z,1}, s_{X,1})     Eq. (5)
    gamma(a, b, c, d) = sqrt((c + d)(1 - b) b / (c d ln 2)
                             log2((c + d) / (c d (1 - b) b) 21^2 / a^2))
    l_X = floor(s_{X,0} + s_{X,1} [1 - h(phi_X)] - lambda_EC
                - 6 log2(21 / (eps_sec / 2)) - log2(2 / (eps_cor / 2)))                     Eq. (1)
    lambda_EC = f_EC n_X h(m_X / n_X)                                       (their Sec. IV model)

s_{Z,0}, s_{Z,1} are Eqs. (2), (3) on the Z counts. Where this departs from the letter, it only
tightens valid bounds or keeps them defined: n^- and m^- are clipped at 0 (the expected counts
they bound are non-negative); s_0, s_1, v_1 are clipped at 0 and l at 0; phi is capped at 1/2,
and is 1/2 when s_{Z,1} <= 2 or s_{X,1} = 0; gamma is evaluated at b >= 1 / s_{Z,1} (at b = 0,
i.e. no single-photon error bound, Lim's gamma is 0 x infinity; one error is the floor) and is 0
when its logarithm is negative. The Hoeffding deviation is the same for every class and is set by
the whole basis's count, so the weak nu2 class (1/32 of the pulses) is swamped first: at the
seed's rates the key vanishes for blocks shorter than ~3 s (TR1) or ~18 s (TR2, whose nu1 - nu2
= 0.052 amplifies the fluctuations), so a block must be the counts accumulated over the run or a
long window, not one update interval's.
Lim's key also uses the decoy classes' bits and single photons, so for very long blocks the finite
rate ends a few per cent *above* the mu-only GLLP rate (TR1: 0.878 vs 0.847 Mbps at 1e6 s).

Expected counts (physics.md, sec. 5; Lim 2014, Sec. IV)
-------------------------------------------------------
For transmittance eta (Alice's output to a click, detector efficiency included), background yield
Y0 (~ p_dark x detectors), misalignment e_d and background error e0 = 1/2::

    Q_k = Y0 + 1 - exp(-eta k),    E_k Q_k = e0 Y0 + e_d (1 - exp(-eta k))

Afterpulsing (probability p_ap per click, first order, Lim 2014): clicks R_k = Q_k (1 + p_ap),
errors E_k Q_k + p_ap Q_k / 2 (Lim's D_k = 1 - (1 - Y0) e^-eta k differs from Q_k by Y0 (1 -
e^-eta k) ~ 1e-8 here, so Q_k stands for it). Dead time tau (non-paralysable, each detector
blind for tau after its clicks, which are r = f_rep sum_k p_k R_k / detectors per second) keeps
a live share 1 / (1 + r tau) of every class's clicks and leaves the QBERs unchanged.

Assumed throughout: phase-randomised Poissonian pulses with exactly the stated intensities, a
basis-independent detection probability, error correction leaking the modelled lambda_EC, and
i.i.d. gates for the asymptotic rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Basis = Literal["x", "y"]
#: Intensity classes, in the order of every triple here: signal, strong decoy, weak decoy.
CLASS_NAMES = ("mu", "nu1", "nu2")
#: The seed's sending ratio mu : nu1 : nu2 = 29 : 2 : 1.
SEED_PROBABILITIES = (29 / 32, 2 / 32, 1 / 32)
#: Largest mean photon number accepted (weak coherent pulses; keeps every e^k finite).
MAX_INTENSITY = 100.0
#: Lim 2014, Eq. (B4): eps_sec = 21 eps, every error term set to a common eps.
_LIM_TERMS = 21
#: Error rate entering h when nothing is known, or when the measured one is larger.
_NO_INFORMATION = 0.5


def binary_entropy(x: float) -> float:
    """h(x) = -x log2 x - (1 - x) log2 (1 - x) for 0 <= x <= 1, with h(0) = h(1) = 0."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"binary entropy needs 0 <= x <= 1, not {x}")
    if x in (0.0, 1.0):
        return 0.0
    return -x * math.log2(x) - (1.0 - x) * math.log2(1.0 - x)


def _error_entropy(rate: float) -> float:
    """h of an error rate, an error rate above 1/2 counting as 1/2."""
    return binary_entropy(min(max(rate, 0.0), _NO_INFORMATION))


def _check_fraction(name: str, value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], not {value}")


def check_intensities(mu: float, nu1: float, nu2: float) -> None:
    """Lim 2014's mu1 > mu2 + mu3, mu2 > mu3 >= 0 with (mu1, mu2, mu3) = (mu, nu1, nu2); it
    implies Ma 2005's 0 <= nu2 < nu1, nu1 + nu2 < mu."""
    if not all(math.isfinite(k) and k <= MAX_INTENSITY for k in (mu, nu1, nu2)):
        raise ValueError(f"intensities must be at most {MAX_INTENSITY}, not {(mu, nu1, nu2)}")
    if not (nu1 > nu2 >= 0.0 and mu > nu1 + nu2):
        raise ValueError(
            f"the decoy bounds need mu > nu1 + nu2 and nu1 > nu2 >= 0, not mu={mu}, nu1={nu1}, "
            f"nu2={nu2}")


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BasisCounts:
    """One class in one basis: sifted detections (both parties in this basis, Bob clicked) and
    the errors among them."""

    detections: float = 0.0
    errors: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.detections) and math.isfinite(self.errors)):
            raise ValueError(f"counts must be finite, not {self}")
        if not 0.0 <= self.errors <= self.detections:
            raise ValueError(f"need 0 <= errors <= detections, not {self}")


@dataclass(frozen=True)
class ClassCounts:
    """One intensity class over a block: Alice's mean photon number, the gates she sent it in
    (both bases) and the sifted counts per basis."""

    intensity: float
    sent: float
    x: BasisCounts
    y: BasisCounts

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sent) and self.sent > 0.0):
            raise ValueError(f"a class must have been sent at least once, not sent={self.sent}")
        if self.detections > self.sent:
            raise ValueError(f"more sifted detections ({self.detections}) than gates ({self.sent})")

    @property
    def detections(self) -> float:
        return self.x.detections + self.y.detections

    @property
    def errors(self) -> float:
        return self.x.errors + self.y.errors


@dataclass(frozen=True)
class BlockCounts:
    """One channel's counts over a block (see the module docstring), class by class."""

    mu: ClassCounts
    nu1: ClassCounts
    nu2: ClassCounts

    def __post_init__(self) -> None:
        check_intensities(*(c.intensity for c in self.classes))

    @property
    def classes(self) -> tuple[ClassCounts, ClassCounts, ClassCounts]:
        return self.mu, self.nu1, self.nu2

    @property
    def pulses(self) -> float:
        """Block size N: all gates sent, every class and basis."""
        return sum(c.sent for c in self.classes)


@dataclass(frozen=True)
class Protocol:
    """The run's settings: clock, basis and class probabilities, security and post-processing."""

    clock_hz: float = 1e9
    p_x: float = 0.5
    probabilities: tuple[float, float, float] = SEED_PROBABILITIES
    f_ec: float = 1.16
    eps_sec: float = 1e-10
    eps_cor: float = 1e-15
    efficiency: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clock_hz) and self.clock_hz > 0.0):
            raise ValueError(f"clock_hz must be positive, not {self.clock_hz}")
        if not 0.0 < self.p_x < 1.0:
            raise ValueError(f"p_x must be in (0, 1), not {self.p_x}")
        if len(self.probabilities) != 3 or min(self.probabilities) <= 0.0:
            raise ValueError(f"three positive class probabilities needed, not {self.probabilities}")
        if not math.isclose(sum(self.probabilities), 1.0, rel_tol=1e-9):
            raise ValueError(f"class probabilities must sum to 1, not {self.probabilities}")
        if not (math.isfinite(self.f_ec) and self.f_ec >= 1.0):
            raise ValueError(f"f_ec must be >= 1, not {self.f_ec}")
        for name in ("eps_sec", "eps_cor"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), not {value}")
        _check_fraction("efficiency", self.efficiency)

    @property
    def sifting(self) -> float:
        """q: share of gates in which Alice's and Bob's bases agree."""
        return self.p_x**2 + (1.0 - self.p_x) ** 2

    def basis_share(self, basis: Basis) -> float:
        """Share of gates sifted into ``basis`` ("x" or "y")."""
        return self.p_x**2 if basis == "x" else (1.0 - self.p_x) ** 2


# --- outputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassEstimate:
    """Per class: Alice's intensity, the gain Q_k (clicks per gate) and the QBER E_k."""

    intensity: float
    gain: float
    qber: float


@dataclass(frozen=True)
class DecoyBounds:
    """Two-weak-decoy bounds (Ma 2005): background yield, single-photon yield and error rate."""

    y0_lower: float
    y1_lower: float
    e1_upper: float


@dataclass(frozen=True)
class FiniteKeyBlock:
    """Lim 2014 for one key basis: the bounds of Eqs. (2), (3), (5), lambda_EC and Eq. (1)."""

    vacuum_lower: float  # s_{X,0}
    single_lower: float  # s_{X,1}
    phase_error_upper: float  # phi_X
    ec_leak: float  # lambda_EC
    key_length: float  # l, floored, >= 0


@dataclass(frozen=True)
class ChannelEstimate:
    """One channel's estimates, shaped as the architecture's ``qkd.status`` entry (less
    ``channel``): ``dataclasses.asdict`` gives it."""

    qber: float  # signal class, fraction
    gain: float  # signal class, clicks per gate
    sifted_bps: float
    skr_bps: float  # finite key, after post-processing
    skr_asymptotic_bps: float
    y1_lower: float
    e1_upper: float
    classes: dict[str, ClassEstimate]


# --- gains and asymptotic bounds ---------------------------------------------------------------


def class_estimate(counts: ClassCounts, protocol: Protocol) -> ClassEstimate:
    """Q_k and E_k of one class from its sifted counts."""
    gain = counts.detections / (protocol.sifting * counts.sent)
    qber = counts.errors / counts.detections if counts.detections > 0 else _NO_INFORMATION
    return ClassEstimate(intensity=counts.intensity, gain=gain, qber=qber)


def decoy_bounds(classes: Sequence[ClassEstimate]) -> DecoyBounds:
    """Y0_L, Y1_L, e1_U from the (mu, nu1, nu2) gains and QBERs; clipping as documented."""
    sig, d1, d2 = classes
    mu, nu1, nu2 = sig.intensity, d1.intensity, d2.intensity
    check_intensities(mu, nu1, nu2)
    q1, q2 = d1.gain * math.exp(nu1), d2.gain * math.exp(nu2)
    y0 = max((nu1 * q2 - nu2 * q1) / (nu1 - nu2), 0.0)
    squares = nu1**2 - nu2**2
    y1 = mu / (mu * (nu1 - nu2) - squares) * (
        q1 - q2 - squares / mu**2 * (sig.gain * math.exp(mu) - y0))
    y1 = min(max(y1, 0.0), 1.0)
    if y1 == 0.0:
        return DecoyBounds(y0_lower=y0, y1_lower=0.0, e1_upper=_NO_INFORMATION)
    e1 = (d1.qber * q1 - d2.qber * q2) / ((nu1 - nu2) * y1)
    return DecoyBounds(y0_lower=y0, y1_lower=y1, e1_upper=min(max(e1, 0.0), _NO_INFORMATION))


def asymptotic_rate_bps(signal: ClassEstimate, bounds: DecoyBounds, protocol: Protocol) -> float:
    """GLLP: q p_mu f_rep {Y1_L mu e^-mu [1 - h(e1_U)] - f_EC Q_mu h(E_mu)}, clipped at 0."""
    mu = signal.intensity
    single = bounds.y1_lower * mu * math.exp(-mu) * (1.0 - _error_entropy(bounds.e1_upper))
    leak = protocol.f_ec * signal.gain * _error_entropy(signal.qber)
    rate = protocol.sifting * protocol.probabilities[0] * protocol.clock_hz * (single - leak)
    return max(rate, 0.0)


# --- finite key (Lim et al. 2014) --------------------------------------------------------------


def hoeffding_delta(n: float, eps: float) -> float:
    """delta(n, eps) = sqrt(n / 2 ln(1 / eps)) (Lim 2014, Eq. (A1))."""
    return math.sqrt(n / 2.0 * math.log(1.0 / eps))


def _photon_probability(n: int, intensities: Sequence[float], probs: Sequence[float]) -> float:
    """tau_n = sum_k p_k e^-k k^n / n!: probability that Alice sends n photons."""
    pairs = zip(intensities, probs, strict=True)
    return sum(p * math.exp(-k) * k**n / math.factorial(n) for k, p in pairs)


def _bounds_pm(counts: Sequence[float], intensities: Sequence[float], probs: Sequence[float],
               eps: float) -> tuple[list[float], list[float]]:
    """(x^-, x^+) per class: e^k / p_k (x_k -+ delta(sum x, eps)), x^- clipped at 0."""
    delta = hoeffding_delta(sum(counts), eps)
    scale = [math.exp(k) / p for k, p in zip(intensities, probs, strict=True)]
    lower = [s * max(x - delta, 0.0) for s, x in zip(scale, counts, strict=True)]
    upper = [s * (x + delta) for s, x in zip(scale, counts, strict=True)]
    return lower, upper


def _vacuum_and_single(detections: Sequence[float], intensities: Sequence[float],
                       probs: Sequence[float], eps: float) -> tuple[float, float]:
    """s_0 and s_1 lower bounds, Lim 2014 Eqs. (2) and (3), clipped at 0."""
    mu1, mu2, mu3 = intensities
    lower, upper = _bounds_pm(detections, intensities, probs, eps)
    tau0 = _photon_probability(0, intensities, probs)
    tau1 = _photon_probability(1, intensities, probs)
    s0 = max(tau0 * (mu2 * lower[2] - mu3 * upper[1]) / (mu2 - mu3), 0.0)
    squares = mu2**2 - mu3**2
    bracket = lower[1] - upper[2] - squares / mu1**2 * (upper[0] - s0 / tau0)
    s1 = max(tau1 * mu1 * bracket / (mu1 * (mu2 - mu3) - squares), 0.0)
    return s0, s1


def _single_photon_errors(errors: Sequence[float], intensities: Sequence[float],
                          probs: Sequence[float], eps: float) -> float:
    """v_1 upper bound, Lim 2014 Eq. (4), clipped at 0."""
    _, mu2, mu3 = intensities
    lower, upper = _bounds_pm(errors, intensities, probs, eps)
    tau1 = _photon_probability(1, intensities, probs)
    return max(tau1 * (upper[1] - lower[2]) / (mu2 - mu3), 0.0)


def _gamma(a: float, b: float, c: float, d: float) -> float:
    """Lim 2014's gamma(a, b, c, d) (Eq. (5)); 0 where its logarithm is negative."""
    spread = (c + d) / (c * d * (1.0 - b) * b)
    log_term = max(math.log2(spread * _LIM_TERMS**2 / a**2), 0.0)
    return math.sqrt((c + d) * (1.0 - b) * b / (c * d * math.log(2.0)) * log_term)


def _phase_error(v_test: float, s_test: float, s_key: float, eps_sec: float) -> float:
    """phi_X upper bound (Eq. (5)), capped at 1/2; 1/2 when the single photons are unbounded."""
    if s_test <= 2.0 or s_key <= 0.0:
        return _NO_INFORMATION
    b = v_test / s_test
    if b >= _NO_INFORMATION:
        return _NO_INFORMATION
    gamma = _gamma(eps_sec, max(b, 1.0 / s_test), s_test, s_key)
    return min(b + gamma, _NO_INFORMATION)


def _per_basis(block: BlockCounts, basis: Basis) -> tuple[list[float], list[float]]:
    """(detections, errors) per class in ``basis``."""
    counts = [c.x if basis == "x" else c.y for c in block.classes]
    return [b.detections for b in counts], [b.errors for b in counts]


def finite_key_block(block: BlockCounts, protocol: Protocol, key_basis: Basis) -> FiniteKeyBlock:
    """Lim 2014 Eq. (1) for the key sifted in ``key_basis`` ("x" or "y"), the other basis
    testing; security parameters eps_sec / 2 and eps_cor / 2 (two key blocks per block)."""
    if key_basis not in ("x", "y"):
        raise ValueError(f"key basis is 'x' or 'y', not {key_basis!r}")
    eps_sec, eps_cor = protocol.eps_sec / 2.0, protocol.eps_cor / 2.0
    eps = eps_sec / _LIM_TERMS
    intensities = [c.intensity for c in block.classes]
    probs = protocol.probabilities
    n_key, m_key = _per_basis(block, key_basis)
    n_test, m_test = _per_basis(block, "y" if key_basis == "x" else "x")
    s0, s1 = _vacuum_and_single(n_key, intensities, probs, eps)
    _, s1_test = _vacuum_and_single(n_test, intensities, probs, eps)
    v1_test = _single_photon_errors(m_test, intensities, probs, eps)
    phi = _phase_error(v1_test, s1_test, s1, eps_sec)
    n_total = sum(n_key)
    observed = sum(m_key) / n_total if n_total > 0 else _NO_INFORMATION
    leak = protocol.f_ec * n_total * _error_entropy(observed)
    overhead = 6.0 * math.log2(_LIM_TERMS / eps_sec) + math.log2(2.0 / eps_cor)
    length = math.floor(s0 + s1 * (1.0 - _error_entropy(phi)) - leak - overhead)
    return FiniteKeyBlock(vacuum_lower=s0, single_lower=s1, phase_error_upper=phi, ec_leak=leak,
                          key_length=float(max(length, 0)))


def finite_key_length(block: BlockCounts, protocol: Protocol) -> float:
    """Secret bits from the block: l_X + l_Y (Lim 2014 Eq. (1) per key basis)."""
    return sum(finite_key_block(block, protocol, b).key_length for b in ("x", "y"))


# --- the published estimate --------------------------------------------------------------------


def block_time_s(block: BlockCounts, protocol: Protocol) -> float:
    """T = N / f_rep."""
    return block.pulses / protocol.clock_hz


def estimate(block: BlockCounts, protocol: Protocol) -> ChannelEstimate:
    """Everything ``qkd.status`` publishes for one channel, from one block of counts."""
    classes = [class_estimate(c, protocol) for c in block.classes]
    bounds = decoy_bounds(classes)
    seconds = block_time_s(block, protocol)
    signal = classes[0]
    return ChannelEstimate(
        qber=signal.qber,
        gain=signal.gain,
        sifted_bps=sum(c.detections for c in block.classes) / seconds,
        skr_bps=protocol.efficiency * finite_key_length(block, protocol) / seconds,
        skr_asymptotic_bps=asymptotic_rate_bps(signal, bounds, protocol),
        y1_lower=bounds.y1_lower,
        e1_upper=bounds.e1_upper,
        classes=dict(zip(CLASS_NAMES, classes, strict=True)),
    )


# --- expected counts ---------------------------------------------------------------------------


def dark_yield(p_dark: float, detectors: int) -> float:
    """Y0 from the dark-count probability per detector per gate: 1 - (1 - p_dark)^detectors,
    ~ detectors x p_dark."""
    _check_fraction("p_dark", p_dark)
    return -math.expm1(detectors * math.log1p(-p_dark)) if p_dark < 1.0 else 1.0


@dataclass(frozen=True)
class LinkModel:
    """A channel for expected counts: transmittance eta (detector efficiency included),
    background yield Y0 per gate (all detectors), misalignment e_d, background error e0, and
    optionally afterpulsing and dead time."""

    transmittance: float
    dark_yield: float = 1e-6
    misalignment: float = 0.0
    background_error: float = 0.5
    afterpulse_probability: float = 0.0
    dead_time_s: float = 0.0
    detectors: int = 2

    def __post_init__(self) -> None:
        _check_fraction("transmittance", self.transmittance)
        _check_fraction("dark_yield", self.dark_yield)
        for name in ("misalignment", "background_error", "afterpulse_probability"):
            _check_fraction(name, getattr(self, name))
        if not (math.isfinite(self.dead_time_s) and self.dead_time_s >= 0.0):
            raise ValueError(f"dead_time_s must be >= 0, not {self.dead_time_s}")
        if self.detectors not in (1, 2):
            raise ValueError(f"a receiver has 1 or 2 detectors, not {self.detectors}")

    def clicks(self, intensity: float) -> tuple[float, float]:
        """(click probability, error probability) per gate of intensity k, before dead time."""
        signal = -math.expm1(-self.transmittance * intensity)
        gain = self.dark_yield + signal
        errors = self.background_error * self.dark_yield + self.misalignment * signal
        afterpulses = self.afterpulse_probability * gain
        return gain + afterpulses, errors + afterpulses / 2.0


def expected_classes(link: LinkModel, intensities: Sequence[float],
                     protocol: Protocol) -> tuple[ClassEstimate, ...]:
    """Expected (Q_k, E_k) of the (mu, nu1, nu2) classes, dead time included."""
    clicks = [link.clicks(k) for k in intensities]
    per_detector_hz = protocol.clock_hz * sum(
        p * r for p, (r, _) in zip(protocol.probabilities, clicks, strict=True)) / link.detectors
    live = 1.0 / (1.0 + per_detector_hz * link.dead_time_s)
    return tuple(ClassEstimate(intensity=k, gain=live * r,
                                qber=e / r if r > 0 else _NO_INFORMATION)
                 for k, (r, e) in zip(intensities, clicks, strict=True))


def expected_block(link: LinkModel, intensities: Sequence[float], protocol: Protocol,
                   duration_s: float) -> BlockCounts:
    """The counts a block of ``duration_s`` yields on average (floats)."""
    return block_of(expected_classes(link, intensities, protocol), protocol, duration_s)


def block_of(classes: Sequence[ClassEstimate], protocol: Protocol,
             duration_s: float) -> BlockCounts:
    """The mean counts of a block of ``duration_s`` on a link with these gains and QBERs (e.g.
    to ask what a measured link gives over another block length)."""
    gates = protocol.clock_hz * duration_s
    counts = []
    for est, p in zip(classes, protocol.probabilities, strict=True):
        sent = gates * p
        per_basis = {b: sent * protocol.basis_share(b) * est.gain for b in ("x", "y")}
        counts.append(ClassCounts(
            intensity=est.intensity, sent=sent,
            x=BasisCounts(per_basis["x"], per_basis["x"] * est.qber),
            y=BasisCounts(per_basis["y"], per_basis["y"] * est.qber)))
    return BlockCounts(*counts)
