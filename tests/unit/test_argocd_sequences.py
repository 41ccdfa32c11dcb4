"""Argo CD tells the truth: Application states in the order the Argo CD controller writes them
(controller/appcontroller.go: the operation state, then the comparison it forces after a sync,
which stamps `reconciledAt` when it starts and `health.lastTransitionTime` when the health
changes), each translated and recorded as the processor does (memory twin), with the phase
recorded after each step.

A sync counts as healthy only once a comparison that started after it finished says so
(`assessed_after_sync`); recoveries on the same revision are recorded; bodies without a time of
their own get a message id per delivery."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.core.processing import Processor
from connector.core.tracking import ObjectRef, Phase
from connector.queue.envelope import Envelope
from connector.sources.argocd.ingest import build_message
from connector.sources.argocd.translate import observe, report_of
from connector.storage.tables import TableStore
from tests.argocd import A, B, application, fixture_names
from tests.fakes.memory_tables import MemoryTableService

P, S, F = Phase.PROGRESSING, Phase.SUCCEEDED, Phase.FAILED
RECEIVED = datetime(2026, 5, 14, 12, 0, tzinfo=UTC)
CHART = "6.7.1"


@dataclass(frozen=True)
class Step:
    """One Application state: the operation's phase and times, the health and its transition
    time, the last comparison, and the revision synced."""

    what: str
    operation: str | None  # None: no operationState
    health: str
    health_since: str
    reconciled: str
    started: str = "10:00:00"
    finished: str | None = None
    revision: str = B
    expected: Phase | None = None


def t(clock: str) -> str:
    return f"2026-05-14T{clock}Z"


def single_source(step: Step) -> dict[str, Any]:
    doc = copy.deepcopy(application("deployed-kustomize"))
    return _apply(doc, step, lambda revision: {"revision": revision})


def multi_source(step: Step) -> dict[str, Any]:
    """podinfo's chart from Helm, its values from the manifests repository, add-ons elsewhere:
    only the manifests repository's revision is the commit."""
    doc = copy.deepcopy(application("deployed-multi-source"))
    return _apply(doc, step, lambda revision: {"revisions": [CHART, revision, "f" * 40]})


def _apply(doc: dict[str, Any], step: Step, revisions: Any) -> dict[str, Any]:
    status = doc["status"]
    status["reconciledAt"] = t(step.reconciled)
    status["health"] = {"status": step.health, "lastTransitionTime": t(step.health_since)}
    status["sync"].update(revisions(step.revision))
    if step.operation is None:
        status.pop("operationState", None)
        return doc
    op = status["operationState"]
    op["phase"] = step.operation
    op["startedAt"] = t(step.started)
    op.pop("finishedAt", None)
    if step.finished is not None:
        op["finishedAt"] = t(step.finished)
    op["syncResult"].pop("revision", None)
    op["syncResult"].pop("revisions", None)
    op["syncResult"].update(revisions(step.revision))
    return doc


# A sync of B over A, which ran healthy since 09:00. Argo CD resolves the revision when the
# operation starts (syncResult), finishes it, then compares again: Progressing while the new
# pods roll out, Healthy once they run. Then a crash loop, a recovery, and a second crash on B.
ROLLOUT = [
    Step(
        "sync running, health still A's",
        "Running", "Healthy", "09:00:00", "09:58:00", expected=P,
    ),
    Step(
        "sync succeeded, stale Healthy (A's pods)",
        "Succeeded", "Healthy", "09:00:00", "09:58:00", finished="10:00:07", expected=P,
    ),
    Step(
        "same-second comparison (may predate the sync's end)",
        "Succeeded", "Healthy", "09:00:00", "10:00:07", finished="10:00:07", expected=P,
    ),
    Step(
        "comparison after the sync: Progressing",
        "Succeeded", "Progressing", "10:00:09", "10:00:08", finished="10:00:07", expected=P,
    ),
    Step(
        "comparison after the sync: Healthy",
        "Succeeded", "Healthy", "10:01:31", "10:01:30", finished="10:00:07", expected=S,
    ),
    Step(
        "Degraded on the same revision",
        "Succeeded", "Degraded", "10:20:01", "10:20:00", finished="10:00:07", expected=F,
    ),
    Step(
        "recovered on the same revision",
        "Succeeded", "Healthy", "10:25:01", "10:25:00", finished="10:00:07", expected=S,
    ),
    Step(
        "Degraded again",
        "Succeeded", "Degraded", "10:40:01", "10:40:00", finished="10:00:07", expected=F,
    ),
]  # fmt: skip


