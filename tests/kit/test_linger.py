"""`GroupLinger.pays`: a group waits for more only while the last arrivals came often enough
for another to be expected within the wait; before there is evidence, it waits."""

from __future__ import annotations

import pytest

from botplatform.kit import linger
from botplatform.kit.linger import EVIDENCE, Arrivals, GroupLinger


def _arrivals(monkeypatch: pytest.MonkeyPatch, gap: float, then: float) -> GroupLinger:
    """EVIDENCE arrivals `gap` seconds apart, asked `then` seconds after the last one."""
    clock = [0.0]
    monkeypatch.setattr(linger, "_now", lambda: clock[0])
    group = GroupLinger()
    for _ in range(EVIDENCE):
        group.arrived()
        clock[0] += gap
    clock[0] += then - gap
    return group


def test_without_evidence_a_wait_is_assumed_to_pay() -> None:
    group = GroupLinger()
    assert group.pays(0.05)
    group.arrived()
    assert group.pays(0.05)


@pytest.mark.parametrize(
    ("gap", "then", "pays"),
    [
        (0.010, 0.0, True),  # 100 a second: five expected in 50 ms
        (0.005, 0.0, True),
        (0.100, 0.0, False),  # 10 a second: half of one expected in 50 ms
        (0.010, 1.0, False),  # fast, then a pause: the rate counts up to now
    ],
    ids=["fast", "faster", "slow", "paused"],
)
def test_a_wait_pays_when_another_arrival_is_expected_within_it(
    monkeypatch: pytest.MonkeyPatch, gap: float, then: float, pays: bool
) -> None:
    assert _arrivals(monkeypatch, gap, then).pays(0.05) is pays


def test_the_mean_gap_needs_evidence_and_counts_up_to_now(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(linger, "_now", lambda: clock[0])
    arrivals = Arrivals()
    for _ in range(EVIDENCE - 1):
        arrivals.arrived()
        clock[0] += 0.25
    assert arrivals.mean_gap() is None  # one short of the evidence
    arrivals.arrived()
    clock[0] += 0.25
    assert arrivals.mean_gap() == pytest.approx(0.25)
    clock[0] += 2.0  # a pause lengthens it
    assert arrivals.mean_gap() == pytest.approx(0.5)
