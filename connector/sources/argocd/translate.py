"""What an Argo CD notification means: one object per Application, its manifests commit, its
phase from the sync operation and the health, and its event time; the `Observation` the core
tracks. Nothing outside this package knows Argo CD's vocabulary.

Phases and health codes are gitops-engine's (`gitops-engine/pkg/sync/common/types.go`
`OperationPhase`, `gitops-engine/pkg/health/health.go` `HealthStatusCode`, in the argo-cd
repository).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from connector.core.tracking import ObjectRef, Observation, Phase
from connector.queue.envelope import Envelope
from connector.sources.argocd.application import (
    Application,
    IncumbentBody,
    Queued,
    Source,
    Wrapped,
)

KIND = "Application"
_SHA1 = re.compile(r"[0-9a-f]{40}")
# Go's text/template prints a missing value this way (incumbent template fields).
_NO_VALUE = "<no value>"
_RUNNING = frozenset({"Running", "Terminating"})  # an operation still under way
_FAILED = frozenset({"Failed", "Error"})
_WAITING_HEALTH = frozenset({"Progressing", "Missing", "Suspended"})
# Annotations too big and too useless to hand to the outputs.
_SKIPPED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})


@dataclass(frozen=True)
class Report:
    """One notification, whatever its body form, in the terms of the mapping."""

    namespace: str
    name: str
    commit: str | None
    operation: str  # OperationPhase, "" without an operation
    health: str  # HealthStatusCode, "" when unknown
    message: str
    time: datetime | None
    metadata: dict[str, str]

    @property
    def reason(self) -> str:
        return f"{self.operation or 'NoOperation'}/{self.health or 'Unknown'}"


def phase_of(operation: str, health: str) -> Phase | None:
    """Running → progressing; Failed or Error → failed; Degraded → failed (the gate's failure
    grace applies); Succeeded and Healthy → succeeded; Succeeded and still Progressing, Missing or
    Suspended → progressing. Anything else (no operation and healthy, Unknown) says nothing."""
    if operation in _RUNNING:
        return Phase.PROGRESSING
    if operation in _FAILED or health == "Degraded":
        return Phase.FAILED
    if operation == "Succeeded":
        if health == "Healthy":
            return Phase.SUCCEEDED
        if health in _WAITING_HEALTH:
            return Phase.PROGRESSING
    return None


def repository_name(url: str) -> str:
    """The repository's name in a repoURL: its last path segment without `.git`, lowercased.
    Azure DevOps URLs end in it: `https://dev.azure.com/<org>/<project>/_git/<repo>`,
    `git@ssh.dev.azure.com:v3/<org>/<project>/<repo>`."""
    tail = re.split(r"[/:]", url.strip().rstrip("/"))[-1]
    return tail.removesuffix(".git").lower()


def pick_revision(
    revision: str, revisions: Sequence[str], sources: Sequence[Source], manifests: str
) -> str | None:
    """A single-source revision, or, for a multi-source Application, the revision of the source
    whose repository name is `manifests` (AZDO_GITOPS_REPO, case-insensitive); none matching:
    None (another source's commit is not in the manifests repository)."""
    if not revisions:
        return revision or None
    wanted = manifests.strip().lower()
    for index, source in enumerate(sources[: len(revisions)]):
        if wanted and repository_name(source.repo_url) == wanted:
            return revisions[index]
    return None


def commit_of(app: Application, manifests: str) -> str | None:
    """`status.operationState.syncResult`'s revision, else `status.sync`'s; a Git SHA-1 only
    (Helm chart versions and OCI digests are not commits of the manifests repository)."""
    status = app.status
    result = status.operation_state.sync_result if status.operation_state else None
    if result is not None and (result.revision or result.revisions):
        revision = pick_revision(result.revision, result.revisions, result.sources, manifests)
    else:
        sync = status.sync
        compared = sync.compared_to.sources if sync.compared_to else []
        sources = compared or app.spec.sources
        revision = pick_revision(sync.revision, sync.revisions, sources, manifests)
    return _sha(revision)


def _sha(revision: str | None) -> str | None:
    value = (revision or "").strip()
    return value if _SHA1.fullmatch(value) else None


def event_time(app: Application) -> datetime | None:
    """`operationState.finishedAt`, else `startedAt`, else `status.reconciledAt`; None: the
    receive time is used."""
    op = app.status.operation_state
    if op is not None and (op.finished_at or op.started_at):
        return op.finished_at or op.started_at
    return app.status.reconciled_at


def from_application(app: Application, manifests: str) -> Report:
    op = app.status.operation_state
    health = app.status.health
    message = (op.message if op else "") or health.message
    meta = app.metadata
    annotations = {k: v for k, v in meta.annotations.items() if k not in _SKIPPED_ANNOTATIONS}
    return Report(
        namespace=meta.namespace,
        name=meta.name,
        commit=commit_of(app, manifests),
        operation=op.phase if op else "",
        health=health.status,
        message=message,
        time=event_time(app),
        metadata={**annotations, **meta.labels},  # labels win
    )


def from_incumbent(body: IncumbentBody, namespace: str, name: str) -> Report:
    def value(text: str) -> str:
        return "" if text.strip() == _NO_VALUE else text.strip()

    return Report(
        namespace=namespace,
        name=name,
        commit=_sha(value(body.commitid)),
        operation=value(body.phase),
        health=value(body.health),
        message=value(body.message),
        time=None,
        metadata={},
    )


def report_of(queued: Queued) -> Report:
    """The report of a queued body: an incumbent body when the webhook named the object,
    else an Application, bare or wrapped."""
    if queued.name:
        body = IncumbentBody.model_validate(queued.body)
        return from_incumbent(body, queued.namespace, queued.name)
    if "app" in queued.body and "metadata" not in queued.body:
        return from_application(Wrapped.model_validate(queued.body).app, queued.manifests)
    return from_application(Application.model_validate(queued.body), queued.manifests)


def first_line(text: str, limit: int = 200) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def observe(envelope: Envelope, message_id: str) -> Observation:
    """The observation a queued Argo CD notification reports (ValidationError when it is not)."""
    report = report_of(Queued.model_validate(envelope.event))
    summary = first_line(report.message) or f"{report.reason} for {report.name}"
    return Observation(
        cluster=envelope.cluster,
        env=envelope.env,
        obj=ObjectRef(KIND, report.namespace, report.name),
        commit=report.commit,
        phase=phase_of(report.operation, report.health),
        reason=report.reason,
        summary=summary,
        time=report.time or envelope.received_at,
        message_id=message_id,
        is_source=False,
        metadata=report.metadata,
    )
