"""The simulated physical world behind the emulated instruments."""
