"""A high-power erbium-doped fibre amplifier (Amonics AEDFA class, 3.5 W) and its controller.

Optics (a reduced model; the erbium responds in ~ms, faster than anything the lab sets):

- Pump k (976 nm diodes) emits ``slope * (I_k - I_threshold)``; the signal can gain at most
  ``power_conversion`` of the total pump power (quantum defect 976/1556 and excess loss).
- Small-signal gain rises with pump power from the absorption of the unpumped fibre to
  ``small_signal_gain_db``; with the seed ``P_in`` the signal output is
  ``P_in + P_avail (1 - exp(-(G0 - 1) P_in / P_avail))``: ``G0 P_in`` for a weak seed, bounded by
  energy conservation (``P_in + P_avail``) when saturated.
- The gain (in dB, proportional to the inversion) relaxes to that value with ``gain_response_s``.
- Amplified spontaneous emission: PSD ``2 n_sp h nu (G(nu) - 1)`` (two polarisations) over the
  erbium band, its gain in dB scaled by a flat-top band shape; it is not taken from the pump
  budget (it is < 1 mW when saturated).

Controller (the firmware's state, which protects the amplifier whether or not anyone polls it):
ACC mode drives each pump at its current set-point, APC mode drives the pumps together to hold the
output set-point; currents slew at ``pump_slew_ma_per_s``. Switching on takes
``activation_s`` (status BUSY). Loss of seed (input below ``seed_threshold_dbm``) or an opened
interlock cuts the pumps at once and latches: the pumps stay off until switched on again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

import numpy as np

from sim_backends.world.laser import C_M_PER_S
from sim_backends.world.light import FloatArray, Light

H_J_S = 6.62607015e-34
_RAMP_STEP_S = 0.01  # sub-step while currents slew: the gain lags by ms, the box by minutes
_BISECTION_STEPS = 40


class Status(IntEnum):
    """Drive status as the controller reports it (Amonics codes)."""

    OFF = 0
    ON = 1
    BUSY = 2
    LOCK = 4


class Mode(StrEnum):
    ACC = "ACC"  # automatic current control: pump currents set directly
    APC = "APC"  # automatic power control: output power held by the pump currents


def _toward(value: float, target: float, max_change: float) -> float:
    """``value`` moved towards ``target`` by at most ``max_change`` (landing on it exactly)."""
    if abs(target - value) <= max_change:
        return target
    return value + math.copysign(max_change, target - value)


@dataclass
class Edfa:
    """Pumps, gain, alarms and box temperature of the amplifier; ``seed`` is set by the Testbed."""

    # configuration
    pump_max_current_ma: tuple[float, ...] = (5000.0, 5000.0)
    pump_threshold_ma: float = 300.0
    pump_slope_w_per_a: float = 0.75
    power_conversion: float = 0.5
    small_signal_gain_db: float = 40.0
    unpumped_loss_db: float = 30.0
    pump_for_gain_w: float = 0.3  # pump power scale over which the inversion builds up
    max_output_w: float = 3.5  # largest APC set-point the firmware accepts
    pump_slew_ma_per_s: float = 1300.0  # ~ 1 W/s of output in APC
    gain_response_s: float = 1e-3
    activation_s: float = 1.0
    seed_threshold_dbm: float = -10.0
    seed_settle_s: float = 0.5
    band_edges_nm: tuple[float, float] = (1528.0, 1567.0)
    band_edge_width_nm: float = 1.0
    spontaneous_emission_factor: float = 1.6
    ambient_c: float = 25.0
    box_heating_c_per_a: float = 0.4
    box_time_constant_s: float = 120.0
    # inputs and state
    seed: Light = field(default_factory=Light.dark)
    interlock_closed: bool = True  # the physical interlock loop
    mode: Mode = Mode.ACC
    apc_setpoint_mw: float = 0.0
    master: Status = Status.OFF
    interlock_locked: bool = False
    seed_alarm_latched: bool = False

    def __post_init__(self) -> None:
        pumps = len(self.pump_max_current_ma)
        self.acc_setpoint_ma = [0.0] * pumps
        self.channel_on = [False] * pumps
        self.pump_current_ma = [0.0] * pumps
        self.gain_db = -self.unpumped_loss_db
        self.box_temperature_c = self.ambient_c
        self.seed_present_s = 0.0
        self._activation_left_s = 0.0

    # --- what the instrument's photodiodes and sensors see ---

    @property
    def input_power_mw(self) -> float:
        """Power at the input tap (all of the seed)."""
        return self.seed.total_power_mw

    @property
    def seed_present(self) -> bool:
        power_mw = self.input_power_mw
        return power_mw > 0 and 10 * math.log10(power_mw) >= self.seed_threshold_dbm

    @property
    def seed_stable(self) -> bool:
        return self.seed_present and self.seed_present_s >= self.seed_settle_s

    @property
    def output_power_mw(self) -> float:
        """Power at the output tap: amplified seed plus ASE."""
        return self.amplified().total_power_mw

    def channel_status(self, channel: int) -> Status:
        """Status of pump channel ``channel`` (0-based)."""
        if self.interlock_locked or not self.seed_present:
            return Status.LOCK
        if not self.channel_on[channel]:
            return Status.OFF
        return Status.BUSY if self.master is Status.BUSY else Status.ON

    # --- the controller's commands; those it may refuse return whether it carried them out ---

    def set_mode(self, mode: Mode) -> bool:
        """Switch ACC/APC; refused while the pumps are on."""
        if self.master is not Status.OFF:
            return False
        self.mode = mode
        return True

    def set_channel(self, channel: int, on: bool) -> None:
        """Enable a pump channel; disabling the last enabled one switches the pumps off."""
        self.channel_on[channel] = on
        if not any(self._driven_channels()):
            self.switch_off()

    def switch_on(self) -> bool:
        """Master on: refused under interlock, without seed, or with no channel enabled."""
        if self.interlock_locked or not self.seed_present or not any(self._driven_channels()):
            return False
        if self.master is Status.OFF:
            self.master = Status.BUSY
            self._activation_left_s = self.activation_s
        self.seed_alarm_latched = False
        return True

    def switch_off(self) -> None:
        """Master off: the pump drivers open at once."""
        self.master = Status.OFF
        self._activation_left_s = 0.0
        self.pump_current_ma = [0.0] * len(self.pump_current_ma)

    def unlock_interlock(self) -> bool:
        """Clear the interlock latch; refused while the loop is still open."""
        if not self.interlock_closed:
            return False
        self.interlock_locked = False
        return True

    # --- dynamics ---

    def advance(self, dt_s: float) -> None:
        """Integrate ``dt_s``: protections first, then slewing currents, gain and box heat."""
        self._protect()
        self.seed_present_s = self.seed_present_s + dt_s if self.seed_present else 0.0
        driving_apc = self.mode is Mode.APC and self.master is not Status.OFF
        apc_target_ma = self._apc_current_ma() if driving_apc else 0.0
        remaining_s = dt_s
        while remaining_s > 0:
            step_s = self._step_length(remaining_s, apc_target_ma)
            self._step(step_s, apc_target_ma)
            remaining_s -= step_s

    def _protect(self) -> None:
        if not self.interlock_closed and not self.interlock_locked:
            self.interlock_locked = True
            self.switch_off()
        if self.master is not Status.OFF and not self.seed_present:
            self.seed_alarm_latched = True
            self.switch_off()

    def _step_length(self, remaining_s: float, apc_target_ma: float) -> float:
        if self.master is Status.BUSY:
            return min(remaining_s, self._activation_left_s)
        if self._targets_ma(apc_target_ma) != self.pump_current_ma:
            return min(remaining_s, _RAMP_STEP_S)
        return remaining_s

    def _step(self, dt_s: float, apc_target_ma: float) -> None:
        mean_current_a = sum(self.pump_current_ma) / 1000
        max_change_ma = self.pump_slew_ma_per_s * dt_s
        self.pump_current_ma = [
            _toward(current, target, max_change_ma)
            for current, target in zip(self.pump_current_ma, self._targets_ma(apc_target_ma),
                                       strict=True)]
        mean_current_a = (mean_current_a + sum(self.pump_current_ma) / 1000) / 2
        target_gain_db = self._static_gain_db(self.pump_current_ma)
        self.gain_db += (target_gain_db - self.gain_db) * -math.expm1(-dt_s / self.gain_response_s)
        box_target_c = self.ambient_c + self.box_heating_c_per_a * mean_current_a
        relax = -math.expm1(-dt_s / self.box_time_constant_s)
        self.box_temperature_c += (box_target_c - self.box_temperature_c) * relax
        if self.master is Status.BUSY:
            self._activation_left_s -= dt_s
            if self._activation_left_s <= 0:
                self.master = Status.ON

    def _driven_channels(self) -> list[bool]:
        """Channels the active mode drives: every pump in ACC, channel 1 for all in APC."""
        return self.channel_on if self.mode is Mode.ACC else self.channel_on[:1]

    def _targets_ma(self, apc_target_ma: float) -> list[float]:
        if self.master is not Status.ON:
            return [0.0] * len(self.pump_current_ma)
        if self.mode is Mode.APC:
            return [apc_target_ma] * len(self.pump_current_ma)
        return [setpoint if on else 0.0
                for setpoint, on in zip(self.acc_setpoint_ma, self.channel_on, strict=True)]

    # --- optics ---

    def _band_shape(self, frequency_hz: FloatArray) -> FloatArray:
        """Relative gain (in dB) across the erbium band: 1 inside, falling off at the edges."""
        wavelength_nm = C_M_PER_S / frequency_hz * 1e9
        low, high = self.band_edges_nm
        width = self.band_edge_width_nm
        inside: FloatArray = 1 / (1 + np.exp((low - wavelength_nm) / width))
        return inside / (1 + np.exp((wavelength_nm - high) / width))

    def _effective_input_mw(self) -> float:
        """Seed power the erbium amplifies and is saturated by (in-band lines)."""
        shape = self._band_shape(self.seed.line_frequency_hz)
        return float(np.sum(self.seed.line_power_mw * shape))

    def _pump_power_w(self, currents_ma: list[float]) -> float:
        return sum(self.pump_slope_w_per_a * max(current - self.pump_threshold_ma, 0.0) / 1000
                   for current in currents_ma)

    def _signal_output_mw(self, currents_ma: list[float], input_mw: float) -> float:
        """Static signal output for these pump currents and this seed."""
        pump_w = self._pump_power_w(currents_ma)
        span_db = self.small_signal_gain_db + self.unpumped_loss_db
        g0 = 10 ** ((-self.unpumped_loss_db
                     - span_db * math.expm1(-pump_w / self.pump_for_gain_w)) / 10)
        available_mw = self.power_conversion * pump_w * 1000
        if g0 <= 1 or available_mw <= 0:
            return g0 * input_mw
        return input_mw - available_mw * math.expm1(-(g0 - 1) * input_mw / available_mw)

    def _static_gain_db(self, currents_ma: list[float]) -> float:
        input_mw = self._effective_input_mw()
        if input_mw <= 0:  # no seed: the gain is the small-signal gain of these pumps
            return 10 * math.log10(self._signal_output_mw(currents_ma, 1e-9) / 1e-9)
        return 10 * math.log10(self._signal_output_mw(currents_ma, input_mw) / input_mw)

    def _line_gain(self, gain_db: float) -> FloatArray:
        """Linear gain of each seed line when the peak gain is ``gain_db``."""
        gain: FloatArray = 10 ** (gain_db * self._band_shape(self.seed.line_frequency_hz) / 10)
        return gain

    def _apc_current_ma(self) -> float:
        """The common pump current holding the APC set-point (the largest, if out of reach)."""
        pumps = len(self.pump_max_current_ma)

        def signal_mw(current_ma: float) -> float:
            gain = self._line_gain(self._static_gain_db([current_ma] * pumps))
            return float(np.sum(self.seed.line_power_mw * gain))

        low, high = 0.0, min(self.pump_max_current_ma)
        if signal_mw(high) <= self.apc_setpoint_mw:
            return high
        for _ in range(_BISECTION_STEPS):
            middle = (low + high) / 2
            low, high = (middle, high) if signal_mw(middle) < self.apc_setpoint_mw \
                else (low, middle)
        return high

    def amplified(self) -> Light:
        """The light leaving the amplifier: the seed lines with gain, on the ASE background."""
        line_gain = self._line_gain(self.gain_db)
        low, high = self.band_edges_nm
        margin = 5 * self.band_edge_width_nm
        wavelength_m = np.linspace(high + margin, low - margin, 201) * 1e-9
        frequency_hz = C_M_PER_S / wavelength_m
        gain = 10 ** (self.gain_db * self._band_shape(frequency_hz) / 10)
        ase_mw_per_hz = 2 * self.spontaneous_emission_factor * H_J_S * frequency_hz \
            * np.maximum(gain - 1, 0.0) * 1e3
        return Light(self.seed.line_frequency_hz, self.seed.line_power_mw * line_gain,
                     frequency_hz, ase_mw_per_hz)
