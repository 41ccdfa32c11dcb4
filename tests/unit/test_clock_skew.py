"""Event times are bounded by the receive time (`connector.core.tracking.bounded_by_receipt`):
a cluster whose clock runs ahead can neither freeze an object (later real events dropped as
stale) nor move a pointer, and with it the sibling cut-off, into the future. Property tests with
skewed clocks, on the memory twin of the state tables, through `Processor.process`."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.app.root.registry import read
from connector.core.processing import Processor
from connector.core.rollup import INVENTORY_TTL, Rollup
from connector.core.tracking import (
    CLOCK_SKEW_TOLERANCE,
    ObjectRef,
    Observation,
    Phase,
    Verdict,
    believable,
    bounded_by_receipt,
)
from connector.queue import envelope
from connector.storage.rows import key
from connector.storage.tables import TableStore
from tests.fakes.memory_tables import MemoryTableService

T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
ENV = "prod"
A, B = "a" * 40, "b" * 40
APPS = ObjectRef("Kustomization", "flux-system", "apps")
INFRA = ObjectRef("Kustomization", "flux-system", "infra")
STEP = timedelta(minutes=10)  # events of one object, received this far apart (> tolerance)


def obs(
    received: datetime, skew: timedelta, phase: Phase, *, commit: str = A, obj: ObjectRef = APPS
) -> Observation:
    reasons = {Phase.SUCCEEDED: "ReconciliationSucceeded", Phase.FAILED: "HealthCheckFailed"}
    return Observation(
        cluster="c1",
        env=ENV,
        obj=obj,
        commit=commit,
        phase=phase,
        reason=reasons.get(phase, "Progressing"),
        summary="",
        time=received + skew,
        message_id=f"{obj.name}-{received.isoformat()}-{phase}",
        is_source=False,
        received_at=received,
    )


class Clock:
    """The processor's clock: a little after each receive time (processing follows receipt)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now + timedelta(seconds=1)


@dataclass
class World:
    store: TableStore
    processor: Processor
    clock: Clock

    def process(self, observation: Observation) -> Verdict:
        assert observation.received_at is not None
        self.clock.now = observation.received_at
        return self.processor.process(observation)

    def state_rows(self) -> list[dict[str, object]]:
        table = self.store.table("deployments")
        return [dict(e) for e in table.list_entities() if str(e["RowKey"]).startswith("obj|")]

    def pointer_rows(self) -> list[dict[str, object]]:
        found = self.store.table("objects").query_entities(
            "PartitionKey eq @pk", parameters={"pk": key(ENV, "c1")}
        )
        return [dict(e) for e in found]


def world() -> World:
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    clock = Clock()
    return World(store, Processor({}, store, (), clock=clock), clock)


# Skews a real fleet shows: NTP jitter, minutes behind, a day or a year ahead (a clock jump).
SKEWS = st.one_of(
    st.just(timedelta(0)),
    st.timedeltas(min_value=timedelta(seconds=-30), max_value=timedelta(seconds=30)),
    st.timedeltas(min_value=-timedelta(days=2), max_value=timedelta(0)),
    st.timedeltas(min_value=CLOCK_SKEW_TOLERANCE, max_value=timedelta(days=400)),
)
PHASES = st.sampled_from([Phase.PROGRESSING, Phase.SUCCEEDED, Phase.FAILED])
EVENTS = st.lists(st.tuples(SKEWS, PHASES, st.sampled_from([APPS, INFRA])), max_size=12)


@settings(max_examples=60, deadline=None)
@given(EVENTS)
def test_no_recorded_time_lies_beyond_the_latest_receipt(
    events: list[tuple[timedelta, Phase, ObjectRef]],
) -> None:
    w = world()
    received = T0
    for index, (skew, phase, obj) in enumerate(events):
        received = T0 + STEP * index
        w.process(obs(received, skew, phase, obj=obj))

    limit = received + CLOCK_SKEW_TOLERANCE
    for row in w.state_rows():
        assert datetime.fromisoformat(str(row["time"])) <= limit
        assert datetime.fromisoformat(str(row["first_seen"])) <= limit
        if row["failed_since"]:
            assert datetime.fromisoformat(str(row["failed_since"])) <= limit
    for row in w.pointer_rows():
        assert datetime.fromisoformat(str(row["time"])) <= limit


@settings(max_examples=60, deadline=None)
@given(EVENTS, PHASES)
def test_an_event_from_a_right_clock_after_skewed_ones_is_never_stale(
    events: list[tuple[timedelta, Phase, ObjectRef]], last: Phase
) -> None:
    w = world()
    for index, (skew, phase, _) in enumerate(events):
        w.process(obs(T0 + STEP * index, skew, phase))

    final = obs(T0 + STEP * len(events), timedelta(0), last)
    assert w.process(final) != Verdict.STALE
    state = w.store.cluster_view(A, ENV, "c1").states[APPS]
    # Progressing never overrides a terminal phase of the same commit; otherwise the last word.
    terminal_before = any(p != Phase.PROGRESSING for _, p, _ in events)
    if last != Phase.PROGRESSING or not terminal_before:
        assert state.phase == last


