"""``qkd.start`` / ``qkd.status`` / ``qkd.stop``: QKD on any set of the station's channels.

Per channel (``[qkd.channels.N]``), Alice's half draws a pattern from the OS CSPRNG, uploads its
four drives to the channel's AWG (DAC mode FOUR) and starts it, then announces the decoy
intensities and class shares (`labd.qkd.sifting`). Bob's half asks Alice for that announcement,
then counts: every update it resets the channel's time controller (a new window starts), waits
``update_interval_s`` (at least one window of ``integration_time_s`` ends meanwhile: the config
checks it), reads the 12 sifted-class combiners (`labd.qkd.receiver`), adds the window to the
run's tally, estimates from the whole tally (the run is the finite-key block:
`labd.qkd.estimation`) and publishes ``qkd.<channel>``. Everything goes through the instruments'
workers; nothing reads the simulated world.

``[qkd] site`` says which halves this daemon runs: ``both`` (the default; Bob reads Alice's
announcement in-process), ``alice`` (its ``qkd.start`` only sends; it answers Bob at the
``sifting`` endpoint; its ``qkd.status`` lists the channels sent, without estimates) or ``bob``
(its ``qkd.start`` only counts, asking Alice at ``sifting``: start Alice's channels first, and
Bob's again after Alice's restart, which draws new patterns).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import zmq.asyncio

from labd.config import QkdConfig
from labd.qkd import estimation
from labd.qkd.patterns import AWG_CHANNEL, TransmitterSettings, generate
from labd.qkd.receiver import Tally
from labd.qkd.sifting import AliceLink, AliceServer, Announcement, LocalAlice, RemoteAlice
from labd.qkd.transmitter import play, settings_for, upload_drive
from labd.rpc import ErrorCode, RpcError
from labd.station import InstrumentWorker, Station

log = logging.getLogger(__name__)
Publish = Callable[[str, dict[str, Any]], object]
#: IM2's bias lock: the MBX's AUTO_PEAK mode (IM2 sets the decoys down from its peak), and how
#: long its calibration sweep and lock may take.
BIAS_LOCK_MODE = 1
BIAS_LOCK_TIMEOUT_S = 30.0
_BIAS_POLL_S = 0.2
#: The channel entry of ``qkd.status`` before the first window is counted.
_NOT_YET = dict.fromkeys(("qber", "gain", "sifted_bps", "skr_bps", "skr_asymptotic_bps",
                          "y1_lower", "e1_upper", "classes"))


@dataclass
class ChannelRun:
    """Bob's side of one channel: what Alice announced, the protocol, the tally so far."""

    channel: int
    system: str
    announcement: Announcement
    protocol: estimation.Protocol
    window_s: float  # one counting window, instrument time
    tally: Tally = field(default_factory=Tally)
    error: str | None = None

    def add(self, counts: dict[str, int]) -> None:
        gates = self.window_s * self.announcement.clock_hz
        self.tally.add(counts, [gates * share for share in self.announcement.class_shares])

    def status(self) -> dict[str, Any]:
        """The ``qkd.status`` entry: the architecture's fields, then the block and any error."""
        block = self.tally.block(self.announcement.intensities)
        figures = (_NOT_YET if block is None
                   else dataclasses.asdict(estimation.estimate(block, self.protocol)))
        return {"channel": self.channel, **figures, "system": self.system,
                "block_s": self.tally.windows * self.window_s, "error": self.error}


@dataclass(frozen=True)
class ChannelRequest:
    """One channel to start: its ITU number and changes to its system's transmitter settings."""

    channel: int
    transmitter: dict[str, Any] = field(default_factory=dict)


