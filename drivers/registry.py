"""Which instrument models exist, which roles they can fill, how they are reached, and their driver.

A model whose driver is not written yet is listed with ``driver=None``: the config accepts it and
the daemon reports it as not implemented, rather than faking it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from enum import StrEnum

from drivers.roles import Instrument, Role


class Transport(StrEnum):
    """How a model's resource string is spelled."""

    VISA = "visa"  # a VISA resource name: TCPIP socket, USB, GPIB or serial
    ZMQ = "zmq"  # a ZeroMQ endpoint, tcp://host:port


@dataclass(frozen=True)
class Model:
    """One instrument model: the roles it can fill, its transport, its driver class if written."""

    roles: frozenset[Role]
    transport: Transport
    driver: str | None  # "module:Class", built as Class(resource, name=..., timeout_s=...)


def _model(roles: set[Role], transport: Transport, driver: str | None = None) -> Model:
    return Model(frozenset(roles), transport, driver)


_LASERS = {Role.PUMP_LASER, Role.AUX_LASER}

MODELS: dict[str, Model] = {
    "santec.TSL570": _model(_LASERS, Transport.VISA, "drivers.santec_tsl570:TSL570Laser"),
    "amonics.AEDFA": _model({Role.EDFA}, Transport.VISA, "drivers.amonics_aedfa:AmonicsEdfa"),
    "thorlabs.TED4015": _model({Role.TEC}, Transport.VISA, "drivers.thorlabs_ted4015:TED4015Tec"),
    "yokogawa.AQ6370D": _model({Role.OSA}, Transport.VISA, "drivers.yokogawa_aq6370:AQ6370Osa"),
    "thorlabs.PM100USB": _model({Role.POWER_METER}, Transport.VISA,
                                "drivers.thorlabs_pm100usb:PM100Meter"),
    "keysight.M8195A": _model({Role.AWG}, Transport.VISA, "drivers.keysight_m8195a:M8195AAwg"),
    "thorlabs.MBX": _model({Role.BIAS}, Transport.VISA, "drivers.thorlabs_mbx:MBXBias"),
    "idquantique.ID1000": _model({Role.SPD_COUNTER}, Transport.ZMQ,
                                 "drivers.idquantique_id1000:ID1000Counter"),
    # Alternatives named in the design notes, known to the config but without a driver yet:
    "keysight.N7776C": _model(_LASERS, Transport.VISA),
    "toptica.DLCpro": _model(_LASERS, Transport.VISA),
    "keopsys.CEFA": _model({Role.EDFA}, Transport.VISA),
    "arroyo.5300": _model({Role.TEC}, Transport.VISA),
}


class NotImplementedModel(Exception):
    """The model is known but its driver has not been written."""


def open_driver(model: str, resource: str, name: str, timeout_s: float) -> Instrument:
    """Connect to an instrument through its model's driver."""
    driver = MODELS[model].driver
    if driver is None:
        raise NotImplementedModel(f"no driver for model {model} yet")
    module_name, class_name = driver.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    instrument: Instrument = cls(resource, name=name, timeout_s=timeout_s)
    return instrument
