"""Soliton switching: the state machine, measurements, lock, and the procedures that drive them."""
