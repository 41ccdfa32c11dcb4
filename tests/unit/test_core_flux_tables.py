"""The reason and source-kind tables, entry by entry, against the Flux controllers' own constants.

Each row names the file (and the line, at the commit given) where Flux defines or emits the value,
so that a row can be re-checked when Flux changes. Sources read for these facts:
- fluxcd/pkg @ e2cfd1a `apis/meta/conditions.go`
- fluxcd/kustomize-controller @ 186fb3b `internal/controller/kustomization_controller.go`
- fluxcd/helm-controller @ 0f61a86 `api/v2/condition_types.go`, `internal/reconcile/*.go`
- fluxcd/source-controller @ 39b711b `api/v1/*_types.go`, `internal/controller/*_controller.go`
"""

from __future__ import annotations

import pytest

from connector.core.tracking import Phase
from connector.queue.envelope import Envelope
from connector.sources.flux import translate
from connector.sources.flux.events import SOURCE_KINDS, FluxEvent
from connector.sources.flux.translate import classify, observe

SHA = "c8925188500a55dad9563388e537a03dcdded446"

# (reason, phase of an info event with that reason, where Flux defines or emits it)
REASONS: list[tuple[str, Phase, str]] = [
    ("ReconciliationSucceeded", Phase.SUCCEEDED, "pkg apis/meta/conditions.go:146"),
    ("InstallSucceeded", Phase.SUCCEEDED, "helm-controller api/v2/condition_types.go:41"),
    ("UpgradeSucceeded", Phase.SUCCEEDED, "helm-controller api/v2/condition_types.go:49"),
    ("TestSucceeded", Phase.SUCCEEDED, "helm-controller api/v2/condition_types.go:57"),
    (
        "DriftCorrected",
        Phase.SUCCEEDED,
        "helm-controller internal/reconcile/correct_cluster_drift.go:113",
    ),
    (
        "NewArtifact",
        Phase.SUCCEEDED,
        "source-controller internal/controller/gitrepository_controller.go:381",
    ),
    ("Succeeded", Phase.SUCCEEDED, "pkg apis/meta/conditions.go:83 (source-controller :386)"),
    ("Progressing", Phase.PROGRESSING, "pkg apis/meta/conditions.go:100"),
    ("DependencyNotReady", Phase.PROGRESSING, "pkg apis/meta/conditions.go:112"),
    ("HealthCheckCanceled", Phase.PROGRESSING, "pkg apis/meta/conditions.go:162"),
    ("PendingRelease", Phase.PROGRESSING, "helm-controller internal/reconcile/unlock.go:126"),
    ("UninstallSucceeded", Phase.PROGRESSING, "helm-controller api/v2/condition_types.go:73"),
    ("RollbackSucceeded", Phase.FAILED, "helm-controller api/v2/condition_types.go:65"),
]

# Kinds whose events say where manifests come from (source-controller api/v1).
SOURCE_KIND_ROWS: list[tuple[str, str]] = [
    ("GitRepository", "source-controller api/v1/gitrepository_types.go:29"),
    ("OCIRepository", "source-controller api/v1/ocirepository_types.go:29"),
    ("Bucket", "source-controller api/v1/bucket_types.go:29"),
    ("HelmChart", "source-controller api/v1/helmchart_types.go:28"),
    ("HelmRepository", "source-controller api/v1/helmrepository_types.go:30"),
    ("ExternalArtifact", "source-controller api/v1/externalartifact_types.go:28"),
]

# Kinds that report what runs in the cluster, and one kind the connector does not know.
DEPLOYED_KINDS = ["Kustomization", "HelmRelease", "ImagePolicy"]


def event(*, reason: str, kind: str = "Kustomization", severity: str = "info") -> FluxEvent:
    return FluxEvent.model_validate(
        {
            "involvedObject": {"kind": kind, "namespace": "flux-system", "name": "apps"},
            "severity": severity,
            "timestamp": "2026-05-14T09:12:50Z",
            "message": "text",
            "reason": reason,
            "metadata": {"revision": f"main@sha1:{SHA}"},
        }
    )


@pytest.mark.parametrize(("reason", "phase", "source"), REASONS, ids=[r[0] for r in REASONS])
def test_each_flux_reason_maps_to_its_phase(reason, phase, source):
    assert classify(event(reason=reason)) == phase, source


@pytest.mark.parametrize(("reason", "phase", "source"), REASONS, ids=[r[0] for r in REASONS])
def test_error_severity_fails_whatever_the_reason(reason, phase, source):
    assert classify(event(reason=reason, severity="error")) == Phase.FAILED, source


def test_reason_sets_hold_exactly_the_table():
    """Adding a reason without a cited row fails here as much as dropping one does."""

    def rows(phase: Phase) -> frozenset[str]:
        return frozenset(r for r, p, _ in REASONS if p == phase)

    assert rows(Phase.SUCCEEDED) == translate._SUCCEEDED_REASONS
    assert rows(Phase.PROGRESSING) == translate._PROGRESSING_REASONS
    assert rows(Phase.FAILED) == translate._FAILED_INFO_REASONS


@pytest.mark.parametrize(("kind", "source"), SOURCE_KIND_ROWS, ids=[k for k, _ in SOURCE_KIND_ROWS])
def test_source_kinds_never_set_a_status(kind, source):
    ev = event(reason="NewArtifact", kind=kind)
    envelope = Envelope(
        cluster="c1",
        env="dev",
        received_at=ev.timestamp,
        event=ev.model_dump(mode="json", by_alias=True),
    )
    obs = observe(envelope, "m")
    assert ev.is_source, source
    assert (obs.is_source, obs.commit, obs.phase) == (True, SHA, Phase.SUCCEEDED)
    assert not obs.sets_status, source


@pytest.mark.parametrize("kind", DEPLOYED_KINDS)
def test_deployed_kinds_set_a_status(kind):
    ev = event(reason="ReconciliationSucceeded", kind=kind)
    obs = observe(
        Envelope(
            cluster="c1",
            env="dev",
            received_at=ev.timestamp,
            event=ev.model_dump(mode="json", by_alias=True),
        ),
        "m",
    )
    assert not ev.is_source
    assert obs.sets_status


def test_source_kind_set_holds_exactly_the_table():
    assert frozenset(k for k, _ in SOURCE_KIND_ROWS) == SOURCE_KINDS


def test_kinds_match_case_sensitively():
    """Kubernetes kinds are case-sensitive identifiers; `gitrepository` is not a Flux kind."""
    assert not event(reason="NewArtifact", kind="gitrepository").is_source