@settings(max_examples=40, deadline=None)
@given(st.timedeltas(min_value=CLOCK_SKEW_TOLERANCE, max_value=timedelta(days=400)))
def test_one_object_dated_ahead_does_not_move_the_sibling_cut_off(ahead: timedelta) -> None:
    """infra and apps were both on B; infra reports A with a clock far ahead. Were its time
    believed, the 24-hour cut-off would move past apps' last report and apps (still on B, not
    moved yet) would drop out of what the cluster expects: the environment would pass on A."""
    w = world()
    w.process(obs(T0, timedelta(0), Phase.SUCCEEDED, commit=B, obj=APPS))
    w.process(obs(T0, timedelta(0), Phase.SUCCEEDED, commit=B, obj=INFRA))
    w.process(obs(T0 + timedelta(hours=1), timedelta(0), Phase.SUCCEEDED, commit=A, obj=INFRA))
    w.process(obs(T0 + timedelta(hours=2), ahead, Phase.SUCCEEDED, commit=A, obj=INFRA))

    result = Rollup({}, w.store).environment(A, ENV)
    assert result.phase == Phase.PROGRESSING
    assert result.clusters[0].pending == (APPS,)
    assert timedelta(hours=2) < INVENTORY_TTL  # apps is a sibling only within the cut-off


def test_a_failure_dated_a_day_ahead_does_not_freeze_the_object() -> None:
    """The issue's case: one failure a day ahead, then real healthy events."""
    w = world()
    w.process(obs(T0, timedelta(0), Phase.PROGRESSING))
    w.process(obs(T0 + STEP, timedelta(days=1), Phase.FAILED))
    verdict = w.process(obs(T0 + STEP * 2, timedelta(0), Phase.SUCCEEDED))

    assert verdict == Verdict.CHANGED
    assert w.store.cluster_view(A, ENV, "c1").states[APPS].phase == Phase.SUCCEEDED


def test_a_skewed_event_is_recorded_as_skewed_and_the_next_change_clears_it() -> None:
    w = world()
    w.process(obs(T0, timedelta(days=1), Phase.FAILED))
    (row,) = w.state_rows()
    assert row["time"] == T0.isoformat()
    assert row["claimed_time"] == (T0 + timedelta(days=1)).isoformat()

    w.process(obs(T0 + STEP, timedelta(0), Phase.SUCCEEDED))
    (row,) = w.state_rows()
    assert row["claimed_time"] == ""


def test_a_time_recorded_ahead_before_times_were_bounded_orders_nothing() -> None:
    """Rows written by an earlier version may hold a time a year ahead: not believed."""
    w = world()
    legacy = replace(obs(T0, timedelta(days=365), Phase.FAILED), received_at=None)
    w.store.record(legacy)  # recorded as it came, as before bounding

    assert w.process(obs(T0 + STEP, timedelta(0), Phase.SUCCEEDED)) == Verdict.CHANGED


def test_bounded_by_receipt() -> None:
    received = T0
    within = obs(received, CLOCK_SKEW_TOLERANCE, Phase.SUCCEEDED)
    beyond = obs(received, CLOCK_SKEW_TOLERANCE + timedelta(microseconds=1), Phase.SUCCEEDED)
    behind = obs(received, -timedelta(days=3), Phase.SUCCEEDED)

    assert bounded_by_receipt(within) == within
    assert bounded_by_receipt(within).claimed_time is None
    assert bounded_by_receipt(behind).time == received - timedelta(days=3)  # delays stay
    moved = bounded_by_receipt(beyond)
    assert (moved.time, moved.claimed_time) == (received, beyond.time)
    # Without a receive time the processing time bounds it.
    unreceived = replace(beyond, received_at=None, noticed_at=T0 - timedelta(seconds=2))
    assert bounded_by_receipt(unreceived).time == T0 - timedelta(seconds=2)
    assert bounded_by_receipt(replace(beyond, received_at=None)) == replace(
        beyond, received_at=None
    )


def test_a_queued_message_carries_its_receive_time() -> None:
    event = {
        "involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "apps"},
        "severity": "info",
        "timestamp": (T0 + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "message": "Reconciliation finished",
        "reason": "ReconciliationSucceeded",
        "metadata": {"revision": f"main@sha1:{A}"},
        "reportingController": "kustomize-controller",
    }
    body = envelope.encode("c1", ENV, T0, json.dumps(event).encode())

    found = read(body, "m1")
    assert isinstance(found, Observation)
    assert found.received_at == T0
    assert bounded_by_receipt(found).time == T0


def test_a_recorded_time_is_believed_up_to_the_tolerance_past_the_receipt() -> None:
    received = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
    seen = obs(received, timedelta(0), Phase.SUCCEEDED)
    edge = received + CLOCK_SKEW_TOLERANCE
    assert believable(edge, seen)
    assert believable(received, seen)
    assert not believable(edge + timedelta(seconds=1), seen)
    # Without `received_at` (messages queued before it), the processing time bounds it.
    noticed = replace(seen, received_at=None, noticed_at=received)
    assert believable(edge, noticed)
    assert not believable(edge + timedelta(seconds=1), noticed)
    assert believable(received + timedelta(days=365), replace(seen, received_at=None))
