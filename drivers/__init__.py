"""Instrument drivers: one module per instrument model, plus the role interfaces the daemon uses.

The daemon imports nothing model-specific: it looks a model up in `drivers.registry` and talks to
the object it gets through the interface of its role (`drivers.roles`).
"""
