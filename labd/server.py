"""The daemon: JSON-RPC on a ROUTER socket, telemetry on PUB, the station, and clean shutdown.

Each request runs as its own task, so a slow instrument delays only the requests that need it.
SIGINT and SIGTERM take every source to its safe state (EDFA first), close the sockets, and end
the simulated testbed if the daemon started one.
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

from labd.api import methods
from labd.config import StationConfig
from labd.rpc import Dispatcher, RpcError
from labd.simulation import SimulatedTestbed
from labd.station import InstrumentWorker, Station
from labd.telemetry import Telemetry

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 1 << 20  # larger requests are dropped by ZeroMQ before they reach memory


class Daemon:
    """One running labd: config in, sockets bound, instruments owned."""

    def __init__(self, config: StationConfig, config_path: Path) -> None:
        self.config = config
        self.config_path = config_path
        self.station = Station(config)
        self.dispatcher = Dispatcher(methods(self.station))
        self.stopping = asyncio.Event()
        self._context = zmq.asyncio.Context()
        self._requests: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Serve until SIGINT/SIGTERM, then shut down in order."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        testbed = None
        if self.config.simulation is not None:
            testbed = SimulatedTestbed(self.config_path, self.config.simulation.startup_timeout_s)
            for line in await testbed.start():
                log.info("sim: %s", line)
        try:
            await self.station.connect()
            await self._serve()
        finally:
            await self.station.safe_state()
            self.station.close()
            if testbed is not None:
                await testbed.stop()
            self._context.term()
            log.info("labd stopped")

    async def _serve(self) -> None:
        router = self._socket(zmq.ROUTER, self.config.daemon.rpc)
        pub = self._socket(zmq.PUB, self.config.daemon.pub)
        telemetry = Telemetry(pub)
        log.info("labd serving JSON-RPC on %s, telemetry on %s",
                 self.config.daemon.rpc, self.config.daemon.pub)
        tasks = [asyncio.create_task(self._receive(router)),
                 asyncio.create_task(self._poll(telemetry))]
        try:
            await self.stopping.wait()
        finally:
            for task in (*tasks, *self._requests):
                task.cancel()
            await asyncio.gather(*tasks, *self._requests, return_exceptions=True)
            router.close(linger=0)
            pub.close(linger=0)

    def _socket(self, kind: int, endpoint: str) -> zmq.asyncio.Socket:
        socket = self._context.socket(kind)
        socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        socket.bind(endpoint)
        return socket

    async def _receive(self, router: zmq.asyncio.Socket) -> None:
        while True:
            frames = await router.recv_multipart()
            task = asyncio.create_task(self._answer(router, frames))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)

    async def _answer(self, router: zmq.asyncio.Socket, frames: list[bytes]) -> None:
        """Reply on the same envelope: identity, any delimiter frames, then the reply."""
        *envelope, payload = frames
        reply = await self.dispatcher.handle(payload)
        await router.send_multipart([*envelope, reply])

    async def _poll(self, telemetry: Telemetry) -> None:
        """Publish every connected instrument's readings each poll interval."""
        while True:
            for worker in self.station.workers.values():
                if worker.connected and worker.parameters:
                    telemetry.publish(f"instrument.{worker.name}", await _reading(worker))
            await asyncio.sleep(self.config.daemon.poll_interval_s)


async def _reading(worker: InstrumentWorker) -> dict[str, Any]:
    try:
        return await worker.read_all()
    except RpcError as exc:
        return {"error": exc.message}


def serve(config: StationConfig, config_path: Path) -> None:
    """Run a daemon in this process until it is signalled to stop."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(Daemon(config, config_path).run())
