"""The station file (``instruments.toml``): pydantic models, loading, and problems named by key.

Every problem is reported as one line naming the dotted key path, e.g.
``instruments.edfa.limits.output_w: minimum 5.0 is not below maximum 1.0``; TOML syntax errors name
the line and column. Checks that span several fields (one instrument per resource, roles a model
can fill, limits that exist for a role, roles the daemon needs) run after the per-field checks.
"""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from drivers.registry import MODELS, Transport
from drivers.roles import Role, parameter

_VISA_SOCKET = re.compile(r"^TCPIP\d*::(?P<host>[^:\s]+)::(?P<port>\d+)::SOCKET$", re.I)
_VISA_OTHER = re.compile(
    r"^(TCPIP\d*::[^:\s]+(::[^:\s]+)?::INSTR"
    r"|USB\d*::[^:\s]+::[^:\s]+::[^:\s]+(::\d+)?::(INSTR|RAW)"
    r"|GPIB\d*::\d+(::\d+)?::INSTR"
    r"|ASRL[^:\s]+::INSTR)$",
    re.I,
)
_ZMQ = re.compile(r"^tcp://(?P<host>[^:\s/]+|\*):(?P<port>\d+)$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# Roles the daemon cannot run without: every other role is optional.
REQUIRED_ROLES: tuple[Role, ...] = (Role.PUMP_LASER,)
# Roles of which a station has at most one (the physics has one of each).
SINGLE_ROLES: tuple[Role, ...] = (
    Role.PUMP_LASER, Role.AUX_LASER, Role.EDFA, Role.TEC, Role.OSA, Role.POWER_METER,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _endpoint(value: str) -> str:
    match = _ZMQ.match(value)
    if not match or not 0 < int(match["port"]) < 65536:
        raise ValueError(f"{value!r} is not a ZeroMQ endpoint of the form tcp://HOST:PORT")
    return value


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DaemonConfig(_Strict):
    """The ``[daemon]`` table: where the daemon listens and how it paces its work."""

    rpc: Annotated[str, Field(description="JSON-RPC endpoint (ZeroMQ ROUTER)")] = (
        "tcp://127.0.0.1:5555"
    )
    pub: Annotated[str, Field(description="telemetry endpoint (ZeroMQ PUB)")] = (
        "tcp://127.0.0.1:5556"
    )
    database: Annotated[str, Field(description="SQLite record of runs", min_length=1)] = (
        "labd.sqlite"
    )
    poll_interval_s: Annotated[float, Field(gt=0, le=3600, description="telemetry period")] = 1.0
    call_timeout_s: Annotated[float, Field(gt=0, le=600, description="per instrument call")] = 5.0
    watchdog_s: Annotated[float, Field(gt=0, le=600, description="stall before safe state")] = (
        5.0
    )
    max_request_bytes: Annotated[int, Field(ge=1024, le=1 << 26)] = 1 << 20
    sequences: Annotated[str, Field(description="folder of sequence files, relative to this "
                                                "file")] = "sequences"

    _check_rpc = field_validator("rpc", "pub")(_endpoint)


class FaultConfig(_Strict):
    """Faults an emulated instrument starts with (``[simulation.faults.<instrument>]``)."""

    drop_connection: bool = False
    stall: bool = False
    reply_delay_s: Annotated[float, Field(ge=0, le=600)] = 0.0
    garbage_reply: bool = False


class SimulationConfig(_Strict):
    """The ``[simulation]`` table: present means ``labd serve`` starts the simulated testbed."""

    seed: Annotated[int, Field(ge=0, description="seed of every random process in the world")] = 1
    startup_timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0
    control: Annotated[str, Field(description="the testbed's fault-injection port (REP)")] = (
        "tcp://127.0.0.1:5559"
    )
    faults: dict[str, FaultConfig] = Field(default_factory=dict)
    speed: Annotated[float, Field(gt=0, le=1000, description="world seconds per wall second")] = (
        1.0
    )
    device: Annotated[Literal["seed"] | Annotated[int, Field(ge=0)], Field(
        description="the chip on the mount: the seed's own device, or device k drawn from the "
                    "fabrication population (sim_backends/world/resonator.py, DeviceSpread)")] = (
        "seed"
    )
    comb: Annotated[Literal["chip", "ideal"], Field(
        description="light at Alice's DEMUX: the chip's through port, or the seed's ideal "
                    "single-soliton comb (QKD without the soliton bring-up)")] = "chip"

    _check_control = field_validator("control")(_endpoint)


class QkdChannelConfig(_Strict):
    """One QKD system on a DEMUX channel (``[qkd.channels.<ITU channel>]``): its instruments and
    Bob's receiver. The simulated testbed builds its receiver from these fields."""

    system: Annotated[Literal["TR1", "TR2"], Field(
        description="the seed's transmitter this hardware is set up for: its attenuator gives that "
                    "mu, its RF drivers that system's modulator gains at the AWG's 0.5 Vpp")]
    awg: Annotated[str | None, Field(
        description="instrument (role awg) driving the transmitter; needed on Alice's site")] = None
    counter: Annotated[str | None, Field(
        description="instrument (role spd_counter) counting Bob's SPDs; needed on Bob's site")] = (
        None
    )
    bias: Annotated[str | None, Field(
        description="instrument (role bias) holding the transmitter's IM2 at its peak, locked "
                    "by qkd.start before the pattern plays; none: held without drift")] = None
    detectors: Annotated[int, Field(ge=1, le=2, description="SPDs: 1 (four-phase decoder, like "
                                                            "TR1) or 2 (like TR2)")]
    excess_loss_db: Annotated[float, Field(
        ge=0, le=40, description="receiver loss beyond the decoder's interfering time bin "
                                 "(circulator, phase modulator, interferometer)")] = 3.0
    dead_time_s: Annotated[float, Field(ge=0, le=1e-3, description="each SPD's dead time")] = 5e-8
    post_processing_efficiency: Annotated[float, Field(
        gt=0, le=1, description="share of the finite-key rate left after post-processing")] = 1.0


class QkdConfig(_Strict):
    """The ``[qkd]`` table: estimation settings and the QKD systems by DEMUX channel."""

    update_interval_s: Annotated[float, Field(
        gt=0, le=3600, description="one counting window is read and estimated this often")] = 1.0
    integration_time_s: Annotated[float, Field(
        ge=0.001, le=65.535, description="counting window (instrument time)")] = 1.0
    f_ec: Annotated[float, Field(ge=1, le=2, description="error-correction inefficiency")] = 1.16
    eps_sec: Annotated[float, Field(gt=0, lt=1)] = 1e-10
    eps_cor: Annotated[float, Field(gt=0, lt=1)] = 1e-15
    site: Annotated[Literal["both", "alice", "bob"], Field(
        description="the halves this daemon runs: both (the default), alice (patterns on the "
                    "AWGs, serving the sifting endpoint) or bob (counters and estimates, asking "
                    "Alice at the sifting endpoint)")] = "both"
    sifting: Annotated[str | None, Field(
        description="two sites: Alice's sifting endpoint (ZeroMQ REP), tcp://HOST:PORT; site "
                    "alice binds it, site bob connects to it")] = None
    channels: dict[Annotated[str, Field(pattern=r"^[0-9]{1,3}$")], QkdChannelConfig] = Field(
        default_factory=dict, description="by ITU channel number (100 GHz grid, C31 = 193.1 THz)")

    _check_sifting = field_validator("sifting")(_endpoint)


def _ordered_pair(pair: list[float]) -> list[float]:
    if len(pair) != 2:
        raise ValueError(f"expected [min, max], got {len(pair)} numbers")
    low, high = pair
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("limits must be finite numbers")
    if not low < high:
        raise ValueError(f"minimum {low} is not below maximum {high}")
    return pair


Limit = Annotated[list[float], AfterValidator(_ordered_pair)]


class InstrumentConfig(_Strict):
    """One ``[instruments.NAME]`` table."""

    role: Role
    model: str
    resource: str
    limits: dict[str, Limit] = Field(
        default_factory=dict, description="[min, max] per writable parameter, in its unit"
    )
    ramps: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="rate per second at which the daemon moves a parameter to a new value",
    )

    @field_validator("role", mode="before")
    @classmethod
    def _known_role(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in Role.__members__.values():
            raise ValueError(f"unknown role {value!r}; roles: {', '.join(Role)}")
        return Role(value) if isinstance(value, str) else value

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(f"unknown model {value!r}; models: {', '.join(MODELS)}")
        return value

    def socket_address(self) -> tuple[str, int] | None:
        """(host, port) if the resource is a TCP socket or ZeroMQ endpoint, else None."""
        match = _VISA_SOCKET.match(self.resource) or _ZMQ.match(self.resource)
        return (match["host"], int(match["port"])) if match else None


class StationConfig(_Strict):
    """The whole ``instruments.toml``."""

    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    simulation: SimulationConfig | None = None
    instruments: dict[str, InstrumentConfig]
    qkd: QkdConfig = Field(default_factory=QkdConfig)

    def by_role(self, role: Role) -> list[str]:
        """Names of the instruments that fill ``role``."""
        return [name for name, inst in self.instruments.items() if inst.role == role]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a station file, at a dotted key path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """A station file that cannot be used, with every problem found."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.source = source
        self.problems = problems


def load_config(path: str | Path) -> StationConfig:
    """Read and validate a station file; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [Problem("", f"cannot read {path}: {exc.strerror}")]) from exc
    return parse_config(text, source=str(path))


def parse_config(text: str, source: str = "<string>") -> StationConfig:
    """Validate the text of a station file; raise ConfigError listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [Problem("", f"{source}: TOML syntax: {exc}")]) from exc
    try:
        config = StationConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_problem(err) for err in exc.errors()]) from exc
    problems = _cross_checks(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def _problem(error: Any) -> Problem:
    path = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    elif not isinstance(error.get("input"), dict | list):
        message += f" (got {error['input']!r})"
    return Problem(path, message)


def _cross_checks(config: StationConfig) -> list[Problem]:
    problems: list[Problem] = []
    for name, inst in config.instruments.items():
        problems += _instrument_problems(f"instruments.{name}", name, inst, config)
    problems += _resource_clashes(config)
    problems += _qkd_problems(config)
    if config.simulation is not None:
        problems += _simulation_problems(config, config.simulation)
    for role in REQUIRED_ROLES:
        if not config.by_role(role):
            problems.append(Problem("instruments", f"no instrument has role {role}, required"))
    for role in SINGLE_ROLES:
        for extra in config.by_role(role)[1:]:
            problems.append(Problem(f"instruments.{extra}.role", f"a second {role}"))
    return problems


def _instrument_problems(
    path: str, name: str, inst: InstrumentConfig, config: StationConfig
) -> list[Problem]:
    problems: list[Problem] = []
    if not _NAME.match(name):
        problems.append(Problem(path, "instrument names are lower_case identifiers"))
    model = MODELS[inst.model]
    if inst.role not in model.roles:
        fits = ", ".join(sorted(model.roles))
        problems.append(Problem(f"{path}.model", f"{inst.model} cannot be a {inst.role} ({fits})"))
    resource_ok = (
        _ZMQ.match(inst.resource)
        if model.transport is Transport.ZMQ
        else _VISA_SOCKET.match(inst.resource) or _VISA_OTHER.match(inst.resource)
    )
    if not resource_ok:
        problems.append(Problem(f"{path}.resource", _resource_hint(inst.resource, model.transport)))
    elif config.simulation is not None:
        address = inst.socket_address()
        if address is None or not is_loopback(address[0]):
            problems.append(Problem(
                f"{path}.resource", "a simulated instrument listens on a loopback TCP socket"
            ))
    for table, keys in (("limits", inst.limits), ("ramps", inst.ramps)):
        for key in keys:
            spec = parameter(inst.role, key)
            if spec is None or not spec.limitable:
                problems.append(Problem(f"{path}.{table}.{key}",
                                        f"no settable number {key} on a {inst.role}"))
    return problems


def _simulation_problems(config: StationConfig, simulation: SimulationConfig) -> list[Problem]:
    problems = [Problem(f"simulation.faults.{name}", "no such instrument")
                for name in simulation.faults if name not in config.instruments]
    match = _ZMQ.match(simulation.control)
    assert match is not None  # checked by the field validator
    if not is_loopback(match["host"]):
        problems.append(Problem("simulation.control", "the control port listens on loopback"))
    ports = {int(m["port"]) for m in map(_ZMQ.match, (config.daemon.rpc, config.daemon.pub)) if m}
    ports |= {a[1] for a in (i.socket_address() for i in config.instruments.values()) if a}
    if int(match["port"]) in ports:
        problems.append(Problem("simulation.control", f"port {match['port']} is already in use "
                                "by the daemon or an instrument"))
    return problems


def _qkd_problems(config: StationConfig) -> list[Problem]:
    problems = []
    site = config.qkd.site
    if site != "both" and config.qkd.sifting is None:
        problems.append(Problem("qkd.sifting", f"site {site} needs Alice's sifting endpoint"))
    needed = {"awg": site != "bob", "counter": site != "alice"}
    used: dict[str, str] = {}
    for key, channel in config.qkd.channels.items():
        for field, role in (("awg", Role.AWG), ("counter", Role.SPD_COUNTER), ("bias", Role.BIAS)):
            name = getattr(channel, field)
            path = f"qkd.channels.{key}.{field}"
            if name is None:
                if needed.get(field):
                    problems.append(Problem(path, f"site {site} needs the {role} instrument"))
                continue
            inst = config.instruments.get(name)
            if inst is None or inst.role != role:
                problems.append(Problem(path, f"no instrument {name!r} with role {role}"))
            elif name in used:
                problems.append(Problem(path, f"{name} already serves {used[name]}"))
            used.setdefault(name, path)
    speed = config.simulation.speed if config.simulation is not None else 1.0
    if config.qkd.update_interval_s * speed < config.qkd.integration_time_s:
        problems.append(Problem("qkd.update_interval_s", (
            f"a counting window of {config.qkd.integration_time_s} s (instrument time) must end "
            f"within each update: at speed {speed} that takes "
            f"{config.qkd.integration_time_s / speed:g} s")))
    return problems


def _resource_hint(resource: str, transport: Transport) -> str:
    if transport is Transport.ZMQ:
        return f"{resource!r} is not a ZeroMQ endpoint tcp://HOST:PORT"
    return f"{resource!r} is not a VISA resource name (e.g. TCPIP::127.0.0.1::5000::SOCKET)"


def _resource_clashes(config: StationConfig) -> list[Problem]:
    seen: dict[Any, str] = {}
    problems = []
    for name, inst in config.instruments.items():
        address = inst.socket_address()
        key = (_canonical_host(address[0]), address[1]) if address else inst.resource.upper()
        if key in seen:
            problems.append(Problem(
                f"instruments.{name}.resource", f"same resource as instruments.{seen[key]}"
            ))
        seen.setdefault(key, name)
    return problems


def _canonical_host(host: str) -> str:
    return "127.0.0.1" if is_loopback(host) else host.lower()
