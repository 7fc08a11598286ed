"""Telemetry on the PUB socket: two frames, topic then JSON with ``t`` and a per-topic ``seq``."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import zmq


class Telemetry:
    """Publishes readings, events and estimates; a subscriber sees a gap as a jump in ``seq``."""

    def __init__(self, socket: zmq.Socket[Any],
                 record: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.socket = socket
        self.record = record
        self._seq: defaultdict[str, int] = defaultdict(int)

    def publish(self, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send ``payload`` on ``topic`` and record it (never blocks: PUB drops for slow
        subscribers, the record never does)."""
        message = {"t": time.time(), "seq": self._seq[topic], **payload}
        self._seq[topic] += 1
        frames = [topic.encode(), json.dumps(message, allow_nan=False).encode()]
        self.socket.send_multipart(frames, flags=zmq.NOBLOCK)
        if self.record is not None:
            self.record(topic, message)
        return message
