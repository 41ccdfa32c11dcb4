"""The deployment state model: what an observation is, how an object's state moves, and the
per-cluster and per-environment roll-up. Pure code, no I/O, and no source's vocabulary: each
source (`connector.sources`) translates its events into `Observation`s.

Phases are per (cluster, object, commit). `progressing` never overrides a terminal phase of the
same commit (drift corrections and `DependencyNotReady` re-sends cost no status writes); terminal
phases replace each other in event-time order (a failed health check can recover, and vice versa).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum


class Phase(StrEnum):
    PROGRESSING = "progressing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


TERMINAL = frozenset({Phase.SUCCEEDED, Phase.FAILED})


@dataclass(frozen=True, order=True)
class ObjectRef:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> ObjectRef:
        kind, namespace, name = text.split("/", 2)
        return cls(kind, namespace, name)


@dataclass(frozen=True)
class Observation:
    cluster: str
    env: str
    obj: ObjectRef
    commit: str | None
    phase: Phase | None
    reason: str
    summary: str
    time: datetime
    message_id: str
    is_source: bool
    metadata: Mapping[str, str] = field(default_factory=dict, compare=False)
    noticed_at: datetime | None = field(default=None, compare=False)  # when we processed it
    received_at: datetime | None = field(default=None, compare=False)  # when ingest queued it
    # The time the event claimed, when it lay beyond the receive time (`bounded_by_receipt`).
    claimed_time: datetime | None = field(default=None, compare=False)

    @property
    def sets_status(self) -> bool:
        """Sources say where manifests come from, not what is deployed; no commit, no status."""
        return self.commit is not None and not self.is_source and self.phase is not None


@dataclass(frozen=True)
class ObjectState:
    """What is recorded for one object on one commit in one cluster."""

    phase: Phase
    reason: str
    summary: str
    time: datetime
    first_seen: datetime
    failed_since: datetime | None = None
    failure_noticed: datetime | None = None  # when the connector processed the first failure
    is_source: bool = False  # says where manifests come from (no status, not in roll-ups)


# How far ahead of the receive time an event's own time may lie before it is not believed. A
# cluster's clock a few seconds ahead is normal (NTP); minutes ahead is a clock jump, and one
# event dated a day ahead would otherwise make every real later event look stale.
CLOCK_SKEW_TOLERANCE = timedelta(minutes=5)


def bounded_by_receipt(
    obs: Observation, tolerance: timedelta = CLOCK_SKEW_TOLERANCE
) -> Observation:
    """The observation with its time bounded by when it was received (`received_at`, else
    `noticed_at`): a time beyond the tolerance is replaced by the receive time for every
    ordering decision and kept as `claimed_time`. Times in the past stay: a delayed delivery is
    normal, and it is still ordered by when it happened."""
    receipt = obs.received_at or obs.noticed_at
    if receipt is None or obs.time <= receipt + tolerance:
        return obs
    return replace(obs, time=receipt, claimed_time=obs.time)


def believable(recorded: datetime, obs: Observation) -> bool:
    """Whether a recorded time can be newer than `obs`: a time beyond the tolerance of `obs`'s
    receipt was written before times were bounded (a cluster's clock jump) and orders nothing."""
    receipt = obs.received_at or obs.noticed_at
    return receipt is None or recorded <= receipt + CLOCK_SKEW_TOLERANCE


class Verdict(StrEnum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"  # same phase again (periodic re-sends, detail events)
    STALE = "stale"  # older than what is recorded
    IGNORED = "ignored"  # informational only


def transition(current: ObjectState | None, obs: Observation) -> tuple[Verdict, ObjectState | None]:
    """Apply an observation to the recorded state of its (cluster, object, commit)."""
    if obs.phase is None:
        return Verdict.IGNORED, current
    if current is None:
        return Verdict.CHANGED, _fresh(obs, obs.phase)
    if obs.time < current.time and believable(current.time, obs):
        return Verdict.STALE, current
    if obs.phase == current.phase or (obs.phase == Phase.PROGRESSING and current.phase in TERMINAL):
        # Keep the newest time so that older deliveries stay recognisably stale.
        return Verdict.UNCHANGED, replace(current, time=max(current.time, obs.time))
    failed = obs.phase == Phase.FAILED
    return Verdict.CHANGED, replace(
        current,
        phase=obs.phase,
        reason=obs.reason,
        summary=obs.summary,
        time=obs.time,
        failed_since=obs.time if failed else None,
        failure_noticed=obs.noticed_at if failed else None,
    )


def _fresh(obs: Observation, phase: Phase) -> ObjectState:
    return ObjectState(
        phase=phase,
        reason=obs.reason,
        summary=obs.summary,
        time=obs.time,
        first_seen=obs.time,
        failed_since=obs.time if phase == Phase.FAILED else None,
        failure_noticed=obs.noticed_at if phase == Phase.FAILED else None,
        is_source=obs.is_source,
    )


# --- Roll-up ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterResult:
    cluster: str
    phase: Phase
    done: tuple[ObjectRef, ...] = ()
    pending: tuple[ObjectRef, ...] = ()
    failed: tuple[tuple[ObjectRef, ObjectState], ...] = ()


@dataclass(frozen=True)
class EnvironmentResult:
    env: str
    phase: Phase
    clusters: tuple[ClusterResult, ...]
    # Some object counted with its state on a descendant of the commit (it skipped the commit).
    followed: bool = False

    @property
    def failed_cluster(self) -> ClusterResult | None:
        return next((c for c in self.clusters if c.phase == Phase.FAILED), None)


def cluster_result(
    cluster: str, states: Mapping[ObjectRef, ObjectState], expected: Iterable[ObjectRef]
) -> ClusterResult:
    """A cluster is done when every expected object (and every object seen) has succeeded,
    failed as soon as one object failed, and pending otherwise (including when nothing is seen)."""
    required = set(expected) | set(states)
    failed = tuple(
        sorted(((o, s) for o, s in states.items() if s.phase == Phase.FAILED), key=lambda p: p[0])
    )
    done = tuple(sorted(o for o in required if o in states and states[o].phase == Phase.SUCCEEDED))
    pending = tuple(sorted(required - set(done) - {o for o, _ in failed}))
    if failed:
        phase = Phase.FAILED
    elif required and not pending:
        phase = Phase.SUCCEEDED
    else:
        phase = Phase.PROGRESSING
    return ClusterResult(cluster, phase, done, pending, failed)


def environment_result(env: str, clusters: Iterable[ClusterResult]) -> EnvironmentResult:
    """Failed as soon as one cluster failed; succeeded when every expected cluster succeeded."""
    results = tuple(sorted(clusters, key=lambda c: c.cluster))
    if any(c.phase == Phase.FAILED for c in results):
        phase = Phase.FAILED
    elif results and all(c.phase == Phase.SUCCEEDED for c in results):
        phase = Phase.SUCCEEDED
    else:
        phase = Phase.PROGRESSING
    return EnvironmentResult(env, phase, results)
