"""The daemon's RPC methods: params and result models, and the handlers that serve them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictFloat

from labd.config import StationConfig
from labd.leases import Lease, LeaseTable
from labd.qkd.service import ChannelRequest, QkdService
from labd.rpc import CommandParams, ErrorCode, Method, NoParams, Params, Result, RpcError
from labd.safety import INTERLOCKS, Safety
from labd.sequences import Sequence, SequenceError, plan
from labd.soliton.controller import SolitonController
from labd.station import Station

Value = Annotated[StrictFloat | StrictBool, Field(description="a number in the unit, or a bool")]


@dataclass
class Services:
    """What the methods act on."""

    config: StationConfig
    station: Station
    leases: LeaseTable
    safety: Safety
    soliton: SolitonController
    qkd: QkdService


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


class SolitonStartParams(CommandParams):
    sequence: str = Field(default="single_soliton", description="a file of sequences/, no suffix")
    parameters: dict[str, float | bool | str] = Field(
        default_factory=dict, description="overrides of the sequence's [parameters]")


class PowerCalibration(Result):
    """N from power: P = p_cw - cw_dip (ref / x)^2 + N p1_ref sqrt(x / ref), x the OSA's sech^2
    width squared."""

    p1_ref_mw: float = Field(description="one soliton's change of the through-port power at ref")
    p_cw_mw: float
    cw_dip_mw: float
    detuning_ref_ghz2: float = Field(description="ref: the squared width it is scaled from")
    noise_mw: float = Field(description="rms of the levels about the fit")


class SolitonStatus(Result):
    state: str
    reason: str
    soliton_number: int | None = Field(description="null while known only to be >= 2")
    comb_power_mw: float | None = Field(description="through-port power at the power meter")
    spacing_ghz: float | None
    bandwidth_3db_thz: float | None
    lines_20db: int | None
    locked: bool
    sequence: str | None
    calibration: PowerCalibration | None = Field(
        description="learnt on the step-downs that reached one soliton; null before")


class StopParams(CommandParams):
    reason: str = Field(default="operator stop", max_length=500)


class SequenceRunParams(CommandParams):
    name: str = Field(description="file of sequences/ (no suffix), or the file name of text")
    text: str | None = Field(default=None, description="the TOML itself, e.g. from labctl")
    parameters: dict[str, float | bool | str] = Field(default_factory=dict)


class SequenceStarted(Result):
    sequence: str
    plan: str


class SequenceStatus(Result):
    running: str | None
    last: dict[str, Any] | None = Field(description="status, message, step of the last run")


class QkdChannelParams(Params):
    channel: int = Field(description="ITU channel of the DEMUX (100 GHz grid), a [qkd.channels] "
                                     "key of instruments.toml")
    transmitter: dict[str, Any] = Field(
        default_factory=dict,
        description="changes to the channel's system settings (TransmitterSettings): "
                    "intensities (mu fixed), class_weights, p_x, phase_levels, pattern_slots, seed")


class QkdStartParams(CommandParams):
    channels: list[QkdChannelParams] | None = Field(
        default=None, description="none: the seed's TR1 and TR2, each on its channel")


class QkdClass(Result):
    intensity: float = Field(description="mean photons per pulse Alice sends")
    gain: float = Field(description="clicks per gate sent")
    qber: float = Field(description="sifted error rate, fraction")


class QkdChannelStatus(Result):
    channel: int
    qber: float | None = Field(description="signal class, fraction; null before the first window")
    gain: float | None = Field(description="signal class, clicks per gate")
    sifted_bps: float | None
    skr_bps: float | None = Field(description="finite key (Lim 2014) of the run's block, after "
                                              "post-processing")
    skr_asymptotic_bps: float | None = Field(description="GLLP, two weak decoys")
    y1_lower: float | None
    e1_upper: float | None
    classes: dict[str, QkdClass] | None = Field(description="mu, nu1, nu2")
    system: str = Field(description="the seed's system the channel's hardware is set up for")
    block_s: float = Field(description="gate time counted so far: the finite-key block")
    error: str | None = Field(description="the last update's problem, if it failed")


class QkdStatus(Result):
    running: bool
    channels: list[QkdChannelStatus]


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

    soliton = services.soliton

    def load(name: str, text: str | None, overrides: dict[str, Any]) -> Sequence:
        try:
            return soliton.load(name, text, overrides or None)
        except SequenceError as exc:
            raise RpcError(ErrorCode.INVALID_PARAMS, f"sequence {name}: {exc}",
                           {"problems": [str(p) for p in exc.problems]}) from exc

    async def soliton_start(p: SolitonStartParams) -> SolitonStatus:
        soliton.start(load(p.sequence, None, p.parameters), soliton=True)
        return SolitonStatus(**soliton.status())

    async def soliton_status(_: NoParams) -> SolitonStatus:
        return SolitonStatus(**soliton.status())

    async def soliton_stop(p: StopParams) -> SolitonStatus:
        await soliton.stop(p.reason)
        return SolitonStatus(**soliton.status())

    async def sequence_run(p: SequenceRunParams) -> SequenceStarted:
        sequence = load(p.name, p.text, p.parameters)
        soliton.start(sequence, soliton=False)
        return SequenceStarted(sequence=sequence.name, plan=plan(sequence))

    async def sequence_status(_: NoParams) -> SequenceStatus:
        last = soliton.last_result
        return SequenceStatus(
            running=soliton.run_name if soliton.running else None,
            last=None if last is None else {"status": last.status, "message": last.message,
                                            "step": last.step})

    async def sequence_abort(p: StopParams) -> SequenceStatus:
        await soliton.stop(p.reason)
        return await sequence_status(NoParams())

    qkd = services.qkd

    def qkd_status(channels: list[dict[str, Any]]) -> QkdStatus:
        return QkdStatus(running=qkd.running,
                         channels=[QkdChannelStatus.model_validate(c) for c in channels])

    async def qkd_start(p: QkdStartParams) -> QkdStatus:
        requests = None if p.channels is None else [
            ChannelRequest(c.channel, c.transmitter) for c in p.channels]
        return qkd_status(await qkd.start(requests))

    async def qkd_get_status(_: NoParams) -> QkdStatus:
        return qkd_status(qkd.status())

    async def qkd_stop(p: StopParams) -> QkdStatus:
        return qkd_status(await qkd.stop())

    async def station_set(p: SetParams) -> ParameterValue:
        soliton.refuse_if_driven(p.instrument)
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
        Method("soliton.start", "run the soliton machine (default sequence single_soliton) from "
               "idle or fault", SolitonStartParams, SolitonStatus, soliton_start),
        Method("soliton.status", "machine state and the comb as last measured", NoParams,
               SolitonStatus, soliton_status),
        Method("soliton.stop", "stop the sequence and the lock; sources stay as they are",
               StopParams, SolitonStatus, soliton_stop),
        Method("sequence.run", "validate and run a sequence file (by name, or its text)",
               SequenceRunParams, SequenceStarted, sequence_run),
        Method("sequence.status", "the running sequence and how the last one ended", NoParams,
               SequenceStatus, sequence_status),
        Method("sequence.abort", "stop the running sequence safely", StopParams, SequenceStatus,
               sequence_abort),
        Method("qkd.start", "patterns on the AWGs, counting and estimates on the given channels "
               "(default: the seed's TR1 and TR2)", QkdStartParams, QkdStatus, qkd_start),
        Method("qkd.status", "per channel: QBER, gains, sifted and secret key rates, decoy bounds",
               NoParams, QkdStatus, qkd_get_status),
        Method("qkd.stop", "stop counting and the AWGs; the last estimates stay", StopParams,
               QkdStatus, qkd_stop),
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
