"""The daemon: JSON-RPC on a ROUTER socket, telemetry on PUB, the station, safety, the record.

Each request runs as its own task, so a slow instrument delays only the requests that need it.
SIGINT and SIGTERM take every source to its safe state (EDFA first), close the sockets, end the
simulated testbed if the daemon started one, and close the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from labd.api import Services, methods
from labd.config import StationConfig
from labd.leases import LeaseTable
from labd.qkd.service import QkdService
from labd.rpc import CallRecord, Dispatcher, ErrorCode, RpcError
from labd.safety import Safety, Watchdog
from labd.simulation import SimulatedTestbed
from labd.soliton.controller import SolitonController
from labd.soliton.machine import SolitonMachine
from labd.station import InstrumentWorker, Station
from labd.store import Recorder
from labd.telemetry import Telemetry

log = logging.getLogger(__name__)
HARD_LIMIT_FACTOR = 16  # ZeroMQ drops (without reading) messages this many times the limit


class Daemon:
    """One running labd: config in, sockets bound, instruments owned, everything recorded."""

    def __init__(self, config: StationConfig, config_path: Path) -> None:
        self.config = config
        self.config_path = config_path
        self.stopping = asyncio.Event()
        self._context = zmq.asyncio.Context()
        self._background: set[asyncio.Task[Any]] = set()
        self.router = self._socket(zmq.ROUTER, config.daemon.rpc)
        pub = self._socket(zmq.PUB, config.daemon.pub)
        self.recorder = Recorder(config.daemon.database, config_path.read_text())
        self.telemetry = Telemetry(pub, self.recorder.telemetry)
        self.station = Station(config, self._instrument_event)
        self.safety = Safety(self.station, self.telemetry.publish)
        self.leases = LeaseTable()
        self.soliton = SolitonController(
            self.station, self.safety,
            SolitonMachine(self.telemetry.publish, self.recorder.transition),
            self.telemetry.publish, config_path.parent / config.daemon.sequences)
        self.safety.listeners.append(self.soliton.on_safety_abort)
        self.qkd = QkdService(config.qkd, self.station, self.telemetry.publish, self._context)
        self.dispatcher = Dispatcher(
            methods(Services(config, self.station, self.leases, self.safety, self.soliton,
                             self.qkd)),
            lease_check=lambda token: self.leases.check(token).holder,
            audit=self._audit,
            on_internal_error=lambda exc: self._spawn(self.safety.abort(f"unhandled error: {exc}")),
        )
        self.watchdog = Watchdog(self.station, config.daemon.watchdog_s, self._watchdog_tripped)

    async def run(self) -> None:
        """Serve until SIGINT/SIGTERM, then shut down in order."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.set_exception_handler(self._unhandled)
        testbed = None
        heartbeat = asyncio.create_task(self.watchdog.heartbeat())
        try:
            if self.config.simulation is not None:
                testbed = SimulatedTestbed(self.config_path,
                                           self.config.simulation.startup_timeout_s)
                for line in await testbed.start():
                    log.info("sim: %s", line)
            await self.station.connect()
            await self._serve()
        finally:
            self.qkd.cancel()
            # The loop keeps beating through the shutdown abort: a slow instrument is not a stall.
            await self.safety.abort("daemon shutdown", logging.INFO)
            heartbeat.cancel()
            await asyncio.to_thread(self.watchdog.stop)
            await asyncio.to_thread(self.station.close)
            self.router.close(linger=0)
            self.telemetry.socket.close(linger=0)
            self.qkd.close()
            if testbed is not None:
                await testbed.stop()
            self.recorder.close()
            self._context.term()
            log.info("labd stopped")

    async def _serve(self) -> None:
        log.info("labd serving JSON-RPC on %s, telemetry on %s",
                 self.config.daemon.rpc, self.config.daemon.pub)
        self.watchdog.start()
        jobs = [self._receive(), self._watch_safety(), self.station.supervise(), self.qkd.serve(),
                *map(self._poll, self.station.workers.values())]
        tasks = [asyncio.create_task(job) for job in jobs]
        try:
            await self.stopping.wait()
        finally:
            for task in (*tasks, *self._background):
                task.cancel()
            await asyncio.gather(*tasks, *self._background, return_exceptions=True)

    def _socket(self, kind: int, endpoint: str) -> zmq.asyncio.Socket:
        socket = self._context.socket(kind)
        socket.setsockopt(zmq.MAXMSGSIZE, self.config.daemon.max_request_bytes * HARD_LIMIT_FACTOR)
        socket.setsockopt(zmq.LINGER, 0)
        socket.bind(endpoint)
        return socket

    def _spawn(self, job: Any) -> None:
        task = asyncio.ensure_future(job)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _receive(self) -> None:
        while True:
            self._spawn(self._answer(await self.router.recv_multipart()))

    async def _answer(self, frames: list[bytes]) -> None:
        """Reply on the same envelope: identity, any delimiter frames, then the reply."""
        *envelope, payload = frames
        limit = self.config.daemon.max_request_bytes
        if len(payload) > limit:
            error = RpcError(ErrorCode.REQUEST_TOO_LARGE,
                             f"request of {len(payload)} bytes exceeds the limit of {limit}",
                             {"size": len(payload), "limit": limit})
            reply = Dispatcher.error_reply(None, error)
        else:
            reply = await self.dispatcher.handle(payload)
        await self.router.send_multipart([*envelope, reply])

    async def _poll(self, worker: InstrumentWorker) -> None:
        """Publish one instrument's readings each interval (each at its own pace)."""
        while True:
            if worker.connected and worker.parameters:
                try:
                    reading = await worker.read_all()
                except RpcError as exc:
                    reading = {"error": exc.message}
                self.telemetry.publish(f"instrument.{worker.name}", reading)
            await asyncio.sleep(self.config.daemon.poll_interval_s)

    async def _watch_safety(self) -> None:
        while True:
            await self.safety.watch()
            await asyncio.sleep(self.config.daemon.poll_interval_s)

    def _instrument_event(self, name: str, event: dict[str, Any]) -> None:
        self.telemetry.publish(f"instrument.{name}", event)

    def _audit(self, record: CallRecord) -> None:
        self.recorder.command(record.t, record.caller, record.method, record.params, record.error)

    def _watchdog_tripped(self, reason: str) -> None:
        """Called from the watchdog thread after it took the sources to safe state."""
        self.recorder.telemetry("safety", {"t": 0.0, "seq": -1, "event": "watchdog",
                                           "reason": reason})

    def _unhandled(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        loop.default_exception_handler(context)
        if not self.stopping.is_set():
            self._spawn(self.safety.abort(f"unhandled error: {context.get('message')}"))


def serve(config: StationConfig, config_path: Path) -> None:
    """Run a daemon in this process until it is signalled to stop."""

    async def main() -> None:
        await Daemon(config, config_path).run()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
