"""Argo CD end to end: webhook → queue → processor → Azurite + the fake Azure DevOps, through
commit statuses and gates, as test_statuses_flow.py and test_gates.py do for Flux."""

from __future__ import annotations

import pytest

import function_app
from tests.argocd import SECRET, A, B, application, argocd_request
from tests.integration.test_gates import completions, plan, register
from tests.world import REPO, latest, statuses_by_context

pytestmark = pytest.mark.azurite

GUESTBOOK = "aks-dev-1/Application/argocd/guestbook"


@pytest.fixture
def argo(world):
    world.configure(ARGOCD_WEBHOOK_SECRET=SECRET)
    world.azdo.add_commit(REPO, A, "Merged PR 41: guestbook 6.7.1")
    world.azdo.add_commit(REPO, B, "Merged PR 42: guestbook 6.7.2", parents=[A])
    return world


def send(world, name_or_doc, **params: str) -> None:
    doc = application(name_or_doc) if isinstance(name_or_doc, str) else name_or_doc
    resp = function_app.argocd(argocd_request(doc, params=params))
    assert resp.status_code == 202, resp.get_body()
    world.deliver_queued()


def test_rollout_posts_pending_then_succeeded_per_application_and_environment(argo):
    for trigger in ("sync-running-kustomize", "sync-succeeded-kustomize", "deployed-kustomize"):
        send(argo, trigger)
    assert statuses_by_context(argo.azdo, A) == {
        GUESTBOOK: ["pending", "succeeded"],
        "env/dev": ["pending", "succeeded"],
    }


def test_redelivered_and_retried_notifications_write_nothing_more(argo):
    send(argo, "deployed-kustomize")
    writes = len(argo.azdo.status_writes())
    doc = application("deployed-kustomize")
    assert function_app.argocd(argocd_request(doc)).status_code == 202
    assert function_app.argocd(argocd_request(doc)).status_code == 202  # Argo CD's retry
    argo.deliver_queued(redeliver=True)
    send(argo, "out-of-sync-new-revision")  # a later report of the same synced commit
    assert len(argo.azdo.status_writes()) == writes
    assert statuses_by_context(argo.azdo, B) == {}  # seen, not synced: no status


def test_gate_completes_once_the_application_is_deployed(argo):
    headers = plan(argo)
    status, _ = register(argo, headers, environment="dev", commit=A)
    assert status == 200
    argo.deliver_queued()
    send(argo, "sync-running-kustomize")
    send(argo, "sync-succeeded-kustomize")
    assert completions(argo) == []
    send(argo, "deployed-kustomize")
    [done] = completions(argo, headers)
    assert done["result"] == "succeeded"


def test_failed_hook_fails_the_status_and_the_gate(argo):
    headers = plan(argo)
    register(argo, headers, environment="dev", commit=A)
    argo.deliver_queued()
    send(argo, "sync-running-kustomize")
    send(argo, "sync-failed-hook")
    final = latest(argo.azdo, A)
    assert final[GUESTBOOK]["state"] == "failed"
    assert "backoff limit" in final[GUESTBOOK]["description"]
    assert final["env/dev"]["state"] == "failed"
    [done] = completions(argo, headers)
    assert done["result"] == "failed"


def test_degraded_helm_application_fails_after_the_grace(argo):
    argo.configure(ARGOCD_WEBHOOK_SECRET=SECRET, GATE_FAILURE_GRACE_SECONDS="600")
    headers = plan(argo)
    register(argo, headers, environment="dev", commit=A)
    argo.deliver_queued()
    send(argo, "health-degraded-helm")
    podinfo = "aks-dev-1/Application/argocd/podinfo"
    assert latest(argo.azdo, A)[podinfo]["state"] == "failed"
    assert completions(argo) == []  # within the grace: it may recover
    healthy = application("health-degraded-helm")
    # It recovers on the same revision: a later comparison finds it Healthy.
    recovered = "2026-05-14T09:20:00Z"
    healthy["status"]["health"] = {"status": "Healthy", "lastTransitionTime": recovered}
    healthy["status"]["reconciledAt"] = recovered
    send(argo, healthy)
    assert statuses_by_context(argo.azdo, A)[podinfo] == ["failed", "succeeded"]
    assert [e["result"] for e in completions(argo, headers)] == ["succeeded"]


def test_multi_source_application_reports_on_the_manifests_commit(argo):
    send(argo, "deployed-multi-source")
    assert latest(argo.azdo, A)["aks-dev-1/Application/argocd/podinfo-multi"]["state"] == (
        "succeeded"
    )


def test_clusters_from_query_parameters_fan_in(argo):
    argo.configure(
        ARGOCD_WEBHOOK_SECRET=SECRET,
        ENVIRONMENTS='{"prod": {"clusters": ["prod-eu", "prod-us"]}}',
    )
    headers = plan(argo)
    register(argo, headers, environment="prod", commit=A)
    argo.deliver_queued()
    send(argo, "deployed-kustomize", cluster="prod-eu", env="prod")
    assert completions(argo) == []
    send(argo, "deployed-kustomize", cluster="prod-us", env="prod")
    assert [e["result"] for e in completions(argo, headers)] == ["succeeded"]