class QkdService:
    """The QKD runs of the station, one per channel, started and stopped together."""

    def __init__(self, config: QkdConfig, station: Station, publish: Publish,
                 context: zmq.asyncio.Context | None = None) -> None:
        self.config = config
        self.station = station
        self.publish = publish
        self.sends, self.counts = config.site != "bob", config.site != "alice"
        self.announcements: dict[int, Announcement] = {}
        self.alice: AliceLink = LocalAlice(self.announcements)
        self.sifting: AliceServer | None = None
        if config.site != "both":
            assert config.sifting is not None  # the config's checks require it
            if config.site == "alice":
                self.sifting = AliceServer(self.alice, config.sifting, context)
            else:
                self.alice = RemoteAlice(config.sifting, context=context)
        self.runs: dict[int, ChannelRun] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}

    @property
    def running(self) -> bool:
        return bool(self._tasks or self.announcements)

    async def serve(self) -> None:
        """Answer Bob's sifting requests until cancelled (site alice; returns at once else)."""
        if self.sifting is not None:
            await self.sifting.serve()

    def close(self) -> None:
        """Close the sifting socket (daemon shutdown)."""
        if self.sifting is not None:
            self.sifting.close()
        if isinstance(self.alice, RemoteAlice):
            self.alice.close()

    def status(self) -> list[dict[str, Any]]:
        return [run.status() for run in self.runs.values()]

    async def start(self, requests: Sequence[ChannelRequest] | None) -> list[dict[str, Any]]:
        """Start QKD on ``requests`` (None: the seed's TR1 and TR2 on their channels)."""
        if self.running:
            raise RpcError(ErrorCode.BUSY, f"QKD runs on channels {sorted(self.runs)}: "
                           "qkd.stop first", {"owner": "qkd"})
        plan = self._plan(self._default() if requests is None else requests)
        self.runs.clear()
        try:
            for channel, settings in plan:  # one at a time: each AWG takes its pattern in turn
                await self._start(channel, settings)
        except BaseException:
            await self.stop()
            raise
        return self.status()

    async def stop(self) -> list[dict[str, Any]]:
        """Stop counting and the AWGs; the runs' last estimates stay in ``status``."""
        self.cancel()
        for channel in list(self.announcements):
            name = self.config.channels[str(channel)].awg
            assert name is not None  # Alice announces only channels she sends on
            try:
                await self.station.worker(name).run(lambda driver: driver.stop(), "stop")
            except RpcError as exc:
                log.warning("qkd.stop: channel %d: %s", channel, exc.message)
            del self.announcements[channel]
        return self.status()

    def cancel(self) -> None:
        """Stop counting at once (daemon shutdown: the safety abort stops the AWGs)."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    # --- internals ---------------------------------------------------------------------------

    def _default(self) -> list[ChannelRequest]:
        """The first channel set up for TR1 and the first for TR2."""
        firsts: dict[str, ChannelRequest] = {}
        for key, channel in self.config.channels.items():
            firsts.setdefault(channel.system, ChannelRequest(int(key)))
        return [firsts[s] for s in ("TR1", "TR2") if s in firsts]

    def _plan(self, requests: Sequence[ChannelRequest]) -> list[tuple[int, TransmitterSettings]]:
        """Each request checked against the config: an INVALID_PARAMS error names the first
        problem."""
        known = sorted(int(k) for k in self.config.channels)
        if not requests:
            raise _invalid(f"no QKD channels to start; the station has {known} ([qkd.channels])",
                           {"known": known})
        plan: list[tuple[int, TransmitterSettings]] = []
        for n, request in enumerate(requests):
            where = {"index": n, "channel": request.channel, "known": known}
            channel = self.config.channels.get(str(request.channel))
            if channel is None:
                raise _invalid(f"channels[{n}]: no QKD system on channel {request.channel}; "
                               f"the station has {known}", where)
            if request.channel in (c for c, _ in plan):
                raise _invalid(f"channels[{n}]: channel {request.channel} twice", where)
            if request.transmitter and not self.sends:
                raise _invalid(f"channels[{n}].transmitter: Alice's daemon draws the patterns; "
                               "give the settings to her qkd.start", where)
            try:
                settings = settings_for(channel.system, request.transmitter)
            except ValueError as exc:
                raise _invalid(f"channels[{n}].transmitter: {exc}", where) from exc
            plan.append((request.channel, settings))
        return plan

    async def _start(self, channel: int, settings: TransmitterSettings) -> None:
        """Alice's half sends (site alice or both), Bob's half counts (site bob or both)."""
        config = self.config.channels[str(channel)]
        if self.sends:
            await self._send(channel, settings)
        announcement = await self._announcement(channel)
        protocol = estimation.Protocol(
            clock_hz=announcement.clock_hz, p_x=announcement.p_x,
            probabilities=announcement.class_shares, f_ec=self.config.f_ec,
            eps_sec=self.config.eps_sec, eps_cor=self.config.eps_cor,
            efficiency=config.post_processing_efficiency)
        if not self.counts:  # Alice's entry: the channel and system, no estimates
            self.runs[channel] = ChannelRun(channel, config.system, announcement, protocol, 0.0)
            return
        assert config.counter is not None  # the config's checks require it on Bob's site
        counter = self.station.worker(config.counter)
        window_s = await counter.run(lambda driver: _set_window(driver,
                                                                self.config.integration_time_s),
                                     "integration time")
        run = ChannelRun(channel, config.system, announcement, protocol, window_s)
        self.runs[channel] = run
        self._tasks[channel] = asyncio.create_task(self._count(run, counter))

    async def _send(self, channel: int, settings: TransmitterSettings) -> None:
        """Alice: the pattern drawn, uploaded and playing, and its announcement kept for Bob."""
        config = self.config.channels[str(channel)]
        assert config.awg is not None  # the config's checks require it on Alice's site
        awg = self.station.worker(config.awg)
        if config.bias is not None:  # before the pattern: its sweep would mislead the attenuator
            await self._lock_bias(self.station.worker(config.bias))
        pattern = await asyncio.to_thread(generate, settings)
        for awg_channel in AWG_CHANNEL.values():
            await awg.run(functools.partial(upload_drive, pattern=pattern, channel=awg_channel),
                          f"upload channel {awg_channel}")
        await awg.run(play, "start")
        self.announcements[channel] = Announcement.of(channel, pattern)

    async def _announcement(self, channel: int) -> Announcement:
        """Alice's announcement for ``channel``; an INSTRUMENT_FAULT error naming her if she has
        none or does not answer."""
        try:
            return await self.alice.announcement(channel)
        except (LookupError, TimeoutError) as exc:
            raise RpcError(ErrorCode.INSTRUMENT_FAULT, f"channel {channel}: {exc}",
                           {"instrument": "alice", "command": "announcement",
                            "detail": str(exc)}) from exc

    async def _lock_bias(self, bias: InstrumentWorker) -> None:
        """Lock IM2's bias at its peak and wait for the lock."""
        await bias.run(lambda driver: setattr(driver, "lock_mode", BIAS_LOCK_MODE), "lock mode")
        deadline = asyncio.get_running_loop().time() + BIAS_LOCK_TIMEOUT_S
        while not await bias.run(lambda driver: driver.locked, "locked?"):
            if asyncio.get_running_loop().time() > deadline:
                raise RpcError(ErrorCode.INSTRUMENT_FAULT,
                               f"{bias.name} did not lock IM2 in {BIAS_LOCK_TIMEOUT_S} s",
                               {"instrument": bias.name, "command": "lock mode",
                                "detail": "not locked"})
            await asyncio.sleep(_BIAS_POLL_S)

    async def _count(self, run: ChannelRun, counter: InstrumentWorker) -> None:
        interval_s = self.config.update_interval_s
        while True:
            try:
                await counter.run(lambda driver: driver.reset_counts(), "reset counts")
                await asyncio.sleep(interval_s)
                run.add(await counter.run(lambda driver: driver.read_counts(), "read counts"))
                run.error = None
            except (RpcError, KeyError) as exc:
                run.error = exc.message if isinstance(exc, RpcError) else str(exc)
                log.warning("qkd channel %d: %s", run.channel, run.error)
                await asyncio.sleep(interval_s)
            self.publish(f"qkd.{run.channel}", run.status())


def _set_window(counter: Any, seconds: float) -> float:
    """Set the counting window; the window as the instrument has it."""
    counter.integration_time_s = seconds
    return float(counter.integration_time_s)


def _invalid(message: str, data: dict[str, Any]) -> RpcError:
    return RpcError(ErrorCode.INVALID_PARAMS, message, data)
