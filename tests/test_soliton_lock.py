"""The comb-power lock's PID and loss detector, against simple plants."""

from __future__ import annotations

import pytest

from labd.soliton.lock import LossDetector, Pid, PumpRelief


def settle(pid: Pid, plant_gain: float, disturbance: float, steps: int, dt_s: float = 0.1
           ) -> list[float]:
    """Close the loop on measurement = plant_gain x output + disturbance; return the readings."""
    output, readings = 0.0, []
    for _ in range(steps):
        measurement = plant_gain * output + disturbance
        readings.append(measurement)
        output = pid.update(measurement, dt_s)
    return readings


@pytest.mark.parametrize("plant_gain", [0.03, -0.03])
def test_gains_of_the_plants_sign_cancel_a_step_disturbance(plant_gain: float) -> None:
    """The aux laser's plant is negative (a redder aux lowers the through-port power): gains of
    that sign hold the set-point; the integral removes the offset."""
    sign = 1.0 if plant_gain > 0 else -1.0
    pid = Pid(kp=5.0 * sign, ki=20.0 * sign, kd=0.0, output_min=-1.5, output_max=1.5,
              setpoint=12.3)
    readings = settle(pid, plant_gain, disturbance=12.3 + 0.02, steps=200)
    assert readings[-1] == pytest.approx(12.3, abs=1e-6)


def test_gains_of_the_wrong_sign_run_away_to_the_limit() -> None:
    pid = Pid(kp=5.0, ki=20.0, kd=0.0, output_min=-1.5, output_max=1.5, setpoint=12.3)
    readings = settle(pid, -0.03, disturbance=12.3 + 0.02, steps=200)
    assert readings[-1] == pytest.approx(12.32 + 0.03 * 1.5)  # pushed away, output at -1.5


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_saturated_output_does_not_wind_up(sign: float) -> None:
    """Held against the limit for 100 s, the loop recovers as soon as the error changes sign."""
    pid = Pid(kp=1.0 * sign, ki=1.0 * sign, kd=0.0, output_min=-1.0, output_max=1.0,
              setpoint=0.0)
    for _ in range(1000):
        pid.update(-10.0 * sign, 0.1)  # error +10 x sign: output pushed to +1
    assert pid.integral <= 1.0 + 1e-9
    assert pid.update(+10.0 * sign, 0.1) < 1.0  # the first reversed reading already backs off


def test_output_limits_clamp_and_empty_limits_are_refused() -> None:
    pid = Pid(kp=100.0, ki=0.0, kd=0.0, output_min=-0.5, output_max=0.5, setpoint=1.0)
    assert pid.update(0.0, 0.1) == 0.5
    assert pid.update(2.0, 0.1) == -0.5
    with pytest.raises(ValueError, match="empty"):
        Pid(kp=1.0, ki=0.0, kd=0.0, output_min=1.0, output_max=1.0, setpoint=0.0)


def test_derivative_acts_on_the_measurement_so_setpoint_steps_do_not_kick() -> None:
    pid = Pid(kp=0.0, ki=0.0, kd=1.0, output_min=-10.0, output_max=10.0, setpoint=0.0,
              derivative_tau_s=0.0)
    pid.update(1.0, 0.1)
    pid.setpoint = 5.0
    assert pid.update(1.0, 0.1) == 0.0  # measurement unchanged: no derivative action
    assert pid.update(2.0, 0.1) == pytest.approx(-10.0)  # rising measurement: pushes back


def test_loss_is_declared_after_the_hold_time_outside_the_band_only() -> None:
    detector = LossDetector(reference_mw=12.33, band_mw=0.06, hold_s=0.5)
    assert not any(detector.update(12.33 + 0.05, 0.1) for _ in range(20))  # inside the band
    assert not detector.update(12.45, 0.1)  # one reading away: not yet
    assert not detector.update(12.33, 0.1)  # back: the count starts again
    readings = [detector.update(12.45, 0.1) for _ in range(5)]
    assert readings == [False, False, False, False, True]  # 0.5 s away


def test_pump_relief_steps_against_the_output_beyond_its_share_of_the_range() -> None:
    relief = PumpRelief(step_pm=0.1, at=0.6, interval_s=2.0)
    assert relief.update(0.8, -1.5, 1.5, 0.1) == 0.0  # 53 % of the range: the PID's business
    assert relief.update(1.0, -1.5, 1.5, 0.1) == -0.1  # 67 %: the pump one step to the blue
    assert relief.update(1.0, -1.5, 1.5, 1.0) == 0.0  # not again within 2 s
    assert relief.update(1.0, -1.5, 1.5, 1.0) == -0.1
    assert relief.update(-1.2, -1.5, 1.5, 2.0) == 0.1  # the other side: to the red
