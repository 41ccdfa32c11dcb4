"""Flux events into observations: the commit of a revision, every reference event's phase, commit
and status, unknown reasons, and classification total over any event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given

from connector.core.tracking import (
    Phase,
)
from connector.queue import envelope
from connector.sources.flux.events import FluxEvent, commit_from_revision
from connector.sources.flux.translate import classify, observe
from tests.conftest import all_event_names, event_bytes
from tests.strategies import flux_event_dicts

SHA = "c8925188500a55dad9563388e537a03dcdded446"
T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("revision", "commit"),
    [
        (f"main@sha1:{SHA}", SHA),
        (f"feature/x@sha1:{SHA}", SHA),
        (f"refs/pull/42/head@sha1:{SHA}", SHA),
        (f"v1.4.2@sha1:{SHA}", SHA),
        (f"sha1:{SHA}", SHA),
        (f"main/{SHA}", SHA),
        (f"HEAD/{SHA}", SHA),
        (f"v1.4.2/{SHA}", SHA),
        ("latest@sha256:" + "ab" * 32, None),
        ("sha256:" + "ab" * 32, None),
        ("6.7.1", None),
        ("6.7.1+" + SHA[:12], None),
        (f"main@sha1:{SHA.upper()}", None),
        (f"main@sha1:{SHA[:39]}", None),
        ("", None),
    ],
)
def test_commit_from_revision_follows_flux_rules(revision, commit):
    assert commit_from_revision(revision) == commit


def test_the_controllers_revision_wins_over_commit_metadata():
    other = "1" * 40
    base = FluxEvent.model_validate_json(event_bytes("kustomization-oci-origin"))
    assert base.commit == SHA  # originRevision wins over an OCI digest revision
    # An annotation event.toolkit.fluxcd.io/commit naming another commit does not move it.
    with_commit = base.model_copy(update={"metadata": {**base.metadata, "commit": other}})
    assert (with_commit.commit, with_commit.claimed_commit) == (SHA, other)
    only_commit = base.model_copy(update={"metadata": {"commit": other}})
    assert only_commit.commit == other
    prefixed = base.model_copy(
        update={"metadata": {"kustomize.toolkit.fluxcd.io/revision": f"main@sha1:{other}"}}
    )
    assert prefixed.commit == other


EXPECTED = {
    "kustomization-succeeded": (Phase.SUCCEEDED, SHA, True),
    "kustomization-progressing-changeset": (Phase.PROGRESSING, SHA, True),
    "kustomization-health-passed": (Phase.PROGRESSING, SHA, True),
    "kustomization-health-failed": (Phase.FAILED, SHA, True),
    "kustomization-reconciliation-failed": (Phase.FAILED, SHA, True),
    "kustomization-dependency-not-ready": (Phase.PROGRESSING, SHA, True),
    "kustomization-legacy-revision": (Phase.SUCCEEDED, SHA, True),
    "kustomization-oci-origin": (Phase.SUCCEEDED, SHA, True),
    "kustomization-with-cluster-env": (Phase.SUCCEEDED, SHA, True),
    "kustomization-access-denied": (Phase.FAILED, None, False),
    "helmrelease-upgrade-succeeded": (Phase.SUCCEEDED, None, False),
    "helmrelease-upgrade-failed": (Phase.FAILED, None, False),
    "helmrelease-legacy-info": (Phase.SUCCEEDED, None, False),
    "helmrelease-drift-detected": (Phase.FAILED, None, False),
    "gitrepository-new-artifact": (Phase.SUCCEEDED, SHA, False),
    "gitrepository-auth-failed": (Phase.FAILED, None, False),
    "ocirepository-new-artifact": (Phase.SUCCEEDED, None, False),
    "imagepolicy-unknown-kind": (Phase.SUCCEEDED, None, False),
    "flux-test-vector": (None, None, False),
}


def test_every_reference_event_is_covered():
    assert set(EXPECTED) == set(all_event_names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reference_events_map_to_phase_commit_and_status(name):
    phase, commit, sets_status = EXPECTED[name]
    env = envelope.decode(envelope.encode("c", "e", T0, event_bytes(name)))
    assert isinstance(env, envelope.Envelope)
    obs = observe(env, "m")
    assert (obs.phase, obs.commit, obs.sets_status) == (phase, commit, sets_status)


@pytest.mark.parametrize(
    ("reason", "severity", "phase"),
    [
        ("SomethingNew", "error", Phase.FAILED),
        ("SomethingNew", "info", None),
        ("DependencyNotReady", "info", Phase.PROGRESSING),
        ("HealthCheckCanceled", "info", Phase.PROGRESSING),
        ("RollbackSucceeded", "info", Phase.FAILED),
        ("UninstallSucceeded", "info", Phase.PROGRESSING),
        ("InstallSucceeded", "info", Phase.SUCCEEDED),
        ("TestFailed", "error", Phase.FAILED),
        ("error", "error", Phase.FAILED),
    ],
)
def test_unknown_reasons_never_crash_and_severity_decides(reason, severity, phase):
    raw = FluxEvent.model_validate_json(event_bytes("kustomization-succeeded"))
    assert classify(raw.model_copy(update={"reason": reason, "severity": severity})) == phase


@given(flux_event_dicts())
def test_classification_is_total(event):
    from tests.flux_encoding import go_json

    parsed = FluxEvent.model_validate_json(go_json(event))
    assert classify(parsed) in (None, *Phase)
