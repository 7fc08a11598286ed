"""The SCPI interpreter every emulator shares: header forms, compound messages, error queue."""

from __future__ import annotations

from sim_backends.scpi import Call, Command, ScpiParser, data_out_of_range


def parser(store: dict[str, str]) -> ScpiParser:
    def setter(key: str):  # type: ignore[no-untyped-def]
        def write(call: Call) -> None:
            if call.arg() == "bad":
                raise data_out_of_range()
            store[key] = call.arg()
        return write

    return ScpiParser([
        Command(":SOURce:TEMPerature:LCONstant:GAIN", lambda _: store["gain"], setter("gain")),
        Command(":SOURce:TEMPerature:LCONstant:INTegral", lambda _: store["int"], setter("int")),
        Command(":INPut#:COUNter", lambda call: f"{call.suffixes[0]}"),
    ])


def test_compound_units_continue_the_previous_header_path() -> None:
    store: dict[str, str] = {}
    p = parser(store)
    assert p.handle("SOUR:TEMP:LCON:GAIN 2; INT 0.2;*CLS;gain?;:SOURCE:TEMP:LCON:INTEGRAL?") == \
        "2;0.2"
    assert store == {"gain": "2", "int": "0.2"}


def test_numeric_suffix_defaults_to_one_and_errors_queue_in_order() -> None:
    p = parser({})
    assert p.handle("INP3:COUN?;:INP:COUN?") == "3;1"
    assert p.handle(":SOUR:TEMP:LCON:GAIN bad;:NOPE") is None
    assert p.handle("SYST:ERR?;:SYST:ERR?;:SYST:ERR?") == \
        '-222,"Data out of range";-113,"Undefined header";0,"No error"'
