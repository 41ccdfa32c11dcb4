"""What Argo CD notifications' `webhook` service posts, as pydantic models: the Application as
`{{.app | toJson}}` renders it (bare or wrapped as `{"app": …}`), and the incumbent connector's
template body. Lenient on fields we do not use, strict on those we do.

Field names are Argo CD's JSON tags in `pkg/apis/application/v1alpha1/types.go`
(github.com/argoproj/argo-cd, snapshot 37ee009); the incumbent body is the template in
github.com/microsoft/gitops-connector `README.md` ("Configure ArgoCD to send notifications"),
read by `src/operators/argo_gitops_operator.py` (snapshot 45a3ec2).
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from connector.core.names import ObjectPart

_LENIENT = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class ObjectMeta(BaseModel):
    """`metav1.ObjectMeta` (types.go `Application.ObjectMeta`, json "metadata")."""

    model_config = _LENIENT

    name: ObjectPart
    namespace: ObjectPart
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Source(BaseModel):
    """`ApplicationSource`: only `repoURL` (json "repoURL") matters to us."""

    model_config = _LENIENT

    repo_url: str = Field(default="", alias="repoURL")


class Destination(BaseModel):
    """`ApplicationDestination`: json "server", "namespace", "name"."""

    model_config = _LENIENT

    name: str = ""
    server: str = ""


class Spec(BaseModel):
    """`ApplicationSpec`: json "source", "sources", "destination"."""

    model_config = _LENIENT

    source: Source | None = None
    sources: list[Source] = Field(default_factory=list)
    destination: Destination = Field(default_factory=Destination)


class SyncStatus(BaseModel):
    """`SyncStatus` (json "status", "revision", "revisions"); `ComparedTo` (json "comparedTo")
    holds the sources the revisions are for."""

    model_config = _LENIENT

    status: str = ""
    revision: str = ""
    revisions: list[str] = Field(default_factory=list)
    compared_to: Spec | None = Field(default=None, alias="comparedTo")


class Health(BaseModel):
    """`AppHealthStatus`: json "status", "message", "lastTransitionTime". Codes are
    gitops-engine's `HealthStatusCode` (gitops-engine/pkg/health/health.go)."""

    model_config = _LENIENT

    status: str = ""
    message: str = ""
    last_transition_time: AwareDatetime | None = Field(default=None, alias="lastTransitionTime")


class SyncResult(BaseModel):
    """`SyncOperationResult`: json "revision", "revisions", "source", "sources"."""

    model_config = _LENIENT

    revision: str = ""
    revisions: list[str] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)


class OperationState(BaseModel):
    """`OperationState`: json "phase" (gitops-engine/pkg/sync/common/types.go `OperationPhase`),
    "message", "syncResult", "startedAt", "finishedAt"."""

    model_config = _LENIENT

    phase: str = ""
    message: str = ""
    sync_result: SyncResult | None = Field(default=None, alias="syncResult")
    started_at: AwareDatetime | None = Field(default=None, alias="startedAt")
    finished_at: AwareDatetime | None = Field(default=None, alias="finishedAt")


class Status(BaseModel):
    """`ApplicationStatus`: json "sync", "health", "reconciledAt", "operationState"."""

    model_config = _LENIENT

    sync: SyncStatus = Field(default_factory=SyncStatus)
    health: Health = Field(default_factory=Health)
    reconciled_at: AwareDatetime | None = Field(default=None, alias="reconciledAt")
    operation_state: OperationState | None = Field(default=None, alias="operationState")


class Application(BaseModel):
    """`Application` (json "metadata", "spec", "status")."""

    model_config = _LENIENT

    metadata: ObjectMeta
    spec: Spec = Field(default_factory=Spec)
    status: Status = Field(default_factory=Status)


class Wrapped(BaseModel):
    """`{"app": {{.app | toJson}}}`: the Application inside a template's own object."""

    model_config = _LENIENT

    app: Application


class IncumbentBody(BaseModel):
    """The incumbent connector's template body. Go templates render a missing field as
    `<no value>`, so every string is taken as it comes and judged in translation.
    `gitops_connector_config_name` is not in the incumbent's template: a field its users may add
    to name the object in the body instead of `?app=`."""

    model_config = _LENIENT

    commitid: str = ""
    phase: str = ""
    sync_status: str = ""
    health: str = ""
    message: str = ""
    resources: list[Any] | None = None
    config_name: str = Field(default="", alias="gitops_connector_config_name")


class Queued(BaseModel):
    """The event as queued: the body as it arrived, with what the webhook URL and the settings
    said about it (the translator reads no settings and no URL)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    manifests: str  # AZDO_GITOPS_REPO: picks the revision of a multi-source Application
    name: str = ""  # the object of an incumbent body (`?app=` or its config name)
    namespace: str = ""
    body: dict[str, Any]
