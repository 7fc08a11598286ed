"""The soliton controller: runs sequences against the station and keeps the state machine.

It implements the ``Procedures`` a sequence calls (set, ramp, sweep, estimate, step-down,
verify, lock) with the station's limits and interlocks, measures only through instruments (the
power meter on the through port, the OSA) and fires the machine's events from what it measured.
A sequence that fails, or an instrument fault, ends in ``fault`` with the sources safe; a lost
soliton under lock starts ``recover`` by itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drivers.roles import Role
from labd.rpc import ErrorCode, RpcError
from labd.safety import Safety
from labd.sequences import Criteria, Relief, RunResult, Sequence, load_sequence, run_sequence
from labd.soliton.analysis import SolitonCalibration, SpectrumAnalysis, analyse_spectrum
from labd.soliton.counting import CONFIDENT, Staircase, calibrate, count
from labd.soliton.lock import LossDetector, Pid, PumpRelief
from labd.soliton.machine import Event, SolitonMachine, State
from labd.station import InstrumentWorker, Station

log = logging.getLogger(__name__)
READINGS_PER_LEVEL = 3  # power-meter readings averaged for one level
JUMP_NOISE_FACTOR = 6.0  # a level change beyond this many noise sigmas is a soliton step
LOCK_PERIOD_S = 0.1
MI_RELATIVE_NOISE = 1e-3  # power-meter noise / level above which a speckled comb is MI
# Loss: the power held away from the set-point by half a learned soliton step, and by at least
# this share of the set-point (N = 1 -> 0 moves it ~ 1 %; the aux's 0.1 pm resolution ~ 0.02 %).
LOSS_STEP_FRACTION = 0.5
LOSS_MIN_FRACTION = 0.005
TRACE_CHUNK_S = 0.5  # soliton.trace is published in chunks this often
ATTEMPTS = 3  # sweeps towards one soliton per start or loss before giving up in fault
STAIRCASES_KEPT = 3  # step-downs the power levels are calibrated on (older ones may be stale)


@dataclass
class Measured:
    """The last measured state of the comb, as ``soliton.status`` reports it."""

    soliton_number: int | None = None
    comb_power_mw: float | None = None
    spacing_ghz: float | None = None
    bandwidth_3db_thz: float | None = None
    lines_20db: int | None = None
    classification: str | None = None
    step_mw: float | None = None  # one soliton's change of the through-port power, learned


@dataclass
class _Lock:
    task: asyncio.Task[None]
    pid: Pid
    actuator: str
    relief: PumpRelief | None


@dataclass
class SolitonController:
    """Owns the machine, the running sequence and the lock."""

    station: Station
    safety: Safety
    machine: SolitonMachine
    publish: Any  # (topic, payload) -> object
    sequences_dir: Path
    measured: Measured = field(default_factory=Measured)
    run_task: asyncio.Task[RunResult] | None = None
    run_name: str | None = None
    last_result: RunResult | None = None
    abort: asyncio.Event = field(default_factory=asyncio.Event)
    lock_state: _Lock | None = None
    pending: set[asyncio.Task[None]] = field(default_factory=set)
    attempt: int = 0  # of this start or loss: the sweep that is running or ran last
    staircase: Staircase = field(default_factory=Staircase)  # since the last estimate
    staircases: deque[Staircase] = field(  # the last few that ended in one soliton
        default_factory=lambda: deque(maxlen=STAIRCASES_KEPT))
    calibration: SolitonCalibration | None = None  # N from power, learnt on a staircase

    # -- the RPC side ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.run_task is not None and not self.run_task.done()

    def load(self, name: str, text: str | None = None,
             overrides: dict[str, Any] | None = None) -> Sequence:
        """A sequence from ``sequences/`` by name, or from ``text`` named ``name``."""
        path = Path(name) if text is not None else self.sequences_dir / f"{Path(name).stem}.toml"
        return load_sequence(path, text, overrides=overrides)

    def start(self, sequence: Sequence, soliton: bool) -> None:
        """Run ``sequence`` in the background; ``soliton`` runs move the machine from idle."""
        if self.running:
            raise RpcError(ErrorCode.BUSY, f"sequence {self.run_name} is running",
                           {"owner": self.run_name})
        if soliton:
            if self.machine.state not in (State.IDLE, State.FAULT):
                raise RpcError(ErrorCode.BUSY, f"the soliton machine is {self.machine.state}",
                               {"owner": "soliton"})
            if self.machine.state is State.FAULT:
                self.machine.fire(Event.RESET, "restarted by the operator")
            self.machine.fire(Event.START, f"sequence {sequence.name}")
            self.attempt = 1
        self._launch(sequence)

    def _launch(self, sequence: Sequence) -> None:
        self.abort.clear()
        self.run_name = sequence.name
        self.run_task = asyncio.create_task(self._run(sequence))

    async def stop(self, reason: str) -> None:
        """Stop the sequence and the lock; the machine goes to idle, sources stay as they are."""
        await self._stop_lock()
        await self._abort_run()
        if self.machine.allows(Event.STOP):
            self.machine.fire(Event.STOP, reason)

    def status(self) -> dict[str, Any]:
        m = self.measured
        return {"state": self.machine.state, "reason": self.machine.reason,
                "soliton_number": m.soliton_number, "comb_power_mw": m.comb_power_mw,
                "spacing_ghz": m.spacing_ghz, "bandwidth_3db_thz": m.bandwidth_3db_thz,
                "lines_20db": m.lines_20db, "locked": self.machine.state is State.LOCKED,
                "sequence": self.run_name if self.running else None,
                "calibration": None if self.calibration is None else _calibration_view(
                    self.calibration)}

    async def on_safety_abort(self, reason: str) -> None:
        """Automation stops before the sources go dark, so nothing fights the abort."""
        await self._stop_lock()
        if self.running and self.run_task is not asyncio.current_task():
            await self._abort_run()
        if self.machine.allows(Event.FAULT):
            self.machine.fire(Event.FAULT, f"safety abort: {reason}")

    def refuse_if_driven(self, instrument: str) -> None:
        """BUSY while a sequence runs, or for the instrument the lock steers."""
        if self.running:
            raise RpcError(ErrorCode.BUSY, f"sequence {self.run_name} is running: stop it first",
                           {"owner": self.run_name})
        lock = self.lock_state
        if lock is None:
            return
        steered = {self._actuator(lock.actuator)[0].name}
        if lock.relief is not None:
            steered.add(self._role(Role.PUMP_LASER).name)
        if instrument in steered:
            raise RpcError(ErrorCode.BUSY, f"{instrument} is steered by the soliton lock",
                           {"owner": "soliton.lock"})

    async def _abort_run(self) -> None:
        if self.running:
            assert self.run_task is not None
            self.abort.set()
            await asyncio.wait({self.run_task})

    async def _run(self, sequence: Sequence) -> RunResult:
        result = await run_sequence(sequence, self, self.abort, self._on_step)
        self.last_result = result
        reason = f"{result.step}: {result.message}"
        if result.status == "failed" and self.attempt < ATTEMPTS \
                and self.machine.allows(Event.RETRY):
            self.attempt += 1  # what the soliton's physics refused: sweep again, as people do
            self.machine.fire(Event.RETRY, f"attempt {self.attempt} of {ATTEMPTS} after {reason}")
            self._recover()
        elif not result.ok and result.status != "abort":
            await self._fault(reason)
        return result

    def _on_step(self, index: int, step: Any, status: str) -> None:
        self.publish("log", {"source": "sequence", "sequence": self.run_name, "index": index,
                             "kind": step.kind, "name": step.name, "status": status})

    async def _fault(self, reason: str) -> None:
        if self.machine.allows(Event.FAULT):
            self.machine.fire(Event.FAULT, reason)
        await self.safety.abort(f"soliton: {reason}")

    # -- Procedures: what the steps call ---------------------------------------------------

    async def set(self, instrument: str, parameter: str, value: float | bool) -> object:
        return await self.station.set(instrument, parameter, value,
                                      self.safety.check_interlocks)

    async def get(self, instrument: str, parameter: str) -> float | bool:
        value: float | bool = await self.station.worker(instrument).get(parameter)
        return value

    async def ramp(self, instrument: str, parameter: str, target: float,
                   rate_per_s: float) -> object:
        worker = self.station.worker(instrument)
        checked = worker.checked(worker.spec(parameter), target)
        await self.safety.check_interlocks(worker, parameter, checked)
        rate = min(rate_per_s, worker.config.ramps.get(parameter, rate_per_s))  # config caps it
        self.station.ramps_cancelled.clear()
        await worker.ramp(parameter, checked, rate, self.station.ramps_cancelled)
        return await worker.get(parameter)

    async def shift(self, instrument: str, parameter: str, by: float,
                    rate_per_s: float) -> object:
        """Move ``parameter`` by ``by`` from where it is now, at ``rate_per_s``."""
        now = float(await self.station.worker(instrument).get(parameter))
        return await self.ramp(instrument, parameter, now + by, rate_per_s)

    async def wait(self, seconds: float) -> object:
        await asyncio.sleep(seconds)
        return None

    async def sweep(self, instrument: str, parameter: str, start: float, stop: float,
                    rate_per_s: float, step: float, record: list[str],
                    continuous: bool) -> object:
        """Step ``parameter`` from start to stop at ``rate_per_s``, reading ``record`` each
        step (or let the laser sweep itself); publish the trace on ``soliton.trace``."""
        if instrument == self._role(Role.PUMP_LASER).name and self.machine.allows(Event.PREPARED):
            self.machine.fire(Event.PREPARED, f"sweeping {instrument}.{parameter}")
        if continuous:
            return await self._continuous_sweep(instrument, start, stop, rate_per_s, step, record)
        worker = self.station.worker(instrument)
        spec = worker.spec(parameter)
        count = round(abs(stop - start) / step) + 1
        values = np.linspace(start, stop, count)
        x_name = f"{instrument}.{parameter}"
        chunk: dict[str, list[float]] = {x_name: [], **{name: [] for name in record}}
        published, due = time.monotonic(), time.monotonic()
        for value in values:
            await worker.write(parameter, worker.checked(spec, float(value)))
            chunk[x_name].append(float(value))
            for name in record:
                chunk[name].append(float(await self._read(name)))
            due += step / rate_per_s
            if time.monotonic() - published > TRACE_CHUNK_S or value == values[-1]:
                self.publish("soliton.trace", {"x": x_name, **chunk})
                chunk = {key: [] for key in chunk}
                published = time.monotonic()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        return {"points": count}

    async def _continuous_sweep(self, instrument: str, start: float, stop: float,
                                speed_nm_per_s: float, step: float,
                                record: list[str]) -> object:
        worker = self.station.worker(instrument)
        for end in (start, stop):
            worker.checked(worker.spec("wavelength_nm"), end)
        await worker.run(lambda laser: laser.sweep(start, stop, speed_nm_per_s), "sweep")
        x_name = f"{instrument}.wavelength_nm"
        chunk: dict[str, list[float]] = {x_name: [], **{name: [] for name in record}}
        points = 0
        while await worker.run(lambda laser: bool(laser.sweeping), "sweep state"):
            chunk[x_name].append(float(await worker.get("wavelength_nm")))
            for name in record:
                chunk[name].append(float(await self._read(name)))
            points += 1
            await asyncio.sleep(step / speed_nm_per_s)
        self.publish("soliton.trace", {"x": x_name, **chunk})
        return {"points": points}

    async def estimate(self) -> dict[str, Any]:
        """N from the OSA (single, multi, MI, none) and the power level; fires the sweep's
        outcome."""
        spectrum = await self._spectrum()
        power = await self._level()
        n = self._soliton_number(spectrum, power)
        self.staircase = Staircase()
        self.staircase.add(spectrum.moment_width_ghz, power)
        if self.machine.state is State.SWEEPING:
            found = n is None or n >= 1  # None: several, count not yet known
            self.machine.fire(Event.SOLITONS_FOUND if found else Event.NO_SOLITON,
                              f"{spectrum.classification}, N = {'>= 2' if n is None else n}")
        return {"soliton_number": 2 if n is None else n, "soliton_number_exact": n is not None,
                "classification": spectrum.classification, "comb_power_mw": power}

    async def step_down_until(self, soliton_number: int, actuator: str, step: float,
                              settle_s: float, max_steps: int) -> int:
        """Backward-tune (or warm) one step at a time until ``soliton_number`` remain."""
        if self.machine.allows(Event.STEP_DOWN) and self.machine.state is not State.VERIFYING:
            self.machine.fire(Event.STEP_DOWN, f"{actuator} by {step} per step")
        level, noise = await self._level_and_noise()
        for _ in range(max_steps):
            if self.measured.soliton_number is not None \
                    and self.measured.soliton_number <= soliton_number:
                break
            await self._nudge(actuator, step)
            await asyncio.sleep(settle_s)
            now = await self._level()
            if abs(now - level) > JUMP_NOISE_FACTOR * noise:  # between nudges: not the drift
                await self._stepped(now - level, now)      # along a plateau
            level = now
        n = self.measured.soliton_number or 0
        if n == 1:
            self._calibrate()
        if n == soliton_number == 1 and self.machine.allows(Event.SINGLE_FOUND):
            self.machine.fire(Event.SINGLE_FOUND, "the OSA shows one soliton")
        elif n == 0 and self.machine.allows(Event.LOST):
            self.machine.fire(Event.LOST, "all solitons gone while stepping down")
        return n

    async def verify(self, criteria: Criteria) -> dict[str, Any]:
        spectrum = await self._spectrum()
        failures = _unmet(spectrum, criteria)
        ok = spectrum.classification == "single_soliton" and not failures
        if self.machine.state is State.VERIFYING:
            reason = "; ".join(failures) or spectrum.classification
            self.machine.fire(Event.VERIFIED if ok else Event.NOT_SINGLE, reason)
        return {"ok": ok, "classification": spectrum.classification, "unmet": failures,
                "spacing_ghz": spectrum.spacing_ghz, "lines_20db": spectrum.lines_20db,
                "bandwidth_3db_thz": spectrum.bandwidth_3db_thz,
                "envelope_residual_db": spectrum.envelope_residual_db}

    async def lock(self, actuator: str, kp: float, ki: float, kd: float, output_min: float,
                   output_max: float, setpoint_mw: float | None,
                   relief: Relief | None = None) -> object:
        """Hold the comb power by steering ``actuator`` (and, with ``relief``, the pump when
        the actuator nears its range); runs until stopped or the soliton is lost (then
        ``recover`` runs)."""
        worker, parameter, scale = self._actuator(actuator)
        base = float(await worker.get(parameter))
        setpoint = setpoint_mw if setpoint_mw is not None else await self._level()
        pid = Pid(kp, ki, kd, output_min, output_max, setpoint)
        outer = None if relief is None else PumpRelief(relief.step_pm, relief.at_fraction,
                                                        relief.interval_s)
        task = asyncio.create_task(self._hold(worker, parameter, base, scale, pid, outer))
        self.lock_state = _Lock(task, pid, actuator, outer)
        if self.machine.allows(Event.LOCK):
            self.machine.fire(Event.LOCK, f"holding {setpoint:.4g} mW with {actuator}")
        return {"setpoint_mw": setpoint}

    # -- measurements and actuators -------------------------------------------------------

    def _role(self, role: Role) -> InstrumentWorker:
        worker = self.station.by_role(role)
        if worker is None:
            raise RpcError(ErrorCode.NOT_CONNECTED, f"the station has no {role}",
                           {"instrument": role, "last_error": None})
        return worker

    async def _read(self, name: str) -> float:
        instrument, _, parameter = name.partition(".")
        return float(await self.station.worker(instrument).get(parameter))

    async def _level(self) -> float:
        meter = self._role(Role.POWER_METER)
        readings = [float(await meter.get("power_mw")) for _ in range(READINGS_PER_LEVEL)]
        self.measured.comb_power_mw = float(np.mean(readings))
        return self.measured.comb_power_mw

    async def _level_and_noise(self) -> tuple[float, float]:
        meter = self._role(Role.POWER_METER)
        readings = np.array([float(await meter.get("power_mw")) for _ in range(8)])
        noise = max(float(readings.std(ddof=1)) / np.sqrt(READINGS_PER_LEVEL),
                    1e-4 * abs(float(readings.mean())))
        return float(readings.mean()), noise

    async def _spectrum(self) -> SpectrumAnalysis:
        osa = self._role(Role.OSA)
        wavelength_nm, power_dbm = await osa.run(lambda driver: driver.read_trace(),
                                                 "read trace")
        self.publish("osa.spectrum", {"wavelength_nm": wavelength_nm.tolist(),
                                      "power_dbm": power_dbm.tolist()})
        spectrum = analyse_spectrum(wavelength_nm, power_dbm)
        if spectrum.classification == "mi" and await self._quiet():
            spectrum = dataclasses.replace(spectrum, classification="multi_soliton")
        m = self.measured
        m.classification, m.lines_20db = spectrum.classification, spectrum.lines_20db
        m.spacing_ghz, m.bandwidth_3db_thz = (
            _finite(spectrum.spacing_ghz), _finite(spectrum.bandwidth_3db_thz))
        return spectrum

    async def _quiet(self) -> bool:
        """Whether the through-port power is quiet. Many solitons interfere into a speckled
        spectrum the OSA cannot tell from MI; their intensity is steady, MI's is noisy
        (design/physics.md, section 3)."""
        level, noise = await self._level_and_noise()
        return noise < MI_RELATIVE_NOISE * abs(level)

    def _soliton_number(self, spectrum: SpectrumAnalysis, power: float,
                        removed: int = 0) -> int | None:
        """1 if the OSA shows one soliton; 0 for MI or no comb. For several: the count from the
        power level once a staircase calibrated it (and it is confident), else the last known
        number less ``removed``, else None (at least two)."""
        n: int | None
        if spectrum.classification == "single_soliton":
            n = 1
            counted = self._count(spectrum, power)
            if counted not in (None, 1):  # the chip or its drive changed: learn it again
                log.warning("power level reads %s solitons where the OSA shows one: "
                            "dropping the calibration", counted)
                self.calibration = None
                self.staircases.clear()
        elif spectrum.classification == "multi_soliton":
            known, counted = self.measured.soliton_number, self._count(spectrum, power)
            n = counted if counted is not None and counted >= 2 \
                else max(2, known - removed) if known is not None and known >= 2 else None
        else:
            n = 0
        self.measured.soliton_number = n
        return n

    def _count(self, spectrum: SpectrumAnalysis, power: float) -> int | None:
        """N from the power level, where calibrated and confident."""
        if self.calibration is None:
            return None
        counted = count(self.calibration, spectrum.moment_width_ghz, power)
        if counted is None:
            return None
        log.debug("N from power: %.2f (P(%d) = %.2f) at %.4f mW, width %.0f GHz",
                  counted.estimate, counted.n, counted.confidence, power,
                  spectrum.moment_width_ghz)
        return counted.n if counted.confidence >= CONFIDENT else None

    async def _stepped(self, change_mw: float, level_mw: float) -> None:
        """A discrete power step: look at the OSA to see what is left."""
        step = self.measured.step_mw
        removed = 1 if step is None else max(1, round(change_mw / step))
        if step is None or removed == 1:
            self.measured.step_mw = change_mw
        spectrum = await self._spectrum()
        self.staircase.add(spectrum.moment_width_ghz, level_mw, change_mw)
        self._soliton_number(spectrum, level_mw, removed)

    def _calibrate(self) -> None:
        """Learn N from power on the staircase that has just ended in one soliton."""
        if not self.staircases or self.staircases[-1] is not self.staircase:
            self.staircases.append(self.staircase)
        calibration = calibrate(self.staircases)
        if calibration is not None:
            self.calibration = calibration
            plateaus = sum(len(stairs.plateaus) for stairs in self.staircases)
            log.info("power levels calibrated on %d plateaus: %s", plateaus, calibration)
            self.publish("log", {"source": "soliton", "message": "power levels calibrated",
                                 "calibration": _calibration_view(calibration),
                                 "plateaus": plateaus})

    def _actuator(self, actuator: str) -> tuple[InstrumentWorker, str, float]:
        """(worker, parameter, unit scale of one PID/step unit in the parameter's unit)."""
        if actuator in ("pump_wavelength", "aux_wavelength"):
            role = Role.PUMP_LASER if actuator == "pump_wavelength" else Role.AUX_LASER
            return self._role(role), "wavelength_nm", 1e-3  # steps and outputs in pm
        if actuator == "tec":
            return self._role(Role.TEC), "setpoint_c", 1.0  # in K
        raise RpcError(ErrorCode.INVALID_PARAMS, f"no actuator {actuator!r}",
                       {"actuator": actuator})

    async def _nudge(self, actuator: str, step: float) -> None:
        """One step-down move: pump back towards the blue, or the chip warmer."""
        await self._move(actuator, -step if actuator == "pump_wavelength" else step)

    async def _move(self, actuator: str, by: float) -> None:
        """Move ``actuator`` by ``by`` of its unit (pm, or K) from where it is."""
        worker, parameter, scale = self._actuator(actuator)
        value = float(await worker.get(parameter)) + by * scale
        await worker.write(parameter, worker.checked(worker.spec(parameter), value))

    def _loss_band_mw(self, setpoint_mw: float) -> float:
        step = abs(self.measured.step_mw or 0.0)
        return max(LOSS_STEP_FRACTION * step, LOSS_MIN_FRACTION * abs(setpoint_mw))

    async def _hold(self, worker: InstrumentWorker, parameter: str, base: float, scale: float,
                    pid: Pid, relief: PumpRelief | None) -> None:
        loss = LossDetector(pid.setpoint, self._loss_band_mw(pid.setpoint))
        spec = worker.spec(parameter)
        last = time.monotonic()
        while True:
            await asyncio.sleep(LOCK_PERIOD_S)
            power = float(await self._role(Role.POWER_METER).get("power_mw"))
            now = time.monotonic()
            dt, last = now - last, now
            output = pid.update(power, dt)
            await worker.write(parameter, worker.checked(spec, base + output * scale))
            pump_move_pm = 0.0 if relief is None else relief.update(
                output, pid.output_min, pid.output_max, dt)
            if pump_move_pm:
                await self._move("pump_wavelength", pump_move_pm)
            self.measured.comb_power_mw = power
            self.publish("soliton.lock", {"error_mw": pid.setpoint - power, "output": output,
                                          "power_mw": power, "actuator": parameter,
                                          "saturated": pid.saturated, "pump_move_pm": pump_move_pm,
                                          "loss_band_mw": loss.band_mw})
            if loss.update(power, dt):
                asyncio.get_running_loop().call_soon(self._spawn_recovery,
                                                     f"comb power {power:.4g} mW, "
                                                     f"set-point {pid.setpoint:.4g} mW")
                return

    def _spawn_recovery(self, reason: str) -> None:
        self.lock_state = None
        if self.machine.allows(Event.LOST):
            self.machine.fire(Event.LOST, reason)
        self.attempt = 1
        self._recover()

    def _recover(self) -> None:
        """Run ``recover`` (back through the sweep to one locked soliton)."""
        self.measured.soliton_number = 0
        try:
            sequence = self.load("recover")
        except Exception as exc:  # the file is data: a broken one must not crash the loop
            fault = asyncio.create_task(self._fault(f"cannot load recover: {exc}"))
            self.pending.add(fault)
            fault.add_done_callback(self.pending.discard)
            return
        self._launch(sequence)

    async def _stop_lock(self) -> None:
        lock, self.lock_state = self.lock_state, None
        if lock is not None:
            lock.task.cancel()
            await asyncio.gather(lock.task, return_exceptions=True)


def _unmet(spectrum: SpectrumAnalysis, c: Criteria) -> list[str]:
    """The verify criteria ``spectrum`` does not meet, in words."""
    unmet = []
    if c.min_lines_20db is not None and spectrum.lines_20db < c.min_lines_20db:
        unmet.append(f"{spectrum.lines_20db} lines 20 dB over the floor < {c.min_lines_20db}")
    if c.max_envelope_residual_db is not None \
            and spectrum.envelope_residual_db > c.max_envelope_residual_db:
        unmet.append(f"envelope residual {spectrum.envelope_residual_db:.2f} dB "
                     f"> {c.max_envelope_residual_db} dB")
    if c.spacing_ghz is not None and c.spacing_tolerance_ghz is not None \
            and abs(spectrum.spacing_ghz - c.spacing_ghz) > c.spacing_tolerance_ghz:
        unmet.append(f"spacing {spectrum.spacing_ghz:.3f} GHz is not {c.spacing_ghz} "
                     f"+- {c.spacing_tolerance_ghz} GHz")
    if c.bandwidth_3db_thz_min is not None \
            and spectrum.bandwidth_3db_thz < c.bandwidth_3db_thz_min:
        unmet.append(f"3-dB bandwidth {spectrum.bandwidth_3db_thz:.2f} THz "
                     f"< {c.bandwidth_3db_thz_min} THz")
    return unmet


def _calibration_view(c: SolitonCalibration) -> dict[str, float]:
    """The calibration in the units it was learnt in (detuning as the OSA's width squared)."""
    return {"p1_ref_mw": c.p1_ref, "p_cw_mw": c.p_cw, "cw_dip_mw": c.cw_dip,
            "detuning_ref_ghz2": c.detuning_ref, "noise_mw": c.noise}


def _finite(value: float) -> float | None:
    """``value``, or None where the analysis had nothing to measure (NaN)."""
    return value if np.isfinite(value) else None
