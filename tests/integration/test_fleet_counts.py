"""Table requests per queue message class, today (issue #15): counts, not times.

bench/fleet.py drives a small fleet (2 clusters x 2 objects, one re-send) through the real
functions on Azurite and counts every Table request at the SDK's transport. The figures below
are what the code costs now (docs/scale.md explains each); a change that raises one is a cost
regression to justify.
"""

from __future__ import annotations

import pytest

from bench.fleet import (
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
from connector.app.root import bootstrap

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
        # State read and write, pointer read and write, object status (claim created without a
        # read, confirm), the cluster's two queries, the environment tally, environment status,
        # gates query, settle; the first message of a process also creates the tables. A
        # message that moves its cluster also writes the on-call board (one write on the version
        # this process wrote last; the first also creates its table and reads the row).
        FIRST: (11, 23),
        REDELIVERY: (1, 1),  # the state row says it is settled
        # Re-sends and stale events of a settled state never reach the queue (the door).
        # Without a cluster moving, the gate is not judged again; with one, by the tally (its
        # progress only) until it may complete; the first for a commit also learns its facts.
        # Gate writes use the version the gates query read (no second read); the message that
        # completes the gate writes its row three times (claim, count of the POST, result).
        GATED: (10, 22),  # + the board write of a message that moves its cluster
        GATE_CHECK: (7, 7),
    }


def test_every_message_was_counted(report: Report) -> None:
    # 4 baseline + 8 rollout + 4 re-sends + 2 stale events; the first object's rollout
    # messages of each cluster are delivered twice.
    sizes = {cls: len(samples) for cls, samples in report.samples.items()}
    assert sizes == {FIRST: 4, GATED: 8, REDELIVERY: 4, GATE_CHECK: 1}
    assert report.events == 18
    posted = {cls: len(p) for cls, p in report.posted.items()}
    assert posted == {FIRST: 4, GATED: 8, RESEND: 4, STALE: 2}


def test_the_steady_state_is_answered_at_the_door(report: Report) -> None:
    """Per event: Service Bus sends, queue executions, the door's Table requests. A re-send or
    a stale event of a settled state: one point read at the door, nothing queued. A change: the
    read and the write-ahead mark (the first also creates the table in a fresh process), one
    send, one execution (two for a redelivered one)."""
    per_event = {cls: report.per_post(cls) for cls in report.posted}
    assert per_event[RESEND] == (0, 0, 1)
    assert per_event[STALE] == (0, 0, 1)
    assert per_event[FIRST] == (1, 1, 2.25)  # one of them also creates the table
    assert per_event[GATED] == (1, 1.5, 2)  # 4 of 8 redelivered
    door = {cls: {p.requests for p in posts} for cls, posts in report.posted.items()}
    assert door == {FIRST: {2, 3}, GATED: {2}, RESEND: {1}, STALE: {1}}


def test_a_gated_transition_costs_the_same_in_a_larger_environment(
    azurite_connection, azdo
) -> None:
    """Four times the clusters: the same Table requests per gated transition, and bytes that grow
    only with the environment tally's and the on-call board's entries (each 0.1 to 0.4 KB per
    cluster, read and written by a cluster that moves), not with the environment's objects. The
    last transition, which completes the gate, is confirmed by the full roll-up: once per gate,
    it reads the environment."""
    reports = {}
    for clusters in (2, 8):
        world, counter = counting_world(azurite_connection, azdo, clusters=clusters)
        try:
            reports[clusters] = Fleet(world, counter).run(clusters=clusters, objects=2, resends=0)
        finally:
            bootstrap.override(None)
    small, large = (reports[n].samples[GATED][:-1] for n in (2, 8))

    assert {s.requests for s in large} == {s.requests for s in small}
    growth = max(s.bytes for s in large) - max(s.bytes for s in small)
    # The tally's and the on-call board's entries of the added clusters (each under 0.4 KB).
    assert 0 < growth <= (8 - 2) * 2 * 400
