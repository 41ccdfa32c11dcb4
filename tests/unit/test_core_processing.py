"""`Processor.process`, table-driven, on the memory twin of the state tables (no Azurite): which
observations reach the outputs, what they are told, and how a failing output is handled."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from connector.core.processing import Change, Processor
from connector.core.tracking import ObjectRef, Observation, Phase, Verdict
from connector.storage.tables import TableStore
from tests.fakes.memory_tables import MemoryTableService

T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 5, 14, 10, 0, tzinfo=UTC)
SHA = "c8925188500a55dad9563388e537a03dcdded446"
APPS = ObjectRef("Kustomization", "flux-system", "apps")


def observation(
    message_id: str, phase: Phase | None, seconds: int, **changes: object
) -> Observation:
    obs = Observation(
        cluster="c1",
        env="prod",
        obj=APPS,
        commit=SHA,
        phase=phase,
        reason="ReconciliationSucceeded" if phase == Phase.SUCCEEDED else "Progressing",
        summary="",
        time=T0 + timedelta(seconds=seconds),
        message_id=message_id,
        is_source=False,
    )
    return replace(obs, **changes)  # type: ignore[arg-type]


class Recorder:
    """An output that remembers what it was told (and can be made to fail)."""

    def __init__(self, fails: Exception | None = None) -> None:
        self.changes: list[Change] = []
        self.fails = fails

    def on_change(self, change: Change) -> None:
        self.changes.append(change)
        if self.fails is not None:
            raise self.fails


def processor(*listeners: Recorder) -> tuple[Processor, TableStore]:
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    return Processor({}, store, listeners, clock=lambda: NOW), store


@dataclass(frozen=True)
class Case:
    id: str
    before: list[Observation]
    then: Observation
    verdict: Verdict | None
    told: bool


CASES = [
    Case(
        "a first observation changes the state",
        [],
        observation("m1", Phase.PROGRESSING, 0),
        Verdict.CHANGED,
        True,
    ),
    Case(
        "a new phase changes the state",
        [observation("m1", Phase.PROGRESSING, 0)],
        observation("m2", Phase.SUCCEEDED, 10),
        Verdict.CHANGED,
        True,
    ),
    Case(
        "a re-send of a settled state is unchanged and costs the outputs nothing",
        [observation("m1", Phase.SUCCEEDED, 0)],
        observation("m2", Phase.SUCCEEDED, 10),
        Verdict.UNCHANGED,
        False,
    ),
    Case(
        "progress after success on the same commit is unchanged",
        [observation("m1", Phase.SUCCEEDED, 0)],
        observation("m2", Phase.PROGRESSING, 10),
        Verdict.UNCHANGED,
        False,
    ),
    Case(
        "an older observation is stale, and not told",
        [observation("m1", Phase.SUCCEEDED, 10)],
        observation("m2", Phase.FAILED, 0),
        Verdict.STALE,
        False,
    ),
    Case(
        "an exact redelivery of a processed change is unchanged, not told",
        [observation("m1", Phase.FAILED, 0)],
        observation("m1", Phase.FAILED, 0),
        Verdict.UNCHANGED,
        False,
    ),
    Case(
        "an informational observation is ignored",
        [],
        observation("m1", None, 0),
        Verdict.IGNORED,
        False,
    ),
    Case(
        "a source object is recorded but sets no status",
        [],
        observation(
            "m1",
            Phase.SUCCEEDED,
            0,
            is_source=True,
            obj=ObjectRef("GitRepository", "flux-system", "repo"),
        ),
        Verdict.CHANGED,
        False,
    ),
    Case(
        "without a commit nothing is told",
        [],
        observation("m1", Phase.SUCCEEDED, 0, commit=None),
        Verdict.CHANGED,
        False,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_process(case: Case) -> None:
    output = Recorder()
    proc, _ = processor(output)
    for earlier in case.before:
        proc.process(earlier)
    output.changes.clear()

    verdict = proc.process(case.then)

    assert verdict == case.verdict
    assert [c.obs.message_id for c in output.changes] == (
        [case.then.message_id] if case.told else []
    )
    # Settled: the same observation again is the steady state and tells nobody.
    output.changes.clear()
    assert proc.process(case.then) in (Verdict.UNCHANGED, Verdict.STALE, Verdict.IGNORED)
    assert output.changes == []


def test_outputs_are_told_the_recorded_state_and_the_environment_on_the_commit() -> None:
    output = Recorder()
    proc, _ = processor(output)

    proc.process(observation("m1", Phase.FAILED, 5))

    (change,) = output.changes
    assert change.commit == SHA
    assert change.obs.noticed_at == NOW
    assert change.recorded.verdict == Verdict.CHANGED
    assert change.recorded.state is not None
    assert change.recorded.state.failure_noticed == NOW
    environment = change.environment()
    assert (environment.env, environment.phase) == ("prod", Phase.FAILED)
    assert [c.cluster for c in environment.clusters] == ["c1"]


def test_every_output_runs_and_the_first_failure_is_raised_after() -> None:
    first, second, third = (
        Recorder(RuntimeError("first")),
        Recorder(ValueError("second")),
        Recorder(),
    )
    proc, _ = processor(first, second, third)

    with pytest.raises(RuntimeError, match="first"):
        proc.process(observation("m1", Phase.SUCCEEDED, 0))

    assert [len(o.changes) for o in (first, second, third)] == [1, 1, 1]
    # Not settled: the redelivery runs the outputs again (their own records dedupe)...
    first.fails = second.fails = None
    assert proc.process(observation("m1", Phase.SUCCEEDED, 0)) == Verdict.UNCHANGED
    assert len(third.changes) == 2
    # ...and once they all succeeded, the state is settled: a third delivery tells nobody.
    assert proc.process(observation("m1", Phase.SUCCEEDED, 0)) == Verdict.UNCHANGED
    assert len(third.changes) == 2


def test_an_output_that_left_work_keeps_the_state_unsettled() -> None:
    class TrialOutput(Recorder):
        def on_change(self, change: Change) -> None:
            super().on_change(change)
            change.keep_unsettled()  # as trial mode does: nothing was sent

    output = TrialOutput()
    proc, _ = processor(output)
    proc.process(observation("m1", Phase.SUCCEEDED, 0))
    proc.process(observation("m2", Phase.SUCCEEDED, 10))
    assert [c.obs.message_id for c in output.changes] == ["m1", "m2"]
