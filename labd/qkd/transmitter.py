"""Alice's half: a channel's transmitter settings, and its pattern onto the AWG.

A channel's hardware is set up for one of the seed's transmitters (``[qkd.channels.N] system``):
its attenuator gives that system's mu, its RF drivers its modulators' gains. ``qkd.start`` may
change the protocol choices (decoy levels nu1 and nu2, sending ratio, p_X, global phases, pattern
length, seed) but not those hardware calibrations: a pattern computed for another mu or other
gains would send other intensities than Alice records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from drivers.roles import Awg
from labd.qkd.patterns import AWG_CHANNEL, AWG_DAC_MODE, TR1, TR2, Pattern, TransmitterSettings

#: The seed's transmitters (seed Sec. IV), by the name a channel's ``system`` gives.
SYSTEMS: Mapping[str, TransmitterSettings] = {"TR1": TR1, "TR2": TR2}
#: Settings that are calibrations of the channel's hardware, not choices.
HARDWARE = ("im1", "pm_random", "pm_encode", "im2", "clock_hz", "sample_rate_hz",
            "decoy_extinction_db")


def settings_for(system: str, changes: Mapping[str, Any]) -> TransmitterSettings:
    """The system's settings with ``changes``; ValueError naming what is wrong."""
    preset = SYSTEMS[system]
    try:
        settings = preset.replace(**changes)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'transmitter'}: {e['msg']}"
                             for e in exc.errors())
        raise ValueError(problems) from exc
    fixed = [name for name in HARDWARE if getattr(settings, name) != getattr(preset, name)]
    if settings.intensities[0] != preset.intensities[0]:
        fixed.insert(0, "intensities[0] (mu)")
    if fixed:
        raise ValueError(f"{', '.join(fixed)}: calibrated in the {system} hardware "
                         f"(mu {preset.intensities[0]}), not a setting")
    return settings


def upload_drive(awg: Awg, pattern: Pattern, channel: int) -> None:
    """Stop the AWG and load one drive's samples on ``channel`` (on the AWG's worker thread)."""
    drive = next(d for d, c in AWG_CHANNEL.items() if c == channel)
    awg.stop()
    awg.dac_mode = AWG_DAC_MODE
    awg.upload_pattern(channel, pattern.samples(drive))


def play(awg: Awg) -> None:
    """Outputs on and start: the transmitter sends the uploaded pattern, looped."""
    awg.output_enabled = True
    awg.start()
