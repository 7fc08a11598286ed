"""The daemon's RPC methods: params and result models, and the handlers that serve them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StrictFloat

from labd.rpc import Method, NoParams, Params, Result
from labd.station import Station

Value = Annotated[StrictFloat | StrictBool, Field(description="a number in the unit, or a bool")]


class ParameterInfo(Result):
    name: str
    unit: str
    writable: bool
    limits: list[float] | None = Field(description="[min, max] from the config, if any")


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


class SetParams(GetParams):
    value: Value


class ParameterValue(Result):
    instrument: str
    parameter: str
    value: Value
    unit: str


def methods(station: Station) -> list[Method]:
    """Every method the daemon serves, bound to its station."""
    async def station_list(_: NoParams) -> StationList:
        return StationList(instruments=[_status(station, name) for name in station.workers])

    async def station_get(p: GetParams) -> ParameterValue:
        worker = station.worker(p.instrument)
        value = await worker.get(p.parameter)
        return ParameterValue(instrument=p.instrument, parameter=p.parameter, value=value,
                              unit=worker.spec(p.parameter).unit)

    async def station_set(p: SetParams) -> ParameterValue:
        worker = station.worker(p.instrument)
        value = await worker.set(p.parameter, p.value)
        return ParameterValue(instrument=p.instrument, parameter=p.parameter, value=value,
                              unit=worker.spec(p.parameter).unit)

    table = [
        Method("station.list", "every instrument: role, model, resource, connection, last error",
               NoParams, StationList, station_list),
        Method("station.get", "read a parameter of an instrument through its role", GetParams,
               ParameterValue, station_get),
        Method("station.set", "write a parameter within the configured limits; returns the "
               "value read back", SetParams, ParameterValue, station_set),
    ]
    return table


def _status(station: Station, name: str) -> InstrumentStatus:
    worker = station.workers[name]
    config = worker.config
    return InstrumentStatus(
        name=name, role=config.role, model=config.model, resource=config.resource,
        implemented=worker.implemented, connected=worker.connected, last_error=worker.last_error,
        parameters=[
            ParameterInfo(name=p.name, unit=p.unit, writable=p.writable,
                          limits=config.limits.get(p.name))
            for p in worker.parameters
        ],
    )
