"""The station: one worker per instrument that owns its connection and serialises access to it.

pyvisa sessions are not thread-safe and drivers block, so each instrument gets a single worker
thread; the asyncio loop awaits it with a timeout and is never blocked by a slow instrument.
Limits from the config are checked here, before anything reaches the wire.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from drivers.errors import InstrumentError
from drivers.registry import MODELS, NotImplementedModel, open_driver
from drivers.roles import ROLE_PARAMETERS, SAFE_STATE_ORDER, Instrument, Parameter, parameter
from labd.config import InstrumentConfig, StationConfig
from labd.rpc import ErrorCode, RpcError

log = logging.getLogger(__name__)
T = TypeVar("T")


class InstrumentWorker:
    """One configured instrument: its driver, the thread that talks to it, its health."""

    def __init__(self, name: str, config: InstrumentConfig, timeout_s: float) -> None:
        self.name = name
        self.config = config
        self.timeout_s = timeout_s
        self.implemented = MODELS[config.model].driver is not None
        self.driver: Instrument | None = None
        self.last_error: str | None = None if self.implemented else "not implemented"
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"instrument-{name}")

    @property
    def connected(self) -> bool:
        return self.driver is not None

    async def connect(self) -> None:
        """Open the driver; failures are recorded in ``last_error``, not raised."""
        if not self.implemented:
            return
        try:
            self.driver = await self._run(
                lambda: open_driver(self.config.model, self.config.resource, self.name,
                                    self.timeout_s), "connect")
            self.last_error = None
        except (RpcError, NotImplementedModel) as exc:
            log.warning("%s: cannot connect: %s", self.name, exc)

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return ROLE_PARAMETERS[self.config.role]

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
        driver = self._ready()
        return await self._run(lambda: spec.type(getattr(driver, name)), f"get {name}")

    async def set(self, name: str, value: Any) -> Any:
        """Check ``value`` against type, access and limits, write it, and return the read-back."""
        spec = self.spec(name)
        value = self._checked(spec, value)
        driver = self._ready()
        await self._run(lambda: setattr(driver, name, value), f"set {name}")
        return await self.get(name)

    async def safe_state(self) -> None:
        if self.driver is not None:
            await self._run(self.driver.safe_state, "safe state")

    async def read_all(self) -> dict[str, Any]:
        """Every parameter of the role, for telemetry."""
        return {p.name: await self.get(p.name) for p in self.parameters}

    def close(self) -> None:
        driver, self.driver = self.driver, None
        if driver is not None:
            self._thread.submit(driver.close)
        self._thread.shutdown(wait=True)

    def _checked(self, spec: Parameter, value: Any) -> Any:
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

    def _ready(self) -> Instrument:
        if not self.implemented:
            raise RpcError(ErrorCode.NOT_IMPLEMENTED,
                           f"{self.name}: model {self.config.model} is not implemented yet",
                           {"instrument": self.name, "model": self.config.model})
        if self.driver is None:
            raise RpcError(ErrorCode.NOT_CONNECTED, f"{self.name} is not connected",
                           {"instrument": self.name, "last_error": self.last_error})
        return self.driver

    async def _run(self, work: Callable[[], T], what: str) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._thread, work), self.timeout_s * 2 + 1.0)
        except (InstrumentError, TimeoutError) as exc:
            detail = str(exc) or f"{what}: no answer within {self.timeout_s * 2 + 1.0} s"
            self.last_error = detail
            raise RpcError(ErrorCode.INSTRUMENT_FAULT, detail,
                           {"instrument": self.name, "command": getattr(exc, "command", what),
                            "detail": detail}) from exc


class Station:
    """Every instrument of the config, by name."""

    def __init__(self, config: StationConfig) -> None:
        timeout_s = config.daemon.call_timeout_s
        self.workers = {name: InstrumentWorker(name, inst, timeout_s)
                        for name, inst in config.instruments.items()}

    def worker(self, name: str) -> InstrumentWorker:
        try:
            return self.workers[name]
        except KeyError:
            raise RpcError(ErrorCode.INVALID_PARAMS, f"no instrument {name!r} in the station",
                           {"instrument": name, "known": list(self.workers)}) from None

    async def connect(self) -> None:
        await asyncio.gather(*(w.connect() for w in self.workers.values()))

    async def safe_state(self) -> None:
        """Take every source to its safe state, the EDFA first, each failure logged."""
        order = {role: i for i, role in enumerate(SAFE_STATE_ORDER)}
        workers = sorted(self.workers.values(),
                         key=lambda w: order.get(w.config.role, len(order)))
        for worker in workers:
            try:
                await worker.safe_state()
            except RpcError as exc:
                log.error("%s: safe state failed: %s", worker.name, exc.message)

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()
