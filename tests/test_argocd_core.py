"""The Argo CD mapping, table by table: phase, revision, repository name, time, the secret."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from connector.core.tracking import Phase
from connector.sources.argocd.application import Application, Source
from connector.sources.argocd.auth import authorized, presented_secret
from connector.sources.argocd.translate import (
    commit_of,
    event_time,
    phase_of,
    pick_revision,
    repository_name,
)
from tests.argocd import A, application

P, S, F = Phase.PROGRESSING, Phase.SUCCEEDED, Phase.FAILED


@pytest.mark.parametrize(
    ("operation", "health", "phase"),
    [
        # OperationPhase: gitops-engine/pkg/sync/common/types.go; health codes: health.go
        ("Running", "Healthy", P),
        ("Running", "Degraded", P),  # mid-sync: the operation is not over
        ("Terminating", "Healthy", P),
        ("Failed", "Healthy", F),
        ("Error", "Progressing", F),
        ("Succeeded", "Healthy", S),
        ("Succeeded", "Progressing", P),
        ("Succeeded", "Missing", P),
        ("Succeeded", "Suspended", P),
        ("Succeeded", "Degraded", F),
        ("Succeeded", "Unknown", None),
        ("Succeeded", "", None),
        ("", "Degraded", F),  # on-health-degraded without an operation
        ("", "Healthy", None),
        ("", "", None),
        ("<no value>", "Healthy", None),
    ],
)
def test_phase_by_operation_and_health(operation, health, phase):
    assert phase_of(operation, health) == phase


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://dev.azure.com/fabrikam/proj/_git/manifests", "manifests"),
        ("https://fabrikam@dev.azure.com/fabrikam/proj/_git/Manifests/", "manifests"),
        ("git@ssh.dev.azure.com:v3/fabrikam/proj/manifests", "manifests"),
        ("https://github.com/fabrikam/manifests.git", "manifests"),
        ("https://stefanprodan.github.io/podinfo", "podinfo"),
        ("manifests", "manifests"),
    ],
)
def test_repository_name_is_the_last_path_segment(url, name):
    assert repository_name(url) == name


def test_multi_source_picks_the_manifests_repository_revision():
    sources = [Source(repoURL="https://charts.example/x"), Source(repoURL="ssh://h/p/_git/hld")]
    assert pick_revision("", ["1.2.3", A], sources, "HLD") == A
    assert pick_revision("", ["1.2.3", A], sources, "other") is None
    assert pick_revision("", ["1.2.3", A], sources, "") is None
    assert pick_revision(A, [], [], "anything") == A
    assert pick_revision("", [], [], "x") is None


@pytest.mark.parametrize(
    ("name", "commit"),
    [
        ("sync-running-kustomize", A),
        ("deployed-kustomize", A),
        ("health-degraded-helm", A),
        ("deployed-multi-source", A),  # the manifests source, not the chart or the add-ons
        ("out-of-sync-new-revision", A),  # the synced one, not sync.revision
    ],
)
def test_commit_from_the_sync_result(name, commit):
    assert commit_of(Application.model_validate(application(name)), "manifests") == commit


def test_commit_falls_back_to_sync_revision_and_ignores_chart_versions():
    doc = application("out-of-sync-new-revision")
    del doc["status"]["operationState"]
    app = Application.model_validate(doc)
    assert commit_of(app, "manifests") == doc["status"]["sync"]["revision"]
    doc["status"]["sync"]["revision"] = "6.7.1"
    assert commit_of(Application.model_validate(doc), "manifests") is None


def test_multi_source_without_the_manifests_repository_has_no_commit():
    app = Application.model_validate(application("deployed-multi-source"))
    assert commit_of(app, "some-other-repo") is None


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_event_time_prefers_finished_then_started_then_reconciled():
    doc = application("deployed-kustomize")
    op = doc["status"]["operationState"]
    assert event_time(Application.model_validate(doc)) == at(op["finishedAt"])
    del op["finishedAt"]
    assert event_time(Application.model_validate(doc)) == at(op["startedAt"])
    del doc["status"]["operationState"]
    assert event_time(Application.model_validate(doc)) == at(doc["status"]["reconciledAt"])
    del doc["status"]["reconciledAt"]
    assert event_time(Application.model_validate(doc)) is None


def _basic(user_password: bytes) -> str:
    return "Basic " + base64.b64encode(user_password).decode()


@pytest.mark.parametrize(
    ("header", "secret"),
    [
        ("Bearer s3cret", b"s3cret"),
        ("bearer   s3cret  ", b"s3cret"),
        (_basic(b"argocd:s3cret"), b"s3cret"),
        (_basic(b":s3cret"), b"s3cret"),
        (_basic(b"argocd:pa:ss"), b"pa:ss"),  # only the first ':' separates (RFC 7617)
        (_basic(b"argocd:"), None),
        (_basic(b"no-colon"), None),
        ("Basic !!!", None),
        ("Bearer", None),
        ("Token s3cret", None),
        ("", None),
        (None, None),
    ],
)
def test_presented_secret(header, secret):
    assert presented_secret(header) == secret


def test_authorized_by_any_of_the_rotated_secrets_only():
    secrets = (b"old-secret", b"new-secret")
    assert authorized("Bearer old-secret", secrets)
    assert authorized(_basic(b"u:new-secret"), secrets)
    assert not authorized("Bearer new-secre", secrets)
    assert not authorized("Bearer new-secret", ())
