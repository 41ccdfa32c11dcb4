"""`gates.decide` and the progress lines, table-driven: success, the grace period measured from
the first failure with its exact boundary, the deadline's exact boundary, and the operator-facing
text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.core.gates import Decision, Gate, PlanRef, decide, gate_id, progress_lines
from connector.core.tracking import (
    ClusterResult,
    EnvironmentResult,
    ObjectRef,
    ObjectState,
    Phase,
    cluster_result,
    environment_result,
)

SHA = "c8925188500a55dad9563388e537a03dcdded446"
T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
GRACE = timedelta(minutes=10)
DEADLINE = T0 + timedelta(hours=2)
PLAN = PlanRef("https://dev.azure.com/org/", "p", "build", "plan", "job", "tl", "task")
GATE = Gate(id="g", plan=PLAN, environment="prod", created_at=T0, deadline=DEADLINE)
APPS = ObjectRef("Kustomization", "flux-system", "apps")
INFRA = ObjectRef("Kustomization", "flux-system", "infra")


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def failed_state(*, since: datetime | None, time: datetime, reason: str = "HealthCheckFailed"):
    return ObjectState(
        phase=Phase.FAILED,
        reason=reason,
        summary="health check failed after 5m",
        time=time,
        first_seen=T0,
        failed_since=since,
    )


def ok() -> ObjectState:
    return ObjectState(Phase.SUCCEEDED, "ReconciliationSucceeded", "done", T0, T0)


def env(*clusters: ClusterResult) -> EnvironmentResult:
    return environment_result("prod", clusters)


def failing(since: datetime | None, time: datetime) -> EnvironmentResult:
    state = failed_state(since=since, time=time)
    return env(
        cluster_result("aks-1", {APPS: ok()}, [APPS]),
        cluster_result("aks-2", {INFRA: state}, [INFRA]),
    )


FAILED_REASON = (
    "aks-2: Kustomization/flux-system/infra: HealthCheckFailed: health check failed after 5m"
)
DONE = env(cluster_result("aks-2", {APPS: ok()}, []), cluster_result("aks-1", {APPS: ok()}, []))
WAITING = env(cluster_result("aks-1", {}, [APPS]))
TIMED_OUT = "timed out after waiting until 2026-05-14 11:00Z for prod"

DECISIONS = [
    # (environment, commit, now, result, reason)
    pytest.param(
        DONE, SHA, minutes(1), "succeeded", "prod healthy on c8925188 in aks-1, aks-2", id="done"
    ),
    pytest.param(
        DONE,
        None,
        minutes(1),
        "succeeded",
        "prod healthy on the commit in aks-1, aks-2",
        id="done-",
    ),
    pytest.param(
        DONE, SHA, DEADLINE, "succeeded", "prod healthy on c8925188 in aks-1, aks-2", id="done-late"
    ),
    pytest.param(WAITING, SHA, minutes(1), None, "waiting", id="waiting"),
    pytest.param(
        WAITING, SHA, DEADLINE - timedelta(seconds=1), None, "waiting", id="deadline-minus-1s"
    ),
    pytest.param(WAITING, SHA, DEADLINE, "failed", TIMED_OUT, id="deadline-exactly"),
    pytest.param(
        failing(minutes(0), minutes(0)),
        SHA,
        minutes(10) - timedelta(seconds=1),
        None,
        "waiting",
        id="grace-minus-1s",
    ),
    pytest.param(
        failing(minutes(0), minutes(0)),
        SHA,
        minutes(10),
        "failed",
        FAILED_REASON,
        id="grace-exactly",
    ),
    pytest.param(
        # A re-sent failure moved `time` to 9 min; grace still counts from the first failure.
        failing(minutes(0), minutes(9)),
        SHA,
        minutes(10),
        "failed",
        FAILED_REASON,
        id="grace-from-first-failure",
    ),
    pytest.param(
        # A state recorded before `failed_since` existed: its time is the best estimate.
        failing(None, minutes(2)),
        SHA,
        minutes(12) - timedelta(seconds=1),
        None,
        "waiting",
        id="no-failed-since-minus-1s",
    ),
    pytest.param(
        failing(None, minutes(2)),
        SHA,
        minutes(12),
        "failed",
        FAILED_REASON,
        id="no-failed-since-uses-time",
    ),
    pytest.param(
        failing(DEADLINE - timedelta(minutes=1), DEADLINE - timedelta(minutes=1)),
        SHA,
        DEADLINE,
        "failed",
        TIMED_OUT,
        id="deadline-within-grace",
    ),
]


@pytest.mark.parametrize(("result", "commit", "now", "outcome", "reason"), DECISIONS)
def test_decide(result, commit, now, outcome, reason):
    decision = decide(GATE, result, commit, now, GRACE)
    assert (decision.result, decision.reason) == (outcome, reason)
    assert decision.lines == progress_lines(result, commit)


def test_zero_grace_fails_at_once():
    decision = decide(GATE, failing(minutes(5), minutes(5)), SHA, minutes(5), timedelta(0))
    assert (decision.result, decision.reason) == ("failed", FAILED_REASON)


def test_the_first_failed_cluster_and_object_are_named():
    a = ObjectRef("HelmRelease", "apps", "a")
    z = ObjectRef("Kustomization", "apps", "z")
    result = env(
        cluster_result("aks-3", {a: failed_state(since=T0, time=T0, reason="Third")}, []),
        cluster_result(
            "aks-2",
            {
                z: failed_state(since=T0, time=T0, reason="Later"),
                a: failed_state(since=T0, time=T0, reason="First"),
            },
            [],
        ),
    )
    decision = decide(GATE, result, SHA, minutes(30), GRACE)
    assert decision.reason == "aks-2: HelmRelease/apps/a: First: health check failed after 5m"


PENDING = [ObjectRef("Kustomization", "ns", f"o{i}") for i in range(7)]

LINES = [
    # (cluster result, commit, line)
    pytest.param(
        cluster_result("aks-1", {APPS: ok(), INFRA: ok()}, []),
        SHA,
        "aks-1: healthy on c8925188",
        id="healthy",
    ),
    pytest.param(
        cluster_result("aks-1", {APPS: ok()}, []),
        None,
        "aks-1: healthy on the commit",
        id="healthy-no-commit",
    ),
    pytest.param(
        cluster_result("aks-1", {INFRA: failed_state(since=T0, time=T0), APPS: ok()}, []),
        SHA,
        "aks-1: FAILED Kustomization/flux-system/infra: HealthCheckFailed: "
        "health check failed after 5m",
        id="failed",
    ),
    pytest.param(
        cluster_result("aks-1", {}, [INFRA, APPS]),
        SHA,
        "aks-1: waiting for Kustomization/flux-system/apps, Kustomization/flux-system/infra",
        id="pending",
    ),
    pytest.param(
        cluster_result("aks-1", {}, reversed(PENDING)),
        SHA,
        "aks-1: waiting for " + ", ".join(f"Kustomization/ns/o{i}" for i in range(3)),
        id="pending-first-three",
    ),
    pytest.param(
        cluster_result("aks-1", {}, []),
        SHA,
        "aks-1: waiting for a report of c8925188",
        id="nothing-seen",
    ),
    pytest.param(
        cluster_result("aks-1", {}, []),
        None,
        "aks-1: waiting for a report of the commit",
        id="nothing-seen-no-commit",
    ),
    pytest.param(
        cluster_result("aks-1", {}, []),
        "",
        "aks-1: waiting for a report of the commit",
        id="nothing-seen-empty-commit",
    ),
]


@pytest.mark.parametrize(("cluster", "commit", "line"), LINES)
def test_progress_line(cluster, commit, line):
    assert progress_lines(env(cluster), commit) == (line,)


def test_progress_lines_one_per_cluster_in_name_order():
    result = env(cluster_result("b", {}, []), cluster_result("a", {APPS: ok()}, []))
    assert progress_lines(result, SHA) == (
        "a: healthy on c8925188",
        "b: waiting for a report of c8925188",
    )


def test_progress_digest_is_stable_and_order_sensitive():
    """Stored on the gate to skip re-writing unchanged progress: it must not change across
    releases for the same lines, and must change when a line changes or moves."""
    one = Decision(None, "waiting", ("a: x", "b: y"))
    assert one.progress_digest == "b98320cf051c6f39"
    assert Decision("failed", "other", one.lines).progress_digest == one.progress_digest
    assert Decision(None, "waiting", ("b: y", "a: x")).progress_digest != one.progress_digest
    assert Decision(None, "waiting", ("a: xb: y",)).progress_digest != one.progress_digest


def test_gate_id_is_stable_case_blind_and_unambiguous():
    """Stored gate keys: the same plan and job give the same id in every release."""
    assert gate_id("Plan-1", "Job-1") == "2672a46c0755407f113355d2616c9919"
    assert gate_id("plan-1", "JOB-1") == gate_id("Plan-1", "Job-1")
    assert gate_id("ab", "c") != gate_id("a", "bc")


@pytest.mark.parametrize(
    ("result", "now", "recheck_at"),
    [
        pytest.param(failing(minutes(0), minutes(0)), minutes(3), minutes(10), id="in-grace"),
        pytest.param(failing(None, minutes(2)), minutes(3), minutes(12), id="time-when-no-since"),
        pytest.param(failing(minutes(0), minutes(0)), minutes(10), None, id="grace-over"),
        pytest.param(WAITING, minutes(3), None, id="nothing-failed"),
        pytest.param(DONE, minutes(3), None, id="done"),
        pytest.param(
            failing(DEADLINE - timedelta(minutes=1), DEADLINE - timedelta(minutes=1)),
            DEADLINE,
            None,
            id="deadline-first",
        ),
    ],
)
def test_a_failure_within_its_grace_says_when_to_look_again(result, now, recheck_at):
    # Re-sends of a settled failure cost nothing and evaluate nothing: the gate asks for a check
    # at the end of the grace instead of waiting for the sweep.
    assert decide(GATE, result, SHA, now, GRACE).recheck_at == recheck_at
