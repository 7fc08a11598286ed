"""The daemon's RPC methods: params and result models, and the handlers that serve them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictFloat

from labd.config import StationConfig
from labd.leases import Lease, LeaseTable
from labd.rpc import CommandParams, Method, NoParams, Params, Result
from labd.safety import INTERLOCKS, Safety
from labd.station import Station

Value = Annotated[StrictFloat | StrictBool, Field(description="a number in the unit, or a bool")]


@dataclass
class Services:
    """What the methods act on."""

    config: StationConfig
    station: Station
    leases: LeaseTable
    safety: Safety


class ParameterInfo(Result):
    name: str
    unit: str
    writable: bool
    limits: list[float] | None = Field(description="[min, max] from the config, if any")
    ramp_per_s: float | None = Field(description="ramp rate from the config, if any")


class InstrumentStatus(Result):
    name: str
    role: str
    model: str
    resource: str
    implemented: bool
    connected: bool
    last_error: str | None
    parameters: list[ParameterInfo]


class StationList(Result):
    instruments: list[InstrumentStatus]


class GetParams(Params):
    instrument: str = Field(description="instrument name from instruments.toml, e.g. pump")
    parameter: str = Field(description="role parameter, e.g. wavelength_nm")


class SetParams(CommandParams):
    instrument: str = Field(description="instrument name from instruments.toml, e.g. pump")
    parameter: str = Field(description="role parameter, e.g. wavelength_nm")
    value: Value


class ParameterValue(Result):
    instrument: str
    parameter: str
    value: Value
    unit: str


class AcquireParams(Params):
    holder: str = Field(min_length=1, max_length=200, description="who commands, e.g. alice@lab")
    ttl_s: float = Field(default=60.0, gt=0, le=86400, description="lifetime unless renewed")


class RenewParams(Params):
    lease: str
    ttl_s: float = Field(default=60.0, gt=0, le=86400)


class ReleaseParams(Params):
    lease: str


class LeaseInfo(Result):
    holder: str
    token: str
    expires_at: float = Field(description="UNIX time, s")


class LeaseStatus(Result):
    holder: str | None
    expires_at: float | None


class Done(Result):
    ok: bool = True


class AbortParams(Params):
    reason: str = Field(default="operator abort", max_length=500)


class AbortResult(Result):
    reason: str
    steps: list[dict[str, Any]] = Field(description="instrument and outcome, in the order done")


class SafetyStatus(Result):
    last_abort: dict[str, Any] | None
    interlocks: list[str]
    watchdog_s: float


def methods(services: Services) -> list[Method]:
    """Every method the daemon serves, bound to its services."""
    station, leases, safety = services.station, services.leases, services.safety

    async def station_list(_: NoParams) -> StationList:
        return StationList(instruments=[_status(station, name) for name in station.workers])

    async def station_get(p: GetParams) -> ParameterValue:
        worker = station.worker(p.instrument)
        value = await worker.get(p.parameter)
        return ParameterValue(instrument=p.instrument, parameter=p.parameter, value=value,
                              unit=worker.spec(p.parameter).unit)

    async def station_set(p: SetParams) -> ParameterValue:
        value = await station.set(p.instrument, p.parameter, p.value, safety.check_interlocks)
        unit = station.worker(p.instrument).spec(p.parameter).unit
        return ParameterValue(instrument=p.instrument, parameter=p.parameter, value=value,
                              unit=unit)

    async def lease_acquire(p: AcquireParams) -> LeaseInfo:
        return _lease_info(leases.acquire(p.holder, p.ttl_s))

    async def lease_renew(p: RenewParams) -> LeaseInfo:
        return _lease_info(leases.renew(p.lease, p.ttl_s))

    async def lease_release(p: ReleaseParams) -> Done:
        leases.release(p.lease)
        return Done()

    async def lease_status(_: NoParams) -> LeaseStatus:
        lease = leases.current
        return LeaseStatus(holder=lease.holder if lease else None,
                           expires_at=lease.expires_at if lease else None)

    async def safety_abort(p: AbortParams) -> AbortResult:
        event = await safety.abort(p.reason)
        return AbortResult(reason=event["reason"], steps=event["steps"])

    async def safety_status(_: NoParams) -> SafetyStatus:
        return SafetyStatus(last_abort=safety.last_abort,
                            interlocks=[rule.name for rule in INTERLOCKS],
                            watchdog_s=services.config.daemon.watchdog_s)

    return [
        Method("station.list", "every instrument: role, model, resource, connection, last error",
               NoParams, StationList, station_list),
        Method("station.get", "read a parameter of an instrument through its role", GetParams,
               ParameterValue, station_get),
        Method("station.set", "write a parameter within limits and interlocks, ramping where "
               "configured; returns the value read back", SetParams, ParameterValue, station_set),
        Method("lease.acquire", "take the operator lease (refused while another holds it)",
               AcquireParams, LeaseInfo, lease_acquire),
        Method("lease.renew", "extend the lease you hold", RenewParams, LeaseInfo, lease_renew),
        Method("lease.release", "give the lease back", ReleaseParams, Done, lease_release),
        Method("lease.status", "who holds the lease, until when", NoParams, LeaseStatus,
               lease_status),
        Method("safety.abort", "every source to its safe state now, EDFA first; no lease needed",
               AbortParams, AbortResult, safety_abort),
        Method("safety.status", "last abort, interlocks, watchdog", NoParams, SafetyStatus,
               safety_status),
    ]


def _lease_info(lease: Lease) -> LeaseInfo:
    return LeaseInfo(holder=lease.holder, token=lease.token, expires_at=lease.expires_at)


def _status(station: Station, name: str) -> InstrumentStatus:
    worker = station.workers[name]
    config = worker.config
    return InstrumentStatus(
        name=name, role=config.role, model=config.model, resource=config.resource,
        implemented=worker.implemented, connected=worker.connected, last_error=worker.last_error,
        parameters=[
            ParameterInfo(name=p.name, unit=p.unit, writable=p.writable,
                          limits=config.limits.get(p.name), ramp_per_s=config.ramps.get(p.name))
            for p in worker.parameters
        ],
    )
