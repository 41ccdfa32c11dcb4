"""The Argo CD mapping, table by table: phase, revision, repository name, time, the secret."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from connector.core.tracking import ObjectRef, Phase
from connector.queue.envelope import Envelope
from connector.sources.argocd.application import Application, Source
from connector.sources.argocd.auth import SHARED, authorized, owner, presented_secret
from connector.sources.argocd.translate import (
    assessed_after_sync,
    commit_of,
    event_time,
    first_line,
    observe,
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


def test_event_time_is_the_latest_of_the_operation_comparison_and_health_times():
    doc = application("deployed-kustomize")
    status = doc["status"]
    op = status["operationState"]
    assert event_time(Application.model_validate(doc)) == at(status["reconciledAt"])  # 09:13:30
    del status["reconciledAt"]
    assert event_time(Application.model_validate(doc)) == at("2026-05-14T09:13:20Z")  # health
    del status["health"]["lastTransitionTime"]
    assert event_time(Application.model_validate(doc)) == at(op["finishedAt"])
    del op["finishedAt"]
    assert event_time(Application.model_validate(doc)) == at(op["startedAt"])
    del status["operationState"]
    assert event_time(Application.model_validate(doc)) is None


@pytest.mark.parametrize(
    ("phase", "finished", "reconciled", "expected"),
    [
        (None, None, None, True),  # never synced: nothing to be after
        ("Running", None, "2026-05-14T09:13:00Z", True),  # not finished
        ("Failed", "2026-05-14T09:13:00Z", "2026-05-14T09:12:00Z", True),  # no success to follow
        ("Succeeded", None, "2026-05-14T09:12:00Z", True),  # no finish time known
        ("Succeeded", "2026-05-14T09:13:00Z", "2026-05-14T09:12:00Z", False),  # stale health
        ("Succeeded", "2026-05-14T09:13:00Z", "2026-05-14T09:13:00Z", False),  # the same second
        ("Succeeded", "2026-05-14T09:13:00Z", "2026-05-14T09:13:01Z", True),
        ("Succeeded", "2026-05-14T09:13:00Z", None, False),  # never compared since
    ],
)
def test_health_counts_only_once_assessed_after_a_successful_sync(
    phase, finished, reconciled, expected
):
    doc = application("deployed-kustomize")
    status = doc["status"]
    status.pop("reconciledAt", None)
    if reconciled is not None:
        status["reconciledAt"] = reconciled
    if phase is None:
        status.pop("operationState", None)
    else:
        op = status["operationState"]
        op["phase"] = phase
        op.pop("finishedAt", None)
        if finished is not None:
            op["finishedAt"] = finished
    assert assessed_after_sync(Application.model_validate(doc)) is expected


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


def test_the_secret_names_its_instance():
    secrets: tuple[tuple[str, bytes], ...]
    secrets = (("argocd-dev", b"dev"), ("argocd-prod", b"new"), ("argocd-prod", b"old"))
    secrets += ((SHARED, b"shared"),)
    assert owner("Bearer dev", secrets) == "argocd-dev"
    assert owner("Bearer old", secrets) == "argocd-prod"  # rotation: both are the instance's
    assert owner(_basic(b"u:new"), secrets) == "argocd-prod"
    assert owner("Bearer shared", secrets) == SHARED == ""
    assert owner("Bearer nope", secrets) is None
    assert owner("Bearer de", secrets) is None
    assert owner(None, secrets) is None
    assert owner("Bearer dev", ()) is None
    # The first owner of a secret is the one named (settings refuse a secret shared by two).
    assert owner("Bearer x", (("a", b"x"), ("b", b"x"))) == "a"


def test_commit_without_a_sync_result_reads_the_compared_sources_first():
    doc = application("deployed-multi-source")
    del doc["status"]["operationState"]
    assert commit_of(Application.model_validate(doc), "manifests") == A
    # `comparedTo.sources` are what `sync.revisions` were computed for: they win over the spec.
    spec = doc["spec"]["sources"]
    doc["spec"]["sources"] = [spec[0], spec[2], spec[1]]
    assert commit_of(Application.model_validate(doc), "manifests") == A
    del doc["status"]["sync"]["comparedTo"]
    third = doc["status"]["sync"]["revisions"][2]
    assert commit_of(Application.model_validate(doc), "manifests") == third


def test_repository_name_strips_only_slashes_at_the_end():
    assert repository_name("https://dev.azure.com/o/p/_git/BOX") == "box"
    assert repository_name("https://dev.azure.com/o/p/_git/box//") == "box"


def test_a_basic_token_outside_the_base64_alphabet_carries_no_secret():
    token = base64.b64encode(b"argocd:s3cret").decode()
    assert presented_secret(f"Basic {token}") == b"s3cret"
    assert presented_secret(f"Basic {token}*") is None
    assert presented_secret(f"Basic {token[:4]}.{token[4:]}") is None


@pytest.mark.parametrize("header", [None, "", "Bearer", "Token s3cret", "Basic !!!"])
def test_no_secret_presented_is_never_authorized(header):
    assert not authorized(header, (b"", b"s3cret"))


RECEIVED = datetime(2026, 5, 14, 9, 30, tzinfo=UTC)


def queued(body: dict, **named: str) -> Envelope:
    """The envelope ingest queues: the body as it came, plus what the URL and settings said."""
    event = {"manifests": "manifests", "body": body} | named
    return Envelope(cluster="aks-dev-1", env="dev", received_at=RECEIVED, event=event)


def test_an_application_is_observed_with_its_commit_phase_time_and_labels():
    doc = application("deployed-kustomize")
    doc["metadata"]["annotations"]["gitops-connector/env"] = "from-annotation"
    doc["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    seen = observe(queued(doc), "m1")
    assert (seen.cluster, seen.env, seen.message_id) == ("aks-dev-1", "dev", "m1")
    assert seen.obj == ObjectRef("Application", "argocd", "guestbook")
    assert (seen.commit, seen.phase, seen.reason) == (A, Phase.SUCCEEDED, "Succeeded/Healthy")
    assert seen.summary == "successfully synced (all tasks run)"
    assert seen.time == at(doc["status"]["reconciledAt"])  # the comparison after the sync
    assert seen.is_source is False
    assert seen.metadata["gitops-connector/env"] == "dev"  # labels win over annotations
    assert "kubectl.kubernetes.io/last-applied-configuration" not in seen.metadata
    subscribed = "notifications.argoproj.io/subscribe.on-deployed.gitops-connector"
    assert seen.metadata[subscribed] == ""


def test_a_wrapped_application_is_the_same_observation():
    doc = application("deployed-kustomize")
    assert observe(queued({"app": doc}), "m1") == observe(queued(doc), "m1")
    # An Application that happens to have an `app` field is still read as the Application.
    assert observe(queued({**doc, "app": {}}), "m1") == observe(queued(doc), "m1")


@pytest.mark.parametrize("wrap", [False, True], ids=["bare", "wrapped"])
def test_a_multi_source_application_is_observed_on_the_manifests_repository(wrap):
    doc = application("deployed-multi-source")
    body = {"app": doc} if wrap else doc
    assert observe(queued(body), "m1").commit == A
    assert observe(queued(body, manifests="platform-addons"), "m1").commit == (
        "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
    )
    assert observe(queued(body, manifests="other"), "m1").commit is None


def test_without_an_operation_the_health_says_the_phase_message_and_reason():
    doc = application("deployed-kustomize")
    del doc["status"]["operationState"]
    doc["status"]["health"] = {"status": "Degraded", "message": "Deployment exceeded its deadline"}
    seen = observe(queued(doc), "m1")
    assert (seen.phase, seen.reason) == (Phase.FAILED, "NoOperation/Degraded")
    assert seen.summary == "Deployment exceeded its deadline"
    assert seen.time == at(doc["status"]["reconciledAt"])
    del doc["status"]["reconciledAt"]
    doc["status"]["health"] = {}
    seen = observe(queued(doc), "m1")
    assert (seen.phase, seen.reason) == (None, "NoOperation/Unknown")
    assert seen.summary == "NoOperation/Unknown for guestbook"
    assert seen.time == RECEIVED


INCUMBENT = {
    "commitid": A,
    "phase": "Failed",
    "sync_status": "Synced",
    "health": "Degraded",
    "message": "one or more objects failed to apply\nsecond line",
}


@pytest.mark.parametrize(
    ("body", "commit", "phase", "reason", "summary"),
    [
        (INCUMBENT, A, Phase.FAILED, "Failed/Degraded", "one or more objects failed to apply"),
        (
            {**INCUMBENT, "commitid": f" {A} ", "phase": " Succeeded ", "health": "Healthy"},
            A,
            Phase.SUCCEEDED,
            "Succeeded/Healthy",
            "one or more objects failed to apply",
        ),
        (
            {"commitid": "<no value>", "phase": "<no value>", "health": " <no value> "},
            None,
            None,
            "NoOperation/Unknown",
            "NoOperation/Unknown for podinfo",
        ),
        (
            {**INCUMBENT, "commitid": "6.7.1", "message": " <no value>"},
            None,
            Phase.FAILED,
            "Failed/Degraded",
            "Failed/Degraded for podinfo",
        ),
        (
            {**INCUMBENT, "commitid": A.upper()},
            None,
            Phase.FAILED,
            "Failed/Degraded",
            "one or more objects failed to apply",
        ),
        (
            {**INCUMBENT, "commitid": A[:39]},
            None,
            Phase.FAILED,
            "Failed/Degraded",
            "one or more objects failed to apply",
        ),
        (
            {**INCUMBENT, "commitid": A + A[:24]},  # as long as an OCI sha256 digest
            None,
            Phase.FAILED,
            "Failed/Degraded",
            "one or more objects failed to apply",
        ),
    ],
)
def test_an_incumbent_body_is_observed_for_the_named_object(body, commit, phase, reason, summary):
    seen = observe(queued(body, name="podinfo", namespace="apps"), "m2")
    assert seen.obj == ObjectRef("Application", "apps", "podinfo")
    assert (seen.commit, seen.phase, seen.reason, seen.summary) == (commit, phase, reason, summary)
    assert seen.time == RECEIVED  # the template carries no time
    assert seen.metadata == {}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("one\ntwo", "one"),
        ("\n  \n  two  \nthree", "two"),
        ("", ""),
        (" \n ", ""),
        ("x" * 200, "x" * 200),
        ("x" * 201, "x" * 199 + "…"),
    ],
)
def test_first_line_of_a_message(text, line):
    assert first_line(text) == line
