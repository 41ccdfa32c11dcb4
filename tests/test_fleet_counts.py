"""Table requests per queue message class, today (issue #15): counts, not times.

bench/fleet.py drives a small fleet (2 clusters x 2 objects, one re-send) through the real
functions on Azurite and counts every Table request at the SDK's transport. The figures below
are what the code costs now; the fast path and incremental roll-ups of #15 should lower them,
and whoever lands those tightens these numbers (the goals are in the issue).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from connector.app import bootstrap

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from fleet import (
    FIRST,
    GATE_CHECK,
    GATED,
    REDELIVERY,
    RESEND,
    STALE,
    Fleet,
    Report,
    counting_world,
)

pytestmark = pytest.mark.azurite


@pytest.fixture
def report(azurite_connection, azdo) -> Report:
    world, counter = counting_world(azurite_connection, azdo, clusters=2)
    try:
        return Fleet(world, counter).run(clusters=2, objects=2, resends=1)
    finally:
        bootstrap.override(None)


def test_requests_per_message_class_today(report: Report) -> None:
    counts = {cls: (min(report.requests(cls)), max(report.requests(cls))) for cls in report.samples}

    assert counts == {
        FIRST: (16, 26),  # the first message of a process also creates the tables
        REDELIVERY: (1, 1),  # goal ≤ 1
        RESEND: (12, 12),  # goal: ≤ 1 read, 0 writes
        STALE: (3, 3),  # goal ≤ 2
        GATED: (18, 28),  # goal ≤ 12 (the issue measured 26)
        GATE_CHECK: (12, 12),
    }


def test_every_message_was_counted(report: Report) -> None:
    # 4 baseline + 8 rollout + 4 re-sends + 2 stale events; the first object's rollout
    # messages of each cluster are delivered twice.
    sizes = {cls: len(samples) for cls, samples in report.samples.items()}
    assert sizes == {FIRST: 4, GATED: 8, REDELIVERY: 4, RESEND: 4, STALE: 2, GATE_CHECK: 1}
    assert report.events == 18
    assert all(s.azdo_calls == 0 for s in report.samples[RESEND])
