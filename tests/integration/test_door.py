"""The ingest door (connector/core/door.py): a settled state re-sent is answered at ingest from
one point read; a change still in flight is never shadowed (the write-ahead mark), in every
interleaving the issue names: a Failed still queued when the recovery arrives, redelivery, two
door instances racing, trial mode, a failing processor, a Service Bus outage, a Table outage.

Real parts: the registered functions, Azurite, the fake Azure DevOps; Service Bus is the
recording sender, whose queue the tests hand to the queue function in order (one session per
object, as Service Bus delivers it).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.app.root.registry import observation_keys as registered_keys
from connector.core.door import (
    EVERYTHING,
    MARK_LIFETIME,
    MAX_MARKS,
    Arrival,
    Door,
    StateRow,
    answered,
    with_mark,
)
from connector.core.tracking import ObjectRef, ObjectState, Observation, Phase, Verdict, transition
from connector.storage.door_rows import TableStateRows
from connector.storage.marks import MARKS, marks_of
from tests.world import REPO, World, kustomization

pytestmark = pytest.mark.azurite

COMMIT = "c" * 40
ENV, CLUSTER, NAME = "dev", "dev-1", "apps"
OBJ = ObjectRef("Kustomization", "flux-system", NAME)
T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def succeeded(minutes: int) -> dict[str, Any]:
    return kustomization(COMMIT, "ReconciliationSucceeded", time=at(minutes))


def failed(minutes: int) -> dict[str, Any]:
    return kustomization(COMMIT, "HealthCheckFailed", time=at(minutes))


@pytest.fixture(autouse=True)
def _commit(azdo: Any, world: World, azurite_connection: str) -> None:
    azdo.add_commit(REPO, COMMIT, "Merged PR 7: apps")
    # The state store's account as a setting: the door reads with its own point read.
    world.configure(STATE_STORAGE=azurite_connection)


def test_the_door_reads_with_its_point_read(world: World) -> None:
    from connector.storage.point_read import PointReader

    settle_first(world)
    assert post(world, succeeded(10)) == 202
    assert world.container is not None
    assert isinstance(world.container.__dict__["door"]._rows._reader, PointReader)


def row(world: World) -> dict[str, Any]:
    key = registered_keys()(ENV, CLUSTER, OBJ)["object row"]
    return dict(world.store.table("deployments").get_entity(COMMIT, key))


def state(world: World) -> ObjectState:
    return world.store.commit_states(COMMIT)[ENV, CLUSTER][OBJ]


def post(world: World, event: dict[str, Any]) -> int:
    return world.post(event, cluster=CLUSTER, env=ENV)


def settle_first(world: World) -> None:
    assert post(world, succeeded(0)) == 202
    assert world.deliver_queued() == 1
    assert row(world)["settled"] is True


# --- the rule, held together with the processor's ---

PHASES = (None, Phase.PROGRESSING, Phase.SUCCEEDED, Phase.FAILED)


@pytest.mark.parametrize(("recorded", "arriving"), list(itertools.product(PHASES[1:], PHASES)))
@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_the_door_answers_exactly_what_the_processor_would_leave_alone(
    recorded: Phase, arriving: Phase | None, offset: int
) -> None:
    current = ObjectState(recorded, "r", "s", T0, T0)
    obs = Observation(
        CLUSTER, ENV, OBJ, COMMIT, arriving, "r", "s", T0 + timedelta(seconds=offset), "m", False
    )
    verdict, _ = transition(current, obs)
    settled = StateRow(recorded, T0, True, {}, "etag")
    arrival = Arrival.of(obs)

    leaves_alone = verdict in (Verdict.UNCHANGED, Verdict.STALE)
    assert answered(settled, arrival) is (leaves_alone and arriving is not None)
    # Never without a settled state: an unsettled row still has outputs to run.
    assert answered(StateRow(recorded, T0, False, {}, "etag"), arrival) is False
    assert answered(StateRow(None, None, True, {}, "etag"), arrival) is False


def test_marks_collapse_into_one_blanket_mark_past_the_limit() -> None:
    marks = {f"m{i}": T0 for i in range(MAX_MARKS - 1)}
    assert len(with_mark(marks, "last", T0)) == MAX_MARKS
    full = with_mark(with_mark(marks, "last", T0), "one more", T0)
    assert full == {EVERYTHING: T0}
    assert with_mark(full, "again", T0 + timedelta(1)) == {EVERYTHING: T0 + timedelta(1)}


def test_the_door_rows_use_the_state_stores_own_key(world: World) -> None:
    settle_first(world)
    rows = TableStateRows(lambda: world.store.table("deployments"))
    arrival = Arrival(ENV, CLUSTER, OBJ.kind, OBJ.namespace, OBJ.name, COMMIT, None, T0)
    seen = rows.look(arrival)
    assert (seen.phase, seen.time, seen.settled) == (Phase.SUCCEEDED, T0, True)


# --- the steady state ---


def test_a_settled_state_re_sent_is_answered_at_the_door(world: World) -> None:
    settle_first(world)
    for minutes in (10, 20, 30):
        assert post(world, succeeded(minutes)) == 202
    assert world.sender.drain() == []
    assert state(world).phase == Phase.SUCCEEDED
    assert MARKS not in row(world) or marks_of(row(world)) == {}


def test_progress_over_a_finished_result_and_older_events_are_answered_too(world: World) -> None:
    settle_first(world)
    assert post(world, kustomization(COMMIT, "Progressing", time=at(5))) == 202
    assert post(world, failed(-5)) == 202  # older than the recorded success: stale
    assert world.sender.drain() == []


def test_the_door_answer_says_settled(world: World) -> None:
    import function_app
    from tests.conftest import flux_request
    from tests.flux_encoding import go_json

    settle_first(world)
    reply = function_app.flux(
        flux_request(go_json(succeeded(10)), params={"cluster": CLUSTER, "env": ENV})
    )
    assert reply.status_code == 202
    assert b'"settled":true' in reply.get_body()


# --- the interleaving of the issue ---


def test_a_recovery_behind_a_queued_failure_is_not_shadowed(world: World) -> None:
    """Settled Succeeded; a Failed is queued, not processed yet; the recovery Succeeded arrives
    at the door and looks like the settled state. It must be queued."""
    settle_first(world)
    assert post(world, failed(5)) == 202
    assert post(world, succeeded(6)) == 202  # the recovery
    queued = world.sender.drain()
    assert len(queued) == 2
    for message in queued:  # in order, as one session delivers them
        world.process(message)
    assert state(world).phase == Phase.SUCCEEDED
    assert row(world)["settled"] is True
    assert marks_of(row(world)) == {}
    assert post(world, succeeded(16)) == 202  # and the steady state is free again
    assert world.sender.drain() == []


def test_while_a_failure_is_queued_every_re_send_is_queued(world: World) -> None:
    settle_first(world)
    assert post(world, failed(5)) == 202
    assert post(world, failed(6)) == 202  # a re-send of the failure, same phase as queued
    assert len(world.sender.messages) == 2
    world.deliver_queued()
    assert state(world).phase == Phase.FAILED
    assert post(world, failed(16)) == 202
    assert world.sender.drain() == []


def test_a_first_event_is_marked_on_a_row_of_marks_only(world: World) -> None:
    assert post(world, succeeded(0)) == 202
    marked = row(world)
    assert "phase" not in marked
    assert len(marks_of(marked)) == 1
    assert world.store.commit_states(COMMIT) == {}  # marks alone are no state
    assert post(world, succeeded(1)) == 202  # not settled yet: queued too
    assert world.deliver_queued() == 2
    assert state(world).phase == Phase.SUCCEEDED
    assert marks_of(row(world)) == {}
    assert row(world)["settled"] is True


# --- redelivery ---


def test_a_redelivered_change_is_processed_once_and_releases_its_mark(world: World) -> None:
    settle_first(world)
    assert post(world, failed(5)) == 202
    statuses_before = len(world.azdo.calls("POST", "/statuses"))
    assert world.deliver_queued(redeliver=True) == 1
    assert len(world.azdo.calls("POST", "/statuses")) == statuses_before + 2  # object + env
    assert marks_of(row(world)) == {}
    assert post(world, failed(15)) == 202
    assert world.sender.drain() == []


def test_a_sender_retry_of_a_marked_message_is_not_marked_twice(world: World) -> None:
    settle_first(world)
    event = failed(5)
    assert post(world, event) == 202
    assert post(world, event) == 202  # Flux retried: same bytes, same id
    assert len(marks_of(row(world))) == 1
    assert world.sender.dropped_duplicates == 1
    world.deliver_queued()
    assert marks_of(row(world)) == {}


# --- two door instances racing ---


class Interleaved:
    """State rows whose first `mark` lets another door in first (between its look and its mark)."""

    def __init__(self, rows: TableStateRows, between: Any) -> None:
        self._rows = rows
        self._between = between
        self.looks = 0

    def look(self, arrival: Arrival) -> StateRow:
        self.looks += 1
        return self._rows.look(arrival)

    def mark(self, arrival: Arrival, row: StateRow, marks: Mapping[str, datetime]) -> bool:
        if self._between is not None:
            between, self._between = self._between, None
            between()
        return self._rows.mark(arrival, row, marks)


def test_two_doors_marking_one_row_both_keep_their_marks(world: World) -> None:
    settle_first(world)
    rows = TableStateRows(lambda: world.store.table("deployments"))
    other = Door(rows)
    fail = Arrival(ENV, CLUSTER, OBJ.kind, OBJ.namespace, OBJ.name, COMMIT, Phase.FAILED, T0)
    later = Arrival(
        ENV, CLUSTER, OBJ.kind, OBJ.namespace, OBJ.name, COMMIT, Phase.FAILED, T0 + timedelta(1)
    )
    racing = Interleaved(rows, lambda: other.admit(fail, "from-b"))
    assert Door(racing).admit(later, "from-a") is True
    assert racing.looks == 2  # its first mark lost to the other door's: read again
    assert set(marks_of(row(world))) == {"from-a", "from-b"}


def test_a_door_that_reads_after_another_marked_does_not_answer(world: World) -> None:
    settle_first(world)
    rows = TableStateRows(lambda: world.store.table("deployments"))
    fail = Arrival(ENV, CLUSTER, OBJ.kind, OBJ.namespace, OBJ.name, COMMIT, Phase.FAILED, T0)
    resend = Arrival(ENV, CLUSTER, OBJ.kind, OBJ.namespace, OBJ.name, COMMIT, Phase.SUCCEEDED, T0)
    assert Door(rows).admit(fail, "b") is True
    assert Door(rows).admit(resend, "a") is True  # marked too: the failure is in flight
    assert set(marks_of(row(world))) == {"a", "b"}


def test_marks_expire_with_the_queues_message_time_to_live(world: World) -> None:
    settle_first(world)
    rows = TableStateRows(lambda: world.store.table("deployments"))
    lost = Arrival(ENV, CLUSTER, OBJ.kind, OBJ.namespace, OBJ.name, COMMIT, Phase.FAILED, T0)
    resend = Arrival(ENV, CLUSTER, OBJ.kind, OBJ.namespace, OBJ.name, COMMIT, Phase.SUCCEEDED, T0)
    now = datetime.now(UTC)
    assert Door(rows, clock=lambda: now).admit(lost, "never-delivered") is True
    assert Door(rows, clock=lambda: now + timedelta(hours=1)).admit(resend, "r1") is True
    expired = now + MARK_LIFETIME + timedelta(seconds=1)
    assert Door(rows, clock=lambda: expired).admit(resend, "r2") is True  # r1 still live
    much_later = expired + MARK_LIFETIME
    assert Door(rows, clock=lambda: much_later).admit(resend, "r3") is False


# --- trial mode, a failing processor, outages ---


def test_trial_mode_never_answers_at_the_door(world: World) -> None:
    from connector.app.root import bootstrap
    from connector.app.root.bootstrap import Container

    base = world.configure(AZDO_DRY_RUN="true")  # no client override: the trial client
    trial = Container(base.settings, sender=world.sender, store=world.store)
    bootstrap.override(trial)
    world.container = trial
    assert post(world, succeeded(0)) == 202
    world.deliver_queued()
    assert row(world)["settled"] is False  # trial mode leaves rows unsettled
    assert post(world, succeeded(10)) == 202
    assert world.deliver_queued() == 1  # so that real mode posts everything later


def test_a_failing_processor_keeps_the_door_open(world: World) -> None:
    settle_first(world)
    assert post(world, failed(5)) == 202
    (message,) = world.sender.drain()
    world.azdo.inject("/statuses", 503, count=100, method="POST")
    with pytest.raises(Exception):  # noqa: B017, PT011 - Service Bus redelivers on any error
        world.process(message)
    assert post(world, failed(6)) == 202  # the failure is not settled: queued
    assert post(world, succeeded(7)) == 202
    assert len(world.sender.messages) == 2
    world.azdo.clear_faults()
    world.process(message, delivery_count=2)  # the redelivery, then the two queued
    world.deliver_queued()
    assert state(world).phase == Phase.SUCCEEDED
    assert row(world)["settled"] is True
    assert marks_of(row(world)) == {}


def test_a_service_bus_outage_leaves_the_mark_and_the_retry_is_queued(world: World) -> None:
    settle_first(world)
    world.sender.fail_next = 1
    event = failed(5)
    assert post(world, event) == 503  # maybe queued, maybe not: the mark stays
    assert post(world, succeeded(6)) == 202  # so a re-send behind it is not answered
    assert post(world, event) == 202  # Flux retries the failure
    queued = world.sender.drain()
    assert len(queued) == 2
    for message in queued:
        world.process(message)
    assert marks_of(row(world)) == {}
    assert state(world).phase == Phase.FAILED  # the failure was newer than the re-send


def test_a_table_outage_at_the_door_is_a_503(world: World) -> None:
    from azure.core.exceptions import ServiceRequestError

    settle_first(world)

    class Down:
        def read(self, *args: Any) -> Any:
            raise ServiceRequestError("connection refused")

    assert world.container is not None
    world.container.__dict__["door"]._rows._reader = Down()
    assert post(world, succeeded(10)) == 503
    assert world.sender.drain() == []


# --- what the door reads of an event is what the processor will ---


class Recording:
    """State rows with nothing recorded: every event is marked and sent; arrivals kept."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []

    def look(self, arrival: Arrival) -> StateRow:
        self.arrivals.append(arrival)
        return StateRow(None, None, False, {}, None)

    def mark(self, arrival: Arrival, row: StateRow, marks: Mapping[str, datetime]) -> bool:
        return True


