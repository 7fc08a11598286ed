"""ID Quantique ID1000 Time Controller (SPD counter role): SCPI-like text over ZeroMQ REQ/REP.

pymeasure has no driver for it. The controller answers every message: setters with
``Value set to ...`` (read and checked here, so a rejected setting raises), queries with the
value, and any error with the name of its SCPI parser's error (``SCPI_ERR_INVALID_CMD``, ...)
in place of the reply: there is no error queue. Counters report the count of their last
completed window (CYCLE mode); integration times are whole milliseconds, 1 to 65535.

The role's counters are the enabled inputs (``input1``..``input4``, every click) and the
combiners whose window is enabled (``tsco<k>``, the clicks of a detector inside one marker
class's gates; which class each one gates on is the lab's wiring, not the controller's state).
They are found once, at connection.
"""

from __future__ import annotations

from typing import Any

from pymeasure.adapters import Adapter
from pymeasure.instruments import Channel, Instrument
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from drivers.errors import InstrumentReportedError, talking
from drivers.zmq_adapter import ZmqAdapter

ERROR_MARK = "SCPI_ERR_"
INTEGRATION_RANGE_MS = (1, 65535)
_ON_OFF = {True: "ON", False: "OFF"}


class CounterBlock(Channel):
    """A block with a counter (an input ``INPU#`` or a combiner ``TSCO#``)."""

    block = ""

    @property
    def header(self) -> str:
        """The block's name in commands, e.g. ``INPU1``."""
        return f"{self.block}{self.id}"

    def insert_id(self, command: str) -> str:
        return command.format_map({self.placeholder: self.header})

    counts = Channel.measurement(
        "{ch}:COUN?", """Get the count of the last completed window (int).""", cast=int)

    integration_ms = Channel.control(
        "{ch}:COUN:INTE?", "{ch}:COUN:INTE %d",
        """Control the counting window in ms (int, 1 to 65535); a new window starts.""",
        validator=strict_range, values=INTEGRATION_RANGE_MS, cast=int, check_set_errors=True)

    mode = Channel.control(
        "{ch}:COUN:MODE?", "{ch}:COUN:MODE %s",
        """Control the counter mode: 'cycle' (count of the last window) or 'accumulate'.""",
        validator=strict_discrete_set, values={"cycle": "CYCLE", "accumulate": "ACCUM"},
        map_values=True, check_set_errors=True)

    def reset_counter(self) -> None:
        """Clear the count and start a new window."""
        self.write("{ch}:COUN:RESE")
        self.check_set_errors()


class InputBlock(CounterBlock):
    """An input: discriminator, delay and the counter of every click."""

    block = "INPU"

    enabled = Channel.control(
        "{ch}:ENAB?", "{ch}:ENAB %s", """Control whether the input detects pulses (bool).""",
        validator=strict_discrete_set, values=_ON_OFF, map_values=True, check_set_errors=True)

    threshold_v = Channel.control(
        "{ch}:THRE?", "{ch}:THRE %gV",
        """Control the discriminator threshold in V (float, -2 to 3; 1.024 mV steps).""",
        validator=strict_range, values=(-2.0, 3.0), preprocess_reply=lambda r: r.rstrip("V"),
        check_set_errors=True)

    delay_ps = Channel.control(
        "{ch}:DELAY?", "{ch}:DELAY %d", """Control the input delay in ps (int).""",
        validator=strict_range, values=(0, 10**12), preprocess_reply=lambda r: r.rstrip("TB"),
        cast=int, check_set_errors=True)


class CombinerBlock(CounterBlock):
    """A combiner: the counter of what passes its logic (here, clicks inside marker windows)."""

    block = "TSCO"

    window_enabled = Channel.measurement(
        "{ch}:WIND:ENAB?", """Get whether a window gates the combiner (bool).""",
        values=_ON_OFF, map_values=True)


class ID1000(Instrument):
    """ID Quantique ID1000 Time Controller (the counting blocks)."""

    inputs = Instrument.MultiChannelCreator(InputBlock, (1, 2, 3, 4), prefix="input_")
    combiners = Instrument.MultiChannelCreator(
        CombinerBlock, tuple(range(1, 13)), prefix="tsco_")

    def __init__(self, adapter: Adapter | str, name: str = "ID1000", **kwargs: Any) -> None:
        if isinstance(adapter, str):
            adapter = ZmqAdapter(adapter, name=name, **kwargs)
        super().__init__(adapter, name, includeSCPI=False)

    def identity(self) -> str:
        """The ``*IDN?`` reply."""
        return str(self.ask("*IDN?")).strip()

    def read(self, **kwargs: Any) -> str:
        """The reply to the last message; an error reply raises ``InstrumentReportedError``."""
        reply = str(super().read(**kwargs))
        if ERROR_MARK in reply:
            raise InstrumentReportedError(self.name, reply.strip())
        return reply

    def check_set_errors(self) -> list[Any]:
        """Read a setter's acknowledgement: an error reply raises (see ``read``)."""
        self.read()
        return []


class ID1000Counter:
    """The ``SpdCounter`` role on an ID1000: integration time in s, counts by counter name."""

    def __init__(self, resource: str | Adapter, name: str, timeout_s: float = 2.0) -> None:
        self.name = name
        with talking(name, "connect"):
            self.device = ID1000(
                ZmqAdapter(resource, name=name, timeout_s=timeout_s)
                if isinstance(resource, str) else resource, name=name)
        self.counters = self._discover()
        for block in self.counters.values():
            with talking(name, f"{block.header}:COUN:MODE"):
                block.mode = "cycle"

    def _discover(self) -> dict[str, CounterBlock]:
        counters: dict[str, CounterBlock] = {}
        for n, block in self.device.inputs.items():
            with talking(self.name, f"{block.header}:ENAB?"):
                if block.enabled:
                    counters[f"input{n}"] = block
        for k, combiner in self.device.combiners.items():
            with talking(self.name, f"{combiner.header}:WIND:ENAB?"):
                if combiner.window_enabled:
                    counters[f"tsco{k}"] = combiner
        return counters

    @property
    def integration_time_s(self) -> float:
        """The counting window (of the first counter: they are all set together)."""
        block = next(iter(self.counters.values()), self.device.input_1)
        with talking(self.name, f"{block.header}:COUN:INTE?"):
            return int(block.integration_ms) / 1000

    @integration_time_s.setter
    def integration_time_s(self, value: float) -> None:
        milliseconds = round(value * 1000)
        low, high = INTEGRATION_RANGE_MS
        if not low <= milliseconds <= high:
            raise ValueError(f"{self.name}: integration time {value} s is outside "
                             f"{low / 1000}..{high / 1000} s")
        for block in self.counters.values():
            with talking(self.name, f"{block.header}:COUN:INTE"):
                block.integration_ms = milliseconds

    def read_counts(self) -> dict[str, int]:
        """Counts of every counter over its last completed window, by counter name."""
        counts = {}
        for counter_name, block in self.counters.items():
            with talking(self.name, f"{block.header}:COUN?"):
                counts[counter_name] = int(block.counts)
        return counts

    def reset_counts(self) -> None:
        """Clear every counter and start a new window now (a read then waits out one window)."""
        for block in self.counters.values():
            with talking(self.name, f"{block.header}:COUN:RESE"):
                block.reset_counter()

    def safe_state(self) -> None:
        """Nothing to do: a time controller emits no light and drives nothing."""

    def close(self) -> None:
        self.device.adapter.close()
