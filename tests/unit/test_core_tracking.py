"""The deployment state model, rule by rule: legacy helm messages, observations, transitions
(staleness, the first failure's time, the summary kept on a change) and roll-ups."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from connector.core.tracking import (
    ClusterResult,
    ObjectRef,
    ObjectState,
    Observation,
    Phase,
    Verdict,
    cluster_result,
    environment_result,
    transition,
)
from connector.queue.envelope import Envelope
from connector.sources.flux.events import FluxEvent
from connector.sources.flux.translate import classify, observe

SHA = "c8925188500a55dad9563388e537a03dcdded446"
T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
OBJ = ObjectRef("Kustomization", "flux-system", "apps")
HV = "helm-controller v0.36.2 internal/controller/helmrelease_controller.go"


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def flux_event(reason: str, message: str, *, severity: str = "info") -> FluxEvent:
    return FluxEvent.model_validate(
        {
            "involvedObject": {"kind": "HelmRelease", "namespace": "apps", "name": "podinfo"},
            "severity": severity,
            "timestamp": "2026-05-14T09:13:05Z",
            "message": message,
            "reason": reason,
        }
    )


def obs(phase: Phase | None, t: int, *, reason: str = "R", summary: str = "new") -> Observation:
    return Observation(
        cluster="c1",
        env="dev",
        obj=OBJ,
        commit=SHA,
        phase=phase,
        reason=reason,
        summary=summary,
        time=at(t),
        message_id=f"m{t}",
        is_source=False,
    )


def state(phase: Phase, t: int, *, first: int = 0, failed: int | None = None) -> ObjectState:
    return ObjectState(
        phase=phase,
        reason="Before",
        summary="old",
        time=at(t),
        first_seen=at(first),
        failed_since=None if failed is None else at(failed),
    )


# --- Legacy helm-controller (reason "info", the meaning in the message) ----------------------

LEGACY = [
    # (message, phase, where helm-controller v0.36.2 emits it)
    ("Helm install has started", Phase.PROGRESSING, f"{HV}:397"),
    ("Helm upgrade has started", Phase.PROGRESSING, f"{HV}:403"),
    ("Helm install succeeded", Phase.SUCCEEDED, f"{HV}:730 (action install)"),
    ("Helm upgrade succeeded", Phase.SUCCEEDED, f"{HV}:730 (action upgrade)"),
    ("Helm test succeeded", Phase.SUCCEEDED, f"{HV}:730 (action test, :419)"),
    # The Progressing condition's message (api/v2beta1/helmrelease_types.go:930 at v0.36.2);
    # pins the "progress" alternative should a controller send it as an event message.
    ("Reconciliation in progress", Phase.PROGRESSING, "api/v2beta1/helmrelease_types.go:930"),
    ("HelmChart 'apps/apps-podinfo' is not ready", None, f"{HV}:235"),
    ("no diff in cluster resources compared to release", None, f"{HV}:343"),
    # Both words: success is checked first.
    ("Helm upgrade has started and succeeded", Phase.SUCCEEDED, "precedence"),
    ("HELM UPGRADE SUCCEEDED", Phase.SUCCEEDED, "case-insensitive"),
    ("HELM INSTALL HAS STARTED", Phase.PROGRESSING, "case-insensitive"),
]


@pytest.mark.parametrize(("message", "phase", "source"), LEGACY, ids=[m for m, _, _ in LEGACY])
def test_legacy_helm_info_messages(message, phase, source):
    assert classify(flux_event("info", message)) == phase, source


def test_legacy_helm_error_fails_whatever_the_message():
    assert classify(flux_event("error", "Helm upgrade succeeded", severity="error")) == Phase.FAILED


def test_legacy_helm_rollback_is_a_failure_like_rollback_succeeded():
    # helm-controller v0.36.2 internal/controller/helmrelease_controller.go:449 (action rollback)
    assert classify(flux_event("info", "Helm rollback succeeded")) == Phase.FAILED


def test_legacy_helm_uninstall_is_progress_like_uninstall_succeeded():
    # helm-controller v0.36.2 internal/controller/helmrelease_controller.go:453 (action uninstall)
    assert classify(flux_event("info", "Helm uninstall succeeded")) == Phase.PROGRESSING


@pytest.mark.parametrize("severity", ["error", "Error", "ERROR"])
def test_error_severity_in_any_case_fails(severity):
    assert classify(flux_event("ReconciliationSucceeded", "x", severity=severity)) == Phase.FAILED


# --- Observations ------------------------------------------------------------------------------


@pytest.mark.parametrize("claimed", [None, SHA, "d" * 40])
def test_a_commit_annotation_never_beats_the_revision_and_a_contradiction_is_logged(
    claimed, caplog
):
    metadata = {"revision": f"main@sha1:{SHA}"}
    if claimed is not None:
        metadata["commit"] = claimed
    event = {
        "involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "a"},
        "severity": "info",
        "timestamp": "2026-05-14T09:13:05Z",
        "message": "Reconciliation finished",
        "reason": "ReconciliationSucceeded",
        "metadata": metadata,
    }
    envelope = Envelope(cluster="c1", env="dev", received_at=at(99), event=event)
    with caplog.at_level("WARNING", logger="connector.sources.flux.translate"):
        assert observe(envelope, "msg-1").commit == SHA
    records = [r for r in caplog.records if r.getMessage() == "flux.commit_metadata_ignored"]
    if claimed in (None, SHA):
        assert records == []
        return
    [record] = records
    assert (record.object, record.commit, record.claimed_commit, record.cluster) == (
        "Kustomization/flux-system/a",
        SHA,
        claimed,
        "c1",
    )


def test_observe_copies_every_field_and_cuts_the_summary():
    ev = FluxEvent.model_validate(
        {
            "involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "a"},
            "severity": "error",
            "timestamp": "2026-05-14T09:13:05Z",
            "message": "\n  health check failed after 4m59s  \nDeployment/apps/podinfo",
            "reason": "HealthCheckFailed",
            "metadata": {"revision": f"main@sha1:{SHA}", "env": "prod"},
        }
    )
    envelope = Envelope(
        cluster="c1", env="dev", received_at=at(99), event=ev.model_dump(mode="json", by_alias=True)
    )
    assert observe(envelope, "msg-1") == Observation(
        cluster="c1",
        env="dev",
        obj=ObjectRef("Kustomization", "flux-system", "a"),
        commit=SHA,
        phase=Phase.FAILED,
        reason="HealthCheckFailed",
        summary="health check failed after 4m59s",
        time=datetime(2026, 5, 14, 9, 13, 5, tzinfo=UTC),
        message_id="msg-1",
        is_source=False,
    )
    assert observe(envelope, "msg-1").metadata == {"revision": f"main@sha1:{SHA}", "env": "prod"}


@pytest.mark.parametrize(
    ("commit", "is_source", "phase", "sets"),
    [
        (SHA, False, Phase.SUCCEEDED, True),
        (SHA, False, Phase.FAILED, True),
        (None, False, Phase.SUCCEEDED, False),
        (SHA, True, Phase.SUCCEEDED, False),
        (SHA, False, None, False),
    ],
)
def test_sets_status_needs_a_commit_a_deployed_kind_and_a_phase(commit, is_source, phase, sets):
    o = obs(phase, 0)
    o = Observation(**{**o.__dict__, "commit": commit, "is_source": is_source})
    assert o.sets_status is sets


@pytest.mark.parametrize(
    ("ref", "text"),
    [
        (ObjectRef("Kustomization", "flux-system", "apps"), "Kustomization/flux-system/apps"),
        (ObjectRef("HelmRelease", "apps", "a/b"), "HelmRelease/apps/a/b"),
    ],
)
def test_object_ref_text_round_trip(ref, text):
    assert str(ref) == text
    assert ObjectRef.parse(text) == ref


# --- Transitions -------------------------------------------------------------------------------

# (recorded, incoming, verdict, recorded afterwards): every field of the new state is checked.
TRANSITIONS = [
    pytest.param(
        None,
        obs(Phase.PROGRESSING, 5),
        Verdict.CHANGED,
        ObjectState(Phase.PROGRESSING, "R", "new", at(5), at(5), None),
        id="first-progress",
    ),
    pytest.param(
        None,
        obs(Phase.FAILED, 5),
        Verdict.CHANGED,
        ObjectState(Phase.FAILED, "R", "new", at(5), at(5), at(5)),
        id="first-failure-starts-the-clock",
    ),
    pytest.param(
        None,
        obs(None, 5),
        Verdict.IGNORED,
        None,
        id="informational-on-nothing",
    ),
    pytest.param(
        state(Phase.SUCCEEDED, 10),
        obs(None, 20),
        Verdict.IGNORED,
        state(Phase.SUCCEEDED, 10),
        id="informational-keeps-state-and-time",
    ),
    pytest.param(
        state(Phase.SUCCEEDED, 10),
        obs(Phase.SUCCEEDED, 20),
        Verdict.UNCHANGED,
        ObjectState(Phase.SUCCEEDED, "Before", "old", at(20), at(0), None),
        id="unchanged-resend-moves-time-forward",
    ),
    pytest.param(
        state(Phase.SUCCEEDED, 10),
        obs(Phase.SUCCEEDED, 10),
        Verdict.UNCHANGED,
        state(Phase.SUCCEEDED, 10),
        id="same-second-resend-is-not-stale",
    ),
    pytest.param(
        state(Phase.FAILED, 10, failed=10),
        obs(Phase.PROGRESSING, 30),
        Verdict.UNCHANGED,
        ObjectState(Phase.FAILED, "Before", "old", at(30), at(0), at(10)),
        id="progress-after-failure-keeps-failure-and-its-start",
    ),
    pytest.param(
        state(Phase.SUCCEEDED, 10),
        obs(Phase.PROGRESSING, 30),
        Verdict.UNCHANGED,
        ObjectState(Phase.SUCCEEDED, "Before", "old", at(30), at(0), None),
        id="progress-after-success-keeps-success",
    ),
    pytest.param(
        state(Phase.FAILED, 20, failed=10),
        obs(Phase.FAILED, 40),
        Verdict.UNCHANGED,
        ObjectState(Phase.FAILED, "Before", "old", at(40), at(0), at(10)),
        id="repeated-failure-keeps-the-first-failure-time",
    ),
    pytest.param(
        state(Phase.PROGRESSING, 10),
        obs(Phase.FAILED, 20, reason="HealthCheckFailed", summary="timeout"),
        Verdict.CHANGED,
        ObjectState(Phase.FAILED, "HealthCheckFailed", "timeout", at(20), at(0), at(20)),
        id="failure-after-progress",
    ),
    pytest.param(
        state(Phase.SUCCEEDED, 10),
        obs(Phase.FAILED, 10, reason="HealthCheckFailed", summary="timeout"),
        Verdict.CHANGED,
        ObjectState(Phase.FAILED, "HealthCheckFailed", "timeout", at(10), at(0), at(10)),
        id="failure-in-the-same-second-replaces-success",
    ),
    pytest.param(
        state(Phase.FAILED, 10, failed=5),
        obs(Phase.SUCCEEDED, 20, reason="ReconciliationSucceeded", summary="done"),
        Verdict.CHANGED,
        ObjectState(Phase.SUCCEEDED, "ReconciliationSucceeded", "done", at(20), at(0), None),
        id="recovery-clears-the-failure-and-keeps-the-new-summary",
    ),
    pytest.param(
        state(Phase.PROGRESSING, 10),
        obs(Phase.SUCCEEDED, 20, reason="ReconciliationSucceeded", summary="done"),
        Verdict.CHANGED,
        ObjectState(Phase.SUCCEEDED, "ReconciliationSucceeded", "done", at(20), at(0), None),
        id="success-after-progress",
    ),
    pytest.param(
        state(Phase.SUCCEEDED, 10),
        obs(Phase.FAILED, 9),
        Verdict.STALE,
        state(Phase.SUCCEEDED, 10),
        id="older-is-stale",
    ),
]


@pytest.mark.parametrize(("current", "incoming", "verdict", "after"), TRANSITIONS)
def test_transition(current, incoming, verdict, after):
    assert transition(current, incoming) == (verdict, after)


@pytest.mark.parametrize("phase", [Phase.SUCCEEDED, Phase.PROGRESSING])
def test_an_older_delivery_after_a_newer_resend_is_stale(phase):
    """The re-send at t=30 moves the recorded time, so a delivery from t=20 is old news."""
    _, after_resend = transition(state(Phase.SUCCEEDED, 10), obs(phase, 30))
    assert after_resend is not None
    assert transition(after_resend, obs(Phase.FAILED, 20)) == (Verdict.STALE, after_resend)


def test_an_older_delivery_after_a_change_is_stale():
    _, after_change = transition(state(Phase.PROGRESSING, 10), obs(Phase.SUCCEEDED, 30))
    assert after_change is not None
    assert transition(after_change, obs(Phase.FAILED, 20)) == (Verdict.STALE, after_change)


def test_grace_clock_is_the_first_failure_across_resends():
    recorded = None
    for t in (10, 70, 130):
        _, recorded = transition(recorded, obs(Phase.FAILED, t))
    assert recorded is not None
    assert (recorded.time, recorded.failed_since) == (at(130), at(10))


@pytest.mark.parametrize(
    ("recorded", "phase", "noticed"),
    [
        (None, Phase.FAILED, at(100)),
        (None, Phase.SUCCEEDED, None),
        (None, Phase.PROGRESSING, None),
        (state(Phase.PROGRESSING, 10), Phase.FAILED, at(100)),
        (state(Phase.FAILED, 10, failed=10), Phase.SUCCEEDED, None),
        (state(Phase.PROGRESSING, 10), Phase.SUCCEEDED, None),
    ],
)
def test_failure_noticed_is_when_the_connector_processed_a_new_failure(recorded, phase, noticed):
    """The gate's grace runs from `failure_noticed` (a queue backlog must not eat it): set from
    the processing time on a new failure, cleared by any other phase."""
    incoming = replace(obs(phase, 20), noticed_at=at(100))
    _, after = transition(recorded, incoming)
    assert after is not None
    assert after.failure_noticed == noticed


# --- Roll-up -----------------------------------------------------------------------------------

A = ObjectRef("HelmRelease", "apps", "a")
B = ObjectRef("Kustomization", "apps", "b")
C = ObjectRef("Kustomization", "flux-system", "c")
D = ObjectRef("Kustomization", "flux-system", "d")


def st(phase: Phase, reason: str = "R") -> ObjectState:
    return ObjectState(phase, reason, f"{reason} summary", T0, T0)


def test_when_several_objects_fail_the_first_by_kind_namespace_name_is_reported():
    states = {C: st(Phase.FAILED, "c"), A: st(Phase.FAILED, "a"), B: st(Phase.FAILED, "b")}
    result = cluster_result("c1", states, [])
    assert result.failed == ((A, states[A]), (B, states[B]), (C, states[C]))


CLUSTERS = [
    # (states, expected objects, (phase, done, pending, failed objects))
    pytest.param({}, [], (Phase.PROGRESSING, (), (), ()), id="nothing-seen-nothing-expected"),
    pytest.param({}, [B, A], (Phase.PROGRESSING, (), (A, B), ()), id="nothing-seen"),
    pytest.param(
        {B: st(Phase.SUCCEEDED), A: st(Phase.SUCCEEDED)},
        [],
        (Phase.SUCCEEDED, (A, B), (), ()),
        id="all-seen-succeeded",
    ),
    pytest.param(
        {A: st(Phase.SUCCEEDED)},
        [A, C],
        (Phase.PROGRESSING, (A,), (C,), ()),
        id="an-expected-object-unseen",
    ),
    pytest.param(
        {A: st(Phase.SUCCEEDED), D: st(Phase.PROGRESSING)},
        [A],
        (Phase.PROGRESSING, (A,), (D,), ()),
        id="an-unexpected-object-progressing",
    ),
    pytest.param(
        {A: st(Phase.SUCCEEDED), C: st(Phase.FAILED)},
        [A, B, C],
        (Phase.FAILED, (A,), (B,), (C,)),
        id="one-failure-fails-and-is-not-pending",
    ),
]


@pytest.mark.parametrize(("states", "expected", "outcome"), CLUSTERS)
def test_cluster_result(states, expected, outcome):
    result = cluster_result("c1", states, expected)
    assert result.cluster == "c1"
    failed = tuple(o for o, _ in result.failed)
    assert (result.phase, result.done, result.pending, failed) == outcome


def cr(name: str, phase: Phase) -> ClusterResult:
    return ClusterResult(name, phase)


ENVIRONMENTS = [
    pytest.param([], Phase.PROGRESSING, id="no-cluster"),
    pytest.param([cr("b", Phase.SUCCEEDED), cr("a", Phase.SUCCEEDED)], Phase.SUCCEEDED, id="all"),
    pytest.param(
        [cr("a", Phase.SUCCEEDED), cr("b", Phase.PROGRESSING)], Phase.PROGRESSING, id="one-left"
    ),
    pytest.param(
        [cr("a", Phase.PROGRESSING), cr("b", Phase.FAILED)], Phase.FAILED, id="one-failed"
    ),
    pytest.param(
        [cr("a", Phase.SUCCEEDED), cr("b", Phase.FAILED)], Phase.FAILED, id="failed-beats-done"
    ),
]


@pytest.mark.parametrize(("clusters", "phase"), ENVIRONMENTS)
def test_environment_result(clusters, phase):
    result = environment_result("dev", clusters)
    assert (result.env, result.phase) == ("dev", phase)
    assert [c.cluster for c in result.clusters] == sorted(c.cluster for c in clusters)


def test_failed_cluster_is_the_first_failed_by_name():
    result = environment_result(
        "dev", [cr("c", Phase.FAILED), cr("a", Phase.SUCCEEDED), cr("b", Phase.FAILED)]
    )
    assert result.failed_cluster == cr("b", Phase.FAILED)
    assert environment_result("dev", [cr("a", Phase.SUCCEEDED)]).failed_cluster is None


# --- the model in brief: transitions from each phase, and roll-ups over objects and clusters ---


def observed(phase: Phase | None, at: datetime, reason: str = "r") -> Observation:
    return Observation(
        "c",
        "e",
        ObjectRef("Kustomization", "ns", "apps"),
        SHA,
        phase,
        reason,
        "summary",
        at,
        "m",
        is_source=False,
    )


def stored(phase: Phase, at: datetime = T0) -> ObjectState:
    return ObjectState(phase, "r", "s", at, at)


@pytest.mark.parametrize(
    ("current", "incoming", "verdict", "result"),
    [
        (None, Phase.PROGRESSING, Verdict.CHANGED, Phase.PROGRESSING),
        (None, Phase.SUCCEEDED, Verdict.CHANGED, Phase.SUCCEEDED),
        (Phase.PROGRESSING, Phase.PROGRESSING, Verdict.UNCHANGED, Phase.PROGRESSING),
        (Phase.PROGRESSING, Phase.SUCCEEDED, Verdict.CHANGED, Phase.SUCCEEDED),
        (Phase.SUCCEEDED, Phase.SUCCEEDED, Verdict.UNCHANGED, Phase.SUCCEEDED),
        (Phase.SUCCEEDED, Phase.PROGRESSING, Verdict.UNCHANGED, Phase.SUCCEEDED),
        (Phase.FAILED, Phase.PROGRESSING, Verdict.UNCHANGED, Phase.FAILED),
        (Phase.SUCCEEDED, Phase.FAILED, Verdict.CHANGED, Phase.FAILED),
        (Phase.FAILED, Phase.SUCCEEDED, Verdict.CHANGED, Phase.SUCCEEDED),
        (Phase.SUCCEEDED, None, Verdict.IGNORED, Phase.SUCCEEDED),
    ],
)
def test_transitions(current, incoming, verdict, result):
    before = stored(current) if current else None
    got, after = transition(before, observed(incoming, T0 + timedelta(seconds=5)))
    assert got == verdict
    assert after is not None
    assert after.phase == result


def test_older_events_are_stale_and_change_nothing():
    current = stored(Phase.SUCCEEDED, T0)
    verdict, after = transition(current, observed(Phase.FAILED, T0 - timedelta(seconds=1)))
    assert verdict == Verdict.STALE
    assert after == current


def test_failure_records_when_it_started():
    later = T0 + timedelta(minutes=1)
    _, failed = transition(stored(Phase.PROGRESSING), observed(Phase.FAILED, later))
    assert failed is not None
    assert failed.failed_since == later
    _, recovered = transition(failed, observed(Phase.SUCCEEDED, T0 + timedelta(minutes=2)))
    assert recovered is not None
    assert recovered.failed_since is None


APPS = ObjectRef("Kustomization", "flux-system", "apps")
INFRA = ObjectRef("Kustomization", "flux-system", "infra")


def test_cluster_waits_for_every_expected_object():
    r = cluster_result("c", {APPS: stored(Phase.SUCCEEDED)}, expected=[APPS, INFRA])
    assert r.phase == Phase.PROGRESSING
    assert r.pending == (INFRA,)
    r = cluster_result(
        "c", {APPS: stored(Phase.SUCCEEDED), INFRA: stored(Phase.SUCCEEDED)}, [APPS, INFRA]
    )
    assert r.phase == Phase.SUCCEEDED


def test_cluster_is_not_done_while_an_object_progresses():
    r = cluster_result("c", {APPS: stored(Phase.SUCCEEDED), INFRA: stored(Phase.PROGRESSING)}, [])
    assert r.phase == Phase.PROGRESSING


def test_cluster_fails_as_soon_as_one_object_fails():
    r = cluster_result(
        "c", {APPS: stored(Phase.FAILED), INFRA: stored(Phase.PROGRESSING)}, [APPS, INFRA]
    )
    assert r.phase == Phase.FAILED
    assert r.failed[0][0] == APPS


def test_cluster_with_nothing_seen_is_pending():
    assert cluster_result("c", {}, []).phase == Phase.PROGRESSING


def test_environment_rollup():
    ok = cluster_result("a", {APPS: stored(Phase.SUCCEEDED)}, [])
    waiting = cluster_result("b", {}, [APPS])
    bad = cluster_result("c", {APPS: stored(Phase.FAILED)}, [])
    assert environment_result("prod", [ok, waiting]).phase == Phase.PROGRESSING
    assert environment_result("prod", [ok, ok]).phase == Phase.SUCCEEDED
    assert environment_result("prod", [waiting, bad]).phase == Phase.FAILED
    assert environment_result("prod", []).phase == Phase.PROGRESSING
