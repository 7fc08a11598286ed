"""Soliton bring-up over a population of simulated chips (issue 6: >= 95 % of >= 50 chips)."""

from __future__ import annotations

import pytest

from labd.population import run_population, summary

CHIPS = 50
AT_ONCE = 3


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_shipped_bring_up_locks_one_soliton_on_95_percent_of_chips() -> None:
    """Every chip its own daemon and world, the shipped sequences unchanged; a chip that neither
    locks nor faults within the run's timeout is a hang, and fails the test on its own."""
    outcomes = run_population(range(CHIPS), AT_ONCE)
    print(summary(outcomes))
    assert not [o for o in outcomes if o.state == "timeout"], summary(outcomes)
    assert sum(o.ok for o in outcomes) >= 0.95 * CHIPS, summary(outcomes)
    assert all(o.reason for o in outcomes if o.state == "fault")  # a fault says why
