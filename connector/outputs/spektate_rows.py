"""What the connector writes into Spektate's tables: the notification row of a state change (its
id and its subscriber-payload shape), the deployment row's links, and the two tables' protocols.
Where each field comes from and what the dashboard shows of it: `connector.outputs.spektate`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Final, Protocol
from urllib.parse import quote

from azure.data.tables import UpdateMode

from connector.core.links import Link
from connector.core.tracking import ObjectState, Observation, Phase

GITOPS_OPERATOR: Final = "Flux"
MESSAGE_LIMIT: Final = 1024  # Table strings hold 32K UTF-16 chars; Flux messages reach ~39,000
REASON_LIMIT: Final = 200
SUMMARY_SEPARATOR: Final = " \u2013 "  # an en dash: Flux's own text often has hyphens
SHORT_SHA: Final = 7
STATES: Final = {Phase.PROGRESSING: "pending", Phase.SUCCEEDED: "succeeded", Phase.FAILED: "failed"}
HLD_COMMIT_KEY: Final = "hldCommit"
CHANGE_REQUEST_KEY: Final = "change_request"
# Ours alone in the deployments row; Spektate reads only the properties it knows
# (spektate `packages/spektate/src/IDeployment.ts`, `parseDeploymentRow`), so it is harmless.
UPDATED_PROPERTY: Final = "fluxUpdatedAt"


class NotificationTable(Protocol):
    """The `flux` table: an azure-data-tables `TableClient` fits."""

    @property
    def table_name(self) -> str: ...

    def create_table(self) -> Any: ...

    def get_entity(
        self, partition_key: str, row_key: str, *, select: list[str] | None = None
    ) -> Mapping[str, Any]: ...

    def create_entity(self, entity: Mapping[str, Any]) -> Mapping[str, Any]: ...


class DeploymentsTable(Protocol):
    """Spektate's deployments table: an azure-data-tables `TableClient` fits."""

    def query_entities(
        self, query_filter: str, *, parameters: dict[str, Any] | None = None
    ) -> Iterable[Mapping[str, Any]]: ...

    def update_entity(
        self, entity: Mapping[str, Any], mode: UpdateMode = ...
    ) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class DeploymentLinks:
    """What identifies the Spektate deployment row of an observation."""

    hld_commit: str | None
    pull_request: str | None


LinkResolver = Callable[[Observation], DeploymentLinks]


def change_id(commit: str, obs: Observation, state: ObjectState) -> str:
    """A stable id of one recorded state change: the same for every redelivery and periodic
    re-send of it (the state's reason stays the one that made the change), different for a new
    phase. Length-prefixed parts, so no two different tuples share an id."""
    digest = hashlib.sha256(b"state-change\0")
    obj = obs.obj
    for part in (commit, obs.env, obs.cluster, obj.kind, obj.namespace, obj.name):
        _feed(digest, part)
    _feed(digest, state.phase.value)
    _feed(digest, state.reason)
    return digest.hexdigest()[:32]


def _feed(digest: Any, part: str) -> None:
    data = part.encode()
    digest.update(len(data).to_bytes(8, "big"))
    digest.update(data)


def panel_message(obs: Observation, state: ObjectState) -> str:
    """The one text the dashboard's Flux panel shows per notification (its Message column; the
    other column is the row's time), so it names where, what, the phase and the reason:
    `prod/prod-eu Kustomization/flux-system/apps: succeeded (ReconciliationSucceeded)`, then
    `SUMMARY_SEPARATOR` and the first line of Flux's message."""
    head = f"{obs.env}/{obs.cluster} {obs.obj}: {STATES[state.phase]}"
    head += f" ({_cap(state.reason, REASON_LIMIT)})" if state.reason else ""
    text = f"{head}{SUMMARY_SEPARATOR}{state.summary}" if state.summary else head
    return _cap(text, MESSAGE_LIMIT)


def notification(commit: str, obs: Observation, state: ObjectState) -> dict[str, str]:
    """The subscriber-payload shape Spektate's Flux view reads (spektate branch
    `fluxv2-notifications-poc`, `backend/src/lib/flux.ts`, `loadFluxNotifications`: `commit_id`,
    `status_name`, `genre`, `message`); only `message` is displayed
    (`frontend/src/cells/cluster.tsx`, `FluxTable`)."""
    where = f"{obs.env}/{obs.cluster}"
    return {
        "commit_id": commit,
        "status_name": f"{where}: {_cap(state.reason, REASON_LIMIT)}",
        "state": STATES[state.phase],
        "message": panel_message(obs, state),
        "gitops_operator": GITOPS_OPERATOR,
        "genre": obs.obj.kind,
        "env": obs.env,
        "cluster": obs.cluster,
        "object": str(obs.obj),
        "time": state.time.astimezone(UTC).isoformat(),
    }


def repository_url(org_url: str, project: str, repository: str) -> str:
    """The web URL of an Azure Repos repository, as Spektate's `manifestRepo` holds it; empty
    when not configured."""
    if not (org_url and project and repository):
        return ""
    return f"{org_url.rstrip('/')}/{quote(project, safe='')}/_git/{quote(repository, safe='')}"


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def links_from_metadata(obs: Observation) -> DeploymentLinks:
    """`hldCommit` / `change_request` from the event metadata, else the deployed commit."""
    metadata = obs.metadata
    hld = _meta(metadata, HLD_COMMIT_KEY) or obs.commit
    pr = (_meta(metadata, CHANGE_REQUEST_KEY) or "").strip().lstrip("#")
    return DeploymentLinks(hld.strip().lower() if hld else None, pr or None)


class LinkReader(Protocol):
    """`devops.links.CommitLinks`: what a manifests commit was verified to carry."""

    def link(self, commit: str) -> Link: ...


def links_from_commits(reader: LinkReader) -> LinkResolver:
    """Three repositories: the HLD commit (and PR) the manifests commit's verified link names,
    so that no Flux annotation is needed; without a link, as `links_from_metadata`."""

    def resolve(obs: Observation) -> DeploymentLinks:
        link = reader.link(obs.commit) if obs.commit else Link()
        if not link.linked:
            return links_from_metadata(obs)
        prs = sorted(link.merged)
        return DeploymentLinks(link.hld_commits[0], str(prs[0]) if prs else None)

    return resolve


def _meta(metadata: Mapping[str, str], key: str) -> str | None:
    """By plain key, else by group-prefixed key (`event.toolkit.fluxcd.io/<key>`), as Flux
    versions differ in whether they strip the annotation prefix."""
    if key in metadata:
        return metadata[key] or None
    suffix = "/" + key
    return next((v for k, v in metadata.items() if k.endswith(suffix) and v), None)
