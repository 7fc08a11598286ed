"""Safety: interlocks on commands, the abort sequence, the loss watch, and the loop watchdog.

Sources go dark in one order everywhere: the EDFA first (it drives watts), then the auxiliary
and pump lasers. That order is used by ``safety.abort``, by the loss watch (a lost pump or EDFA),
by shutdown, by an unhandled error, and by the watchdog when the daemon's own loop stalls.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from drivers.roles import Role
from labd.rpc import ErrorCode, RpcError
from labd.station import InstrumentWorker, Station

log = logging.getLogger(__name__)
Publish = Callable[[str, dict[str, Any]], object]


@dataclass(frozen=True)
class Interlock:
    """A write that is refused unless ``condition`` finds the station fit for it."""

    name: str
    role: Role
    parameter: str
    engaging: Callable[[Any], bool]  # which values of the parameter need the condition
    condition: Callable[[Station], Awaitable[str | None]]  # None: fine; else why not


async def _edfa_seeded(station: Station) -> str | None:
    pump, edfa = station.by_role(Role.PUMP_LASER), station.by_role(Role.EDFA)
    if pump is None or not pump.connected:
        return "the pump laser is not connected"
    if not await pump.get("output_enabled"):
        return "the pump laser is off"
    if edfa is not None and not await edfa.run(lambda d: bool(d.seed_ok), "seed status"):
        return "the EDFA does not see its seed at the input"
    return None


INTERLOCKS: tuple[Interlock, ...] = (
    Interlock("edfa_seed", Role.EDFA, "enabled", lambda value: value is True, _edfa_seeded),
)


class Safety:
    """Everything that takes the bench to its safe state, and the record of when it did."""

    def __init__(self, station: Station, publish: Publish) -> None:
        self.station = station
        self.publish = publish
        self.last_abort: dict[str, Any] | None = None
        self.listeners: list[Callable[[str], Awaitable[None]]] = []  # stop automation first
        self._lock = asyncio.Lock()
        self._edfa_up = False
        self.unsafe: set[str] = set()  # sources an abort could not reach: made safe on return

    async def check_interlocks(self, worker: InstrumentWorker, parameter: str, value: Any) -> None:
        """Raise an interlock error if a rule forbids writing ``value`` now."""
        for rule in INTERLOCKS:
            if (rule.role, rule.parameter) == (worker.config.role, parameter) \
                    and rule.engaging(value):
                reason = await rule.condition(self.station)
                if reason is not None:
                    raise RpcError(ErrorCode.INTERLOCK,
                                   f"{worker.name}.{parameter} refused: {reason}",
                                   {"interlock": rule.name, "instrument": worker.name})

    async def abort(self, reason: str, level: int = logging.WARNING) -> dict[str, Any]:
        """Every source to its safe state, EDFA first; publish and return what was done."""
        for listener in self.listeners:
            await listener(reason)
        async with self._lock:
            self.station.ramps_cancelled.set()
            steps = []
            for worker in self.station.safe_state_order():
                if not worker.implemented:
                    continue
                if not worker.connected:
                    self.unsafe.add(worker.name)
                    steps.append({"instrument": worker.name, "ok": False,
                                  "error": "not connected: made safe when it reconnects"})
                    continue
                try:
                    await worker.safe_state()
                    steps.append({"instrument": worker.name, "ok": True})
                except RpcError as exc:
                    self.unsafe.add(worker.name)
                    steps.append({"instrument": worker.name, "ok": False, "error": exc.message})
            event = {"event": "abort", "reason": reason, "steps": steps, "t": time.time()}
            log.log(level, "safety abort (%s): %s", reason, steps)
            self.last_abort = event
            self.publish("safety", {k: v for k, v in event.items() if k != "t"})
            return event

    async def watch(self) -> None:
        """Make safe what an abort could not reach and is back; abort if the EDFA runs while
        its seed is lost, or the EDFA itself is lost."""
        await self._catch_up()
        try:
            reason = await self._loss()
        except RpcError as exc:
            reason = f"lost while checking the EDFA and its seed: {exc.message}"
        if reason is not None:
            await self.abort(reason)

    async def _catch_up(self) -> None:
        for name in sorted(self.unsafe):
            worker = self.station.worker(name)
            if worker.connected:
                try:
                    await worker.safe_state()
                except RpcError:
                    continue
                self.unsafe.discard(name)
                log.warning("safety: %s made safe on its return after an abort", name)
                self.publish("safety", {"event": "made_safe", "instrument": name})

    async def _loss(self) -> str | None:
        edfa, pump = self.station.by_role(Role.EDFA), self.station.by_role(Role.PUMP_LASER)
        if edfa is None or not edfa.implemented:
            return None
        was_up, self._edfa_up = self._edfa_up, edfa.connected
        if not edfa.connected:
            return f"EDFA lost: {edfa.last_error}" if was_up else None
        if not await edfa.get("enabled"):
            return None
        if pump is None or not pump.connected:
            return "pump laser lost while the EDFA is enabled"
        if not await pump.get("output_enabled"):
            return "pump laser off while the EDFA is enabled"
        return None


class Watchdog:
    """A thread that takes the sources to safe state if the event loop stops beating."""

    def __init__(self, station: Station, timeout_s: float,
                 on_trip: Callable[[str], None]) -> None:
        self.station = station
        self.timeout_s = timeout_s
        self.on_trip = on_trip
        self.beat = time.monotonic()
        self.tripped = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def heartbeat(self) -> None:
        """Beat from the event loop; a loop that stalls stops beating."""
        while True:
            self.beat = time.monotonic()
            await asyncio.sleep(self.timeout_s / 5)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(self.timeout_s / 5):
            stalled_s = time.monotonic() - self.beat
            if stalled_s > self.timeout_s and not self.tripped:
                self.tripped = True
                self._safe_state_from_thread(f"event loop stalled for {stalled_s:.1f} s")
            elif stalled_s <= self.timeout_s:
                self.tripped = False

    def _safe_state_from_thread(self, reason: str) -> None:
        log.critical("watchdog: %s; taking sources to safe state", reason)
        for worker in self.station.safe_state_order():
            driver = worker.driver
            if driver is None:
                continue
            try:
                worker.executor.submit(driver.safe_state).result(worker.timeout_s * 2)
            except Exception as exc:  # every source must be tried, whatever one of them does
                log.error("watchdog: %s safe state failed: %s", worker.name, exc)
        self.on_trip(reason)
