"""The simulated testbed's control port: break and mend instruments from outside the process.

A ZeroMQ REP socket taking JSON requests, for tests and for rehearsing failures on a running
daemon (`labd sim` prints where it listens). It reaches only the emulators' fault knobs and their
queued-error hooks: the daemon never uses it, so it cannot learn the world's insides through it.

    {"op": "faults", "instrument": "pump", "set": {"stall": true}}  -> {"ok": true, "faults": {..}}
    {"op": "clear", "instrument": "pump"}                            -> {"ok": true, ...}
    {"op": "error", "instrument": "pump", "code": -350, "message": "Queue overflow"}
    {"op": "interlock", "instrument": "edfa", "open": true}          -> opens the EDFA interlock
    {"op": "dropout", "instrument": "aux", "seconds": 0.2}           -> a laser goes dark briefly
    {"op": "drift", "instrument": "pump", "rate_pm_per_h": 1.0, "wander_pm_per_sqrt_h": 1.0,
     "seed": 3}                                                     -> its wavelength wanders
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import zmq
import zmq.asyncio

from sim_backends.faults import Faults
from sim_backends.scpi import ScpiError


class ControlError(Exception):
    """A control request that cannot be carried out."""


def apply(emulators: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Carry out one control request against the named emulator."""
    name = request.get("instrument")
    if name not in emulators:
        raise ControlError(f"no emulated instrument {name!r}; have {sorted(emulators)}")
    emulator = emulators[name]
    faults: Faults = emulator.faults
    op = request.get("op")
    if op == "faults":
        for key, value in dict(request.get("set", {})).items():
            if key not in {f.name for f in dataclasses.fields(Faults)}:
                raise ControlError(f"no fault knob {key!r}")
            setattr(faults, key, value)
    elif op == "clear":
        faults.clear()
    elif op == "dropout":
        knob = getattr(emulator, "drop_out", None)
        if knob is None:
            raise ControlError(f"{name} has no emission to drop")
        knob(float(request.get("seconds", 0.1)))
    elif op == "drift":
        knob = getattr(emulator, "set_drift", None)
        if knob is None:
            raise ControlError(f"{name} has no wavelength to drift")
        knob(float(request.get("rate_pm_per_h", 0.0)),
             float(request.get("wander_pm_per_sqrt_h", 0.0)), int(request.get("seed", 0)))
    elif op == "interlock":
        knob = getattr(emulator, "open_interlock", None)
        if knob is None:
            raise ControlError(f"{name} has no interlock")
        knob(bool(request.get("open", True)))
    elif op == "error":
        parser = getattr(emulator, "parser", None)
        if parser is None:
            raise ControlError(f"{name} has no error queue")
        parser.push(ScpiError(int(request["code"]), str(request["message"])))
    else:
        raise ControlError(f"unknown op {op!r}")
    return {"ok": True, "faults": dataclasses.asdict(faults)}


async def serve_control(endpoint: str, emulators: dict[str, Any]) -> None:
    """Answer control requests on ``endpoint`` until cancelled."""
    context = zmq.asyncio.Context.instance()
    socket: zmq.asyncio.Socket = context.socket(zmq.REP)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(endpoint)
    try:
        while True:
            raw = await socket.recv()
            try:
                reply = apply(emulators, json.loads(raw))
            except (ControlError, ValueError, KeyError, TypeError) as exc:
                reply = {"ok": False, "error": str(exc)}
            await socket.send(json.dumps(reply).encode())
    finally:
        socket.close()


def send_control(endpoint: str, request: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
    """One control request from a test or a shell, synchronously."""
    context: zmq.Context[Any] = zmq.Context.instance()
    with context.socket(zmq.REQ) as socket:
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(endpoint)
        socket.send(json.dumps(request).encode())
        if not socket.poll(int(timeout_s * 1000)):
            raise TimeoutError(f"simulation control {endpoint} did not answer")
        reply: dict[str, Any] = json.loads(socket.recv())
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "unknown failure"))
    return reply