def _flux_events() -> list[str]:
    from pathlib import Path

    return sorted(p.name for p in (Path(__file__).parents[1] / "events").glob("*.json"))


@pytest.mark.parametrize("name", _flux_events())
def test_the_door_reads_a_flux_event_as_the_processor_does(install: Any, sender: Any, name: str):
    from pathlib import Path

    import function_app
    from connector.app.root import registry
    from tests.conftest import flux_request

    rows = Recording()
    install(door=Door(rows))
    body = (Path(__file__).parents[1] / "events" / name).read_bytes()
    # An event that names its own cluster and environment is sent as that cluster (with the
    # shared key a query naming another one is refused: per-cluster identity).
    named = json.loads(body).get("metadata") or {}
    params = {"cluster": named.get("cluster", CLUSTER), "env": named.get("env", ENV)}
    reply = function_app.flux(flux_request(body, params=params))
    assert reply.status_code == 202, reply.get_body()
    (message,) = sender.drain()
    observation = registry.read(message.body, message.message_id)
    assert isinstance(observation, Observation)
    assert rows.arrivals == [Arrival.of(observation)]


@pytest.mark.parametrize("name", __import__("tests.argocd").argocd.fixture_names())
def test_the_door_reads_an_argocd_event_as_the_processor_does(
    install: Any, sender: Any, name: str
) -> None:
    import function_app
    from connector.app.root import registry
    from tests.argocd import SECRET, application, argocd_request
    from tests.conftest import BASE_SETTINGS

    rows = Recording()
    install({**BASE_SETTINGS, "ARGOCD_WEBHOOK_SECRET": SECRET}, door=Door(rows))
    reply = function_app.argocd(argocd_request(application(name), params={"cluster": CLUSTER}))
    assert reply.status_code == 202
    (message,) = sender.drain()
    observation = registry.read(message.body, message.message_id)
    assert isinstance(observation, Observation)
    assert rows.arrivals == [Arrival.of(observation)]


def test_a_mark_landing_between_record_and_settle_still_settles(world: World) -> None:
    """Another event marked while the outputs run changes the row's version: the settle reads
    it again and settles the same state, so the next re-send is free once both are processed."""
    settle_first(world)
    assert post(world, failed(5)) == 202
    (message,) = world.sender.drain()
    assert world.container is not None
    door = world.container.__dict__["door"]
    recovery = Arrival(ENV, CLUSTER, OBJ.kind, OBJ.namespace, OBJ.name, COMMIT, Phase.SUCCEEDED, T0)

    class MarkMeanwhile:
        def on_change(self, change: Any) -> None:
            assert door.admit(recovery, "meanwhile") is True

    processor = world.container.processor
    processor._listeners = (*processor._listeners, MarkMeanwhile())
    world.process(message)

    assert row(world)["settled"] is True
    assert row(world)["phase"] == "failed"
    assert set(marks_of(row(world))) == {"meanwhile"}
