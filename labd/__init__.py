"""labd: control daemon of a Kerr-soliton-microcomb QKD testbed."""

__version__ = "0.1.0"
