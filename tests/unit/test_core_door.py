"""The ingest door's rule (`connector.core.door`), case by case and without storage: which
re-sends it answers itself, how marks live, collapse and expire, and what it does when the row
keeps changing or cannot be read. tests/integration/test_door.py runs it on Azurite."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from connector.core.door import (
    EVERYTHING,
    MARK_LIFETIME,
    MAX_ATTEMPTS,
    MAX_MARKS,
    Arrival,
    Door,
    DoorUnavailableError,
    StateRow,
    answered,
    live_marks,
    with_mark,
)
from connector.core.tracking import ObjectRef, Observation, Phase

T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)
EARLIER = T0 - timedelta(minutes=5)
S, F, P = Phase.SUCCEEDED, Phase.FAILED, Phase.PROGRESSING


def arrival(phase: Phase | None = S, time: datetime = LATER) -> Arrival:
    return Arrival("dev", "dev-1", "Kustomization", "flux-system", "apps", "c" * 40, phase, time)


def row(
    phase: Phase | None = S,
    time: datetime | None = T0,
    settled: bool = True,
    marks: Mapping[str, datetime] | None = None,
    version: str | None = "v1",
) -> StateRow:
    return StateRow(phase, time, settled, dict(marks or {}), version)


# --- answered: the processor's UNCHANGED and STALE verdicts on a settled row --------------------


@pytest.mark.parametrize(
    ("stored", "arriving", "when", "expected"),
    [
        (S, S, LATER, True),  # the same phase again
        (F, F, LATER, True),
        (P, P, LATER, True),
        (S, P, LATER, True),  # progress over a finished result
        (F, P, LATER, True),
        (S, F, LATER, False),  # a change
        (F, S, LATER, False),  # a recovery
        (P, S, LATER, False),
        (P, F, LATER, False),
        (S, F, EARLIER, True),  # older than what is recorded: stale, whatever it says
        (F, S, EARLIER, True),
        (S, S, T0, True),  # the same time is not older, the same phase is unchanged
        (S, F, T0, False),  # the same time is not older: a change
    ],
)
def test_a_settled_row_answers_what_would_change_nothing(
    stored: Phase, arriving: Phase, when: datetime, expected: bool
) -> None:
    assert answered(row(stored), arrival(arriving, when)) is expected


@pytest.mark.parametrize(
    "stored",
    [
        row(settled=False),  # the processor has not settled it: something is in flight
        row(phase=None),  # no state recorded yet
        row(time=None),
    ],
)
def test_an_unsettled_or_empty_row_answers_nothing(stored: StateRow) -> None:
    assert answered(stored, arrival(S)) is False
    assert answered(stored, arrival(S, EARLIER)) is False


def test_an_informational_event_is_left_to_the_processor() -> None:
    assert answered(row(S), arrival(None)) is False
    assert answered(row(S), arrival(None, EARLIER)) is False


# --- marks: live for the queue's message lifetime, collapsed past MAX_MARKS ---------------------


def test_a_mark_lives_until_the_message_lifetime_has_passed() -> None:
    marks = {"young": T0, "edge": T0 - MARK_LIFETIME + timedelta(seconds=1)}
    marks["old"] = T0 - MARK_LIFETIME
    assert live_marks(marks, T0) == {"young": T0, "edge": marks["edge"]}
    assert timedelta(days=1) == MARK_LIFETIME  # the queue's message time-to-live (P1D)


def test_a_new_mark_joins_the_live_ones() -> None:
    assert with_mark({"a": T0}, "b", LATER) == {"a": T0, "b": LATER}
    assert with_mark({}, "b", LATER) == {"b": LATER}


def test_marks_collapse_into_one_blanket_mark_at_the_limit() -> None:
    full = {f"m{i}": T0 for i in range(MAX_MARKS)}
    assert with_mark(full, "next", LATER) == {EVERYTHING: LATER}
    below = {f"m{i}": T0 for i in range(MAX_MARKS - 1)}
    assert with_mark(below, "next", LATER) == {**below, "next": LATER}
    assert with_mark({EVERYTHING: T0}, "next", LATER) == {EVERYTHING: LATER}
    assert MAX_MARKS == 100


# --- Door.admit on rows with real semantics: a mark is written only on the version read ---------


class Rows:
    """One state row; `mark` succeeds only when the row is still the version read (If-Match)."""

    def __init__(self, stored: StateRow, changes: int = 0, fail: Exception | None = None) -> None:
        self.stored = stored
        self.changes = changes  # how many marks lose a race before one wins
        self.fail = fail
        self.looks = 0
        self.marked: list[dict[str, datetime]] = []

    def look(self, arrival: Arrival) -> StateRow:
        assert identity(arrival) == identity(ARRIVING), "the row of another object"
        self.looks += 1
        if self.fail is not None:
            raise self.fail
        return self.stored

    def mark(self, arrival: Arrival, read: StateRow, marks: Mapping[str, datetime]) -> bool:
        assert identity(arrival) == identity(ARRIVING), "the row of another object"
        if self.changes:
            self.changes -= 1
            self.stored = replace(self.stored, version=f"{self.stored.version}+")
            return False
        if read.version != self.stored.version:
            return False
        self.marked.append(dict(marks))
        self.stored = replace(self.stored, marks=dict(marks), version=f"{read.version}'")
        return True


ARRIVING = arrival(F)


def identity(a: Arrival) -> tuple[str, ...]:
    return (a.env, a.cluster, a.kind, a.namespace, a.name)


def door(rows: Rows, now: datetime = LATER) -> Door:
    return Door(rows, clock=lambda: now)


def test_an_unchanged_resend_of_a_settled_state_is_answered_without_a_write() -> None:
    rows = Rows(row(S))
    assert door(rows).admit(arrival(S), "m1") is False
    assert (rows.looks, rows.marked) == (1, [])


def test_a_change_is_marked_then_sent() -> None:
    rows = Rows(row(S))
    assert door(rows).admit(arrival(F), "m1") is True
    assert rows.marked == [{"m1": LATER}]


def test_a_live_mark_keeps_the_door_open_for_an_unchanged_resend() -> None:
    rows = Rows(row(S, marks={"m0": T0}))
    assert door(rows).admit(arrival(S), "m1") is True
    assert rows.marked == [{"m0": T0, "m1": LATER}]


def test_an_expired_mark_no_longer_keeps_the_door_open() -> None:
    rows = Rows(row(S, marks={"m0": LATER - MARK_LIFETIME}))
    assert door(rows).admit(arrival(S), "m1") is False
    assert rows.marked == []


def test_a_retried_delivery_already_marked_is_sent_without_marking_again() -> None:
    rows = Rows(row(S, settled=False, marks={"m1": T0}))
    assert door(rows).admit(arrival(F), "m1") is True
    assert rows.marked == []


def test_a_mark_that_loses_a_race_is_tried_again_on_a_fresh_read() -> None:
    rows = Rows(row(S), changes=2)
    assert door(rows).admit(arrival(F), "m1") is True
    assert rows.looks == 3
    assert rows.marked == [{"m1": LATER}]


def test_a_row_that_keeps_changing_makes_the_door_unavailable() -> None:
    rows = Rows(row(S), changes=MAX_ATTEMPTS)
    with pytest.raises(DoorUnavailableError) as caught:
        door(rows).admit(ARRIVING, "m1")
    assert str(caught.value) == "the state row kept changing"
    assert rows.looks == MAX_ATTEMPTS
    assert MAX_ATTEMPTS == 20


def test_the_last_attempt_still_counts() -> None:
    rows = Rows(row(S), changes=MAX_ATTEMPTS - 1)
    assert door(rows).admit(arrival(F), "m1") is True


def test_a_storage_error_is_reported_by_its_type_only() -> None:
    rows = Rows(row(S), fail=ConnectionError("secret-host:10002 refused"))
    with pytest.raises(DoorUnavailableError) as caught:
        door(rows).admit(arrival(S), "m1")
    assert str(caught.value) == "ConnectionError"
    assert isinstance(caught.value.__cause__, ConnectionError)


def test_the_door_reads_the_clock_on_every_attempt() -> None:
    times = iter([T0, LATER])
    rows = Rows(row(S), changes=1)
    Door(rows, clock=lambda: next(times)).admit(arrival(F), "m1")
    assert rows.marked == [{"m1": LATER}]


def test_an_arrival_is_read_from_an_observation() -> None:
    obs = Observation(
        env="dev",
        cluster="dev-1",
        obj=ObjectRef("Kustomization", "flux-system", "apps"),
        commit="c" * 40,
        phase=S,
        reason="ReconciliationSucceeded",
        summary="",
        time=LATER,
        message_id="m1",
        is_source=False,
    )
    assert Arrival.of(obs) == arrival(S, LATER)
