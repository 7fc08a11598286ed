"""Simulated testbed: the physical world and the emulated instruments that drive it."""