def replay(steps: list[Step], build: Any) -> list[tuple[str, Phase | None]]:
    """Each state through translation and the store; the object's phase after each."""
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    processor = Processor({}, store, clock=lambda: RECEIVED)
    recorded = []
    for index, step in enumerate(steps):
        event = {"manifests": "manifests", "body": build(step)}
        envelope = Envelope(cluster="aks-dev-1", env="dev", received_at=RECEIVED, event=event)
        processor.process(observe(envelope, f"m{index}"))
        states = store.cluster_view(B, "dev", "aks-dev-1").states
        state = next(iter(states.values()), None)
        recorded.append((step.what, state.phase if state else None))
    return recorded


@pytest.mark.parametrize("build", [single_source, multi_source], ids=["single", "multi-source"])
def test_the_phase_recorded_at_each_step_of_a_rollout(build: Any) -> None:
    recorded = replay(ROLLOUT, build)
    for what, phase in recorded:
        print(f"{build.__name__:<14}{what:<54}{phase}")
    assert recorded == [(s.what, s.expected) for s in ROLLOUT]


def test_before_any_comparison_after_the_sync_no_gate_can_pass() -> None:
    """The issue's case: on-sync-succeeded and on-deployed firing right after the sync, with
    the previous revision's Healthy: pending, not succeeded."""
    stale = single_source(ROLLOUT[1])
    assert observe(_envelope(stale), "m").phase == P
    assert report_of(_queued(stale)).assessed is False


def test_a_sync_that_failed_fails_whatever_the_health() -> None:
    step = Step("hook failed", "Failed", "Healthy", "09:00:00", "09:58:00", finished="10:00:30")
    assert observe(_envelope(single_source(step)), "m").phase == F


def test_without_an_operation_the_health_alone_speaks() -> None:
    degraded = Step("no operation", None, "Degraded", "10:20:01", "10:20:00")
    assert observe(_envelope(single_source(degraded)), "m").phase == F


def test_a_multi_source_application_reports_the_manifests_revision() -> None:
    seen = observe(_envelope(multi_source(ROLLOUT[4])), "m")
    assert (seen.commit, seen.phase) == (B, S)
    assert seen.obj == ObjectRef("Application", "argocd", "podinfo-multi")


def _queued(body: dict[str, Any]) -> Any:
    from connector.sources.argocd.application import Queued

    return Queued(manifests="manifests", body=body)


def _envelope(body: dict[str, Any]) -> Envelope:
    event = {"manifests": "manifests", "body": body}
    return Envelope(cluster="aks-dev-1", env="dev", received_at=RECEIVED, event=event)


def test_a_body_without_its_own_time_gets_an_id_per_delivery() -> None:
    """The incumbent template's body: Degraded, Healthy, Degraded are byte for byte two
    bodies; Service Bus duplicate detection (1 h) would drop the third."""
    from connector.sources.argocd.application import Queued

    degraded = {"commitid": A, "phase": "Succeeded", "health": "Degraded", "message": ""}
    raw = b'{"manifests":"manifests","name":"guestbook","namespace":"argocd","body":{}}'
    report = report_of(Queued(manifests="m", name="guestbook", namespace="argocd", body=degraded))
    assert report.time is None
    first = build_message(raw, report, "aks-dev-1", "dev", RECEIVED)
    third = build_message(raw, report, "aks-dev-1", "dev", RECEIVED.replace(minute=20))
    assert first.message_id != third.message_id
    assert first.message_id == build_message(raw, report, "aks-dev-1", "dev", RECEIVED).message_id

    # An Application carries its times: the same state is the same id, another state another.
    timed = report_of(_queued(single_source(ROLLOUT[5])))
    again = build_message(raw, timed, "aks-dev-1", "dev", RECEIVED.replace(minute=20))
    assert again.message_id == build_message(raw, timed, "aks-dev-1", "dev", RECEIVED).message_id


