"""Repeats at the broker (issue #15 item 5): which deliveries Service Bus drops as duplicates,
and that a real change never is one.

The message id is a hash of the event's verified MAC (the HMAC of the signed bytes) with the
cluster and environment, so Service Bus' duplicate detection drops exactly the deliveries of the
same event: a Flux retry after a lost answer, or the same event from a second Alert of the same
Provider (same secret). Periodic re-sends are new events (their
timestamp and message differ): they reach the queue function, whose steady state is one Table
read. A key coarser than the bytes (object, commit, phase) would drop a Succeeded → Failed →
Succeeded flap's second success within the window, leaving the object failed: never done.
"""

from __future__ import annotations

import pytest

from tests.world import REPO, kustomization

pytestmark = pytest.mark.azurite

C1 = "c8925188500a55dad9563388e537a03dcdded446"


def object_states(world) -> list[str]:
    context = "dev-1/Kustomization/flux-system/apps"
    return [
        s["state"] for s in world.azdo.commit_statuses(REPO, C1) if s["context"]["name"] == context
    ]


def test_the_same_event_twice_is_one_message(world):
    world.configure()
    event = kustomization(C1, time="2026-05-14T09:12:50Z")

    assert world.post(event) == 202
    assert world.post(event) == 202  # a Flux retry whose first answer was lost

    assert len(world.sender.messages) == 1
    assert world.sender.dropped_duplicates == 1


def test_a_flap_is_three_messages_and_every_change_is_posted(world):
    world.configure()
    world.azdo.add_commit(REPO, C1)
    flap = [
        kustomization(C1, time="2026-05-14T09:12:50Z"),
        kustomization(C1, "HealthCheckFailed", time="2026-05-14T09:14:00Z"),
        kustomization(C1, time="2026-05-14T09:15:10Z"),
    ]

    for event in flap:
        assert world.post(event) == 202
    assert world.sender.dropped_duplicates == 0
    assert world.deliver_queued() == 3

    assert object_states(world) == ["succeeded", "failed", "succeeded"]


def test_periodic_resends_reach_the_queue_and_cost_nothing_there(world):
    world.configure()
    world.azdo.add_commit(REPO, C1)
    world.send(kustomization(C1, time="2026-05-14T09:12:50Z"))
    calls = len(world.azdo.calls())

    for minute in ("22", "32", "42"):
        world.send(kustomization(C1, time=f"2026-05-14T09:{minute}:50Z"))

    assert world.sender.dropped_duplicates == 0
    assert len(world.azdo.calls()) == calls  # settled: no status, no look-up
    assert object_states(world) == ["succeeded"]
