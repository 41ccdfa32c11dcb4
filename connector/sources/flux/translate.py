"""What a Flux event means: its phase by controller reason, and the `Observation` the core
tracks. The reason tables are Flux's vocabulary; nothing outside this package knows them.
"""

from __future__ import annotations

from connector.core.tracking import ObjectRef, Observation, Phase
from connector.queue.envelope import Envelope
from connector.sources.flux.events import FluxEvent, first_line

# Reasons whose meaning does not follow from severity alone. Anything else: error → failed,
# info → informational (recorded, no phase change). Kinds and reasons are open sets.
_SUCCEEDED_REASONS = frozenset(
    {
        "ReconciliationSucceeded",  # Kustomization (commit_status=update)
        "InstallSucceeded",  # HelmRelease
        "UpgradeSucceeded",
        "TestSucceeded",
        "DriftCorrected",
        "NewArtifact",  # sources
        "Succeeded",
    }
)
_PROGRESSING_REASONS = frozenset(
    {
        "Progressing",  # change sets and "Health check passed" are progress, not results
        "DependencyNotReady",  # transient and info: never a failure
        "HealthCheckCanceled",  # a newer reconciliation took over
        "PendingRelease",
        "UninstallSucceeded",  # part of remediation, not a result
    }
)
# A successful rollback means the wanted release did not stay: the deployment failed.
_FAILED_INFO_REASONS = frozenset({"RollbackSucceeded"})


def classify(event: FluxEvent) -> Phase | None:
    """The phase an event reports, or None when it is informational only."""
    reason = event.reason
    if event.is_error:
        return Phase.FAILED
    if reason in _SUCCEEDED_REASONS:
        return Phase.SUCCEEDED
    if reason in _PROGRESSING_REASONS:
        return Phase.PROGRESSING
    if reason in _FAILED_INFO_REASONS:
        return Phase.FAILED
    if reason == "info":  # helm-controller <= v0.36 puts the severity in the reason
        return _legacy_helm_phase(event.message)
    return None


def _legacy_helm_phase(message: str) -> Phase | None:
    lowered = message.lower()
    # "Helm <action> succeeded": a rollback means the wanted release did not stay (as
    # RollbackSucceeded), an uninstall is remediation in progress (as UninstallSucceeded).
    if "rollback" in lowered and "succeeded" in lowered:
        return Phase.FAILED
    if "uninstall" in lowered and "succeeded" in lowered:
        return Phase.PROGRESSING
    if "succeeded" in lowered:
        return Phase.SUCCEEDED
    if "started" in lowered or "progress" in lowered:
        return Phase.PROGRESSING
    return None


def observe(envelope: Envelope, message_id: str) -> Observation:
    """The observation a queued Flux event reports (ValidationError when it is not one)."""
    event = FluxEvent.model_validate(envelope.event)
    obj = event.involved_object
    return Observation(
        cluster=envelope.cluster,
        env=envelope.env,
        obj=ObjectRef(obj.kind, obj.namespace, obj.name),
        commit=event.commit,
        phase=classify(event),
        reason=event.reason,
        summary=first_line(event.message),
        time=event.timestamp,
        message_id=message_id,
        is_source=event.is_source,
        metadata=dict(event.metadata),
    )