def slim(doc: dict[str, Any]) -> dict[str, Any]:
    """What the shipped template (deploy/argocd/argocd-notifications-cm.patch.yaml) keeps of an
    Application, field by field as its dig/pick calls do (a mirror: no Go renders it here)."""
    status, spec = doc.get("status", {}), doc.get("spec", {})
    sync, op = status.get("sync", {}), status.get("operationState", {})
    result = op.get("syncResult", {})

    def urls(sources: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [{"repoURL": s.get("repoURL", "")} for s in sources]

    kept: dict[str, Any] = {k: status[k] for k in ("reconciledAt",) if k in status}
    health = status.get("health", {})
    kept["health"] = {
        k: health[k] for k in ("status", "message", "lastTransitionTime") if k in health
    }
    kept["sync"] = {
        "status": sync.get("status", ""),
        "revision": sync.get("revision", ""),
        "revisions": sync.get("revisions", []),
        "comparedTo": {"sources": urls(sync.get("comparedTo", {}).get("sources", []))},
    }
    if op:
        state = {k: op[k] for k in ("phase", "message", "startedAt", "finishedAt") if k in op}
        state["syncResult"] = {
            "revision": result.get("revision", ""),
            "revisions": result.get("revisions", []),
            "sources": urls(result.get("sources", [])),
        }
        kept["operationState"] = state
    destination = spec.get("destination", {})
    meta = doc["metadata"]
    return {
        "metadata": {k: meta[k] for k in ("name", "namespace", "labels") if k in meta},
        "spec": {
            "sources": urls(spec.get("sources", [])),
            "source": {"repoURL": spec.get("source", {}).get("repoURL", "")},
            "destination": {k: destination[k] for k in ("name", "server") if k in destination},
        },
        "status": kept,
    }


@pytest.mark.parametrize("name", fixture_names())
def test_the_template_s_fields_are_all_the_connector_reads(name: str) -> None:
    full = application(name)
    seen, slimmed = observe(_envelope(full), "m"), observe(_envelope(slim(full)), "m")
    for field in ("obj", "commit", "phase", "reason", "summary", "time", "cluster", "env"):
        assert getattr(slimmed, field) == getattr(seen, field), field
    assert {k: v for k, v in seen.metadata.items() if k in slimmed.metadata} == slimmed.metadata
    assert len(json.dumps(slim(full))) < 4096


def with_resources(count: int) -> dict[str, Any]:
    """The whole Application ({{.app | toJson}}) of `count` resources: ~340 bytes each."""
    doc = copy.deepcopy(application("deployed-kustomize"))
    doc["status"]["resources"] = [
        {
            "group": "apps",
            "version": "v1",
            "kind": "Deployment",
            "namespace": "guestbook",
            "name": f"guestbook-component-{i:05d}",
            "status": "Synced",
            "health": {"status": "Healthy"},
            "syncWave": 0,
            "requiresPruning": False,
            "message": "deployment.apps/guestbook-component configured",
        }
        for i in range(count)
    ]
    return doc


def test_a_body_the_queue_cannot_hold_is_refused_with_413_naming_the_limit(install, sender):
    import function_app
    from connector.sources.argocd.ingest import QUEUE_MESSAGE_LIMIT
    from tests.argocd import SECRET, argocd_request
    from tests.conftest import BASE_SETTINGS

    install({**BASE_SETTINGS, "ARGOCD_WEBHOOK_SECRET": SECRET, "AZDO_GITOPS_REPO": "manifests"})
    large = json.dumps(with_resources(1000)).encode()  # the 341 KB
    assert 256 * 1024 < len(large) < 1024 * 1024  # under the ingest cap, over the queue's

    resp = function_app.argocd(argocd_request(large))
    body = json.loads(resp.get_body())
    assert resp.status_code == 413
    assert "262144-byte (256 KiB) Service Bus message limit" in body["error"]
    assert body["limit"] == QUEUE_MESSAGE_LIMIT
    assert sender.drain() == []  # nothing queued, no 503 for Argo CD to retry

    fits = json.dumps(with_resources(500)).encode()
    assert function_app.argocd(argocd_request(fits)).status_code == 202
    [message] = sender.drain()
    assert len(message.body) < QUEUE_MESSAGE_LIMIT
    slimmed = json.dumps(slim(with_resources(1000))).encode()  # the shipped template's body
    assert len(slimmed) < 4096
    assert function_app.argocd(argocd_request(slimmed)).status_code == 202
