"""The station: one worker per instrument that owns its connection and serialises access to it.

pyvisa sessions are not thread-safe and drivers block, so each instrument gets a single worker
thread; the asyncio loop awaits it with a timeout and is never blocked by a slow instrument.
Limits from the config are checked here, before anything reaches the wire; parameters with a
configured ramp rate move there in small steps. A worker that loses its instrument (timeout,
dropped connection) closes it and is reconnected by ``Station.supervise`` with back-off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from drivers.errors import ConnectionLost, InstrumentError, InstrumentTimeout
from drivers.registry import MODELS, open_driver
from drivers.roles import (
    ROLE_PARAMETERS,
    SAFE_STATE_ORDER,
    Instrument,
    Parameter,
    Role,
    parameter,
)
from labd.config import InstrumentConfig, StationConfig
from labd.rpc import ErrorCode, RpcError

log = logging.getLogger(__name__)
T = TypeVar("T")
RAMP_TICK_S = 0.1
BACKOFF_S = (0.5, 30.0)  # first and longest wait between reconnection attempts

Event = Callable[[str, dict[str, Any]], None]  # (instrument name, event) -> None
Interlock = Callable[["InstrumentWorker", str, Any], Awaitable[None]]  # raises if refused


class InstrumentWorker:
    """One configured instrument: its driver, the thread that talks to it, its health."""

    def __init__(self, name: str, config: InstrumentConfig, timeout_s: float,
                 on_event: Event) -> None:
        self.name = name
        self.config = config
        self.timeout_s = timeout_s
        self.on_event = on_event
        self.implemented = MODELS[config.model].driver is not None
        self.driver: Instrument | None = None
        self.last_error: str | None = None if self.implemented else "not implemented"
        self.retry_at = 0.0
        self.backoff_s = BACKOFF_S[0]
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"instrument-{name}")

    @property
    def connected(self) -> bool:
        return self.driver is not None

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return ROLE_PARAMETERS[self.config.role]

    async def connect(self) -> None:
        """Open the driver; on failure record it and schedule the next attempt with back-off."""
        if not self.implemented or self.connected:
            return
        try:
            self.driver = await self._call(
                lambda: open_driver(self.config.model, self.config.resource, self.name,
                                    self.timeout_s), "connect")
        except Exception as exc:  # a driver is outside code: whatever it raises, carry on
            self.last_error = str(exc) or type(exc).__name__
            self.retry_at = time.monotonic() + self.backoff_s
            self.backoff_s = min(self.backoff_s * 2, BACKOFF_S[1])
            log.warning("%s: cannot connect: %s", self.name, exc)
            return
        self.last_error = None
        self.backoff_s = BACKOFF_S[0]
        self.on_event(self.name, {"event": "connected"})

    def spec(self, name: str) -> Parameter:
        spec = parameter(self.config.role, name)
        if spec is None:
            known = [p.name for p in self.parameters]
            raise RpcError(ErrorCode.INVALID_PARAMS,
                           f"{self.name} ({self.config.role}) has no parameter {name!r}",
                           {"instrument": self.name, "parameter": name, "known": known})
        return spec

    async def get(self, name: str) -> Any:
        spec = self.spec(name)
        return await self.run(lambda driver: spec.type(getattr(driver, name)), f"get {name}")

    async def write(self, name: str, value: Any) -> None:
        await self.run(lambda driver: setattr(driver, name, value), f"set {name}")

    async def ramp(self, name: str, target: float, rate_per_s: float,
                   cancelled: asyncio.Event) -> None:
        """Move ``name`` to ``target`` at ``rate_per_s``, one step per tick, unless cancelled."""
        value = float(await self.get(name))
        step = rate_per_s * RAMP_TICK_S
        while abs(target - value) > 1e-12 and not cancelled.is_set():
            value = value + max(-step, min(step, target - value))
            await self.write(name, value)
            if value != target:
                await asyncio.sleep(RAMP_TICK_S)

    def checked(self, spec: Parameter, value: Any) -> Any:
        """``value`` if it is of the right type, writable and inside the configured limits."""
        where = {"instrument": self.name, "parameter": spec.name}
        if not spec.writable:
            raise RpcError(ErrorCode.READ_ONLY, f"{self.name}.{spec.name} is read-only", where)
        if spec.type is bool:
            if not isinstance(value, bool):
                raise RpcError(ErrorCode.INVALID_PARAMS,
                               f"{self.name}.{spec.name} takes true or false", where)
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RpcError(ErrorCode.INVALID_PARAMS,
                           f"{self.name}.{spec.name} takes a number in {spec.unit}", where)
        limits = self.config.limits.get(spec.name)
        if limits is not None and not limits[0] <= value <= limits[1]:
            raise RpcError(
                ErrorCode.LIMIT_EXCEEDED,
                f"{self.name}.{spec.name} = {value} {spec.unit} is outside the configured "
                f"limits [{limits[0]}, {limits[1]}] {spec.unit}",
                {**where, "value": value, "limits": limits, "unit": spec.unit},
            )
        return float(value)

    async def safe_state(self) -> None:
        if self.driver is not None:
            await self.run(lambda driver: driver.safe_state(), "safe state")

    async def read_all(self) -> dict[str, Any]:
        """Every parameter of the role, for telemetry."""
        return {p.name: await self.get(p.name) for p in self.parameters}

    async def run(self, work: Callable[[Any], T], what: str) -> T:
        """Run ``work(driver)`` on the worker thread; a lost instrument is closed for reconnect."""
        driver = self._ready()
        try:
            return await self._call(lambda: work(driver), what)
        except RpcError as exc:
            if isinstance(exc.__cause__, InstrumentTimeout | ConnectionLost | TimeoutError):
                self._lost(driver, exc.message)
            raise

    def close(self) -> None:
        driver, self.driver = self.driver, None
        if driver is not None:
            self.executor.submit(driver.close)
        self.executor.shutdown(wait=True)

    def _ready(self) -> Instrument:
        if not self.implemented:
            raise RpcError(ErrorCode.NOT_IMPLEMENTED,
                           f"{self.name}: model {self.config.model} is not implemented yet",
                           {"instrument": self.name, "model": self.config.model})
        if self.driver is None:
            raise RpcError(ErrorCode.NOT_CONNECTED, f"{self.name} is not connected",
                           {"instrument": self.name, "last_error": self.last_error})
        return self.driver

    def _lost(self, driver: Instrument, reason: str) -> None:
        if self.driver is not driver:
            return
        self.driver = None
        self.executor.submit(driver.close)
        self.retry_at = time.monotonic() + self.backoff_s
        log.error("%s: lost: %s", self.name, reason)
        self.on_event(self.name, {"event": "disconnected", "error": reason})

    async def _call(self, work: Callable[[], T], what: str) -> T:
        loop = asyncio.get_running_loop()
        deadline_s = self.timeout_s * 2 + 1.0
        try:
            return await asyncio.wait_for(loop.run_in_executor(self.executor, work), deadline_s)
        except (InstrumentError, TimeoutError) as exc:
            detail = str(exc) or f"{what}: no answer within {deadline_s} s"
            self.last_error = detail
            raise RpcError(ErrorCode.INSTRUMENT_FAULT, detail,
                           {"instrument": self.name, "command": getattr(exc, "command", what),
                            "detail": detail}) from exc


class Station:
    """Every instrument of the config, by name, with the checks that span instruments."""

    def __init__(self, config: StationConfig, on_event: Event) -> None:
        timeout_s = config.daemon.call_timeout_s
        self.workers = {name: InstrumentWorker(name, inst, timeout_s, on_event)
                        for name, inst in config.instruments.items()}
        self.ramps_cancelled = asyncio.Event()

    def worker(self, name: str) -> InstrumentWorker:
        try:
            return self.workers[name]
        except KeyError:
            raise RpcError(ErrorCode.INVALID_PARAMS, f"no instrument {name!r} in the station",
                           {"instrument": name, "known": list(self.workers)}) from None

    def by_role(self, role: Role) -> InstrumentWorker | None:
        return next((w for w in self.workers.values() if w.config.role == role), None)

    async def set(self, name: str, parameter_name: str, value: Any,
                  interlock: Interlock | None = None) -> Any:
        """Check, interlock, write (ramping where configured) and read back one parameter."""
        worker = self.worker(name)
        spec = worker.spec(parameter_name)
        value = worker.checked(spec, value)
        if interlock is not None:
            await interlock(worker, parameter_name, value)
        rate = worker.config.ramps.get(parameter_name)
        if rate is None:
            await worker.write(parameter_name, value)
        else:
            self.ramps_cancelled.clear()
            await worker.ramp(parameter_name, value, rate, self.ramps_cancelled)
        return await worker.get(parameter_name)

    async def connect(self) -> None:
        await asyncio.gather(*(w.connect() for w in self.workers.values()))

    async def supervise(self, period_s: float = 0.25) -> None:
        """Reconnect lost instruments forever, each with its own back-off."""
        while True:
            now = time.monotonic()
            due = [w for w in self.workers.values()
                   if w.implemented and not w.connected and w.retry_at <= now]
            await asyncio.gather(*(w.connect() for w in due))
            await asyncio.sleep(period_s)

    def safe_state_order(self) -> list[InstrumentWorker]:
        """Workers in the order sources must go dark: EDFA, aux, pump, TEC, then the rest."""
        order = {role: i for i, role in enumerate(SAFE_STATE_ORDER)}
        return sorted(self.workers.values(), key=lambda w: order.get(w.config.role, len(order)))

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()
