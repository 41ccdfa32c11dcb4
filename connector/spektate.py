"""Spektate: status notifications for the dashboard's Flux view, and the deployment row's link to
the manifests commit. Both are written straight into Spektate's storage account (not through its
`POST /api/flux`, which answers 200 even when its insert fails and has no authentication).

1. Table `flux` (`SPEKTATE_TABLE`): one entity per recorded state change of an object on a commit,
   `{PartitionKey: SPEKTATE_PARTITION_KEY, RowKey: change id, Notification: JSON}`. `Notification`
   is the connector-subscriber shape the Flux view reads: `commit_id` (full SHA; the dashboard keeps
   7 chars), `status_name` (what it displays: `<env>/<cluster>: <reason>`), `state`
   (`pending|succeeded|failed`), `message`, `genre` (the Flux kind), `gitops_operator` (`Flux`),
   plus `env`, `cluster`, `object` and `time` for readers that want them.
2. Deployments table (`SPEKTATE_DEPLOYMENTS_TABLE`, optional): `manifestCommitId` (7 chars, as the
   Bedrock writers store it and the dashboard compares it) and `manifestRepo` are merged into rows
   the pipelines created, found by `hldCommitId`, else by `pr` (Spektate's own lookup order). Merge,
   never replace, never create; a row already linked to another manifest commit is left alone.

How the HLD commit and PR are known, per observation (`DeploymentLinks`, replaceable):
- the event metadata keys `hldCommit` (Alert `spec.eventMetadata`, or the object annotation
  `event.toolkit.fluxcd.io/hldCommit`) and `change_request` (annotation
  `event.toolkit.fluxcd.io/change_request`, the PR number Flux's own PR providers use), read from
  `Observation.metadata` when the observation carries the event's metadata;
- otherwise the deployed commit itself: with Flux v2 the cluster usually reconciles the HLD
  repository directly (no manifest generation step), so the HLD commit *is* the manifests commit.

Idempotency: the RowKey is a hash of the recorded state change (commit, env, cluster, object,
phase, reason), so a redelivery or a periodic re-send maps to the row already written, and the
insert (`create_entity`) reports it as existing. The link is merged before the notification is
inserted, so the notification row marks both done: a retry repeats only what did not happen.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Final, Protocol
from urllib.parse import quote

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from connector.store import Recorded
from connector.tracking import EnvironmentResult, ObjectState, Observation, Phase, Verdict

logger = logging.getLogger(__name__)

GITOPS_OPERATOR: Final = "Flux"
MESSAGE_LIMIT: Final = 1024  # Table strings hold 32K UTF-16 chars; Flux messages reach ~39,000
REASON_LIMIT: Final = 200
SHORT_SHA: Final = 7
STATES: Final = {Phase.PROGRESSING: "pending", Phase.SUCCEEDED: "succeeded", Phase.FAILED: "failed"}
HLD_COMMIT_KEY: Final = "hldCommit"
CHANGE_REQUEST_KEY: Final = "change_request"


class SpektateError(Exception):
    """Spektate's storage could not be written (outage, throttling past the SDK's retries, a
    missing table or role). Raised so that Service Bus redelivers the message, and dead-letters it
    if this persists; statuses and gates are unaffected (see `Processor`)."""


class NotificationTable(Protocol):
    """The `flux` table: an azure-data-tables `TableClient` fits."""

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


def notification(commit: str, obs: Observation, state: ObjectState) -> dict[str, str]:
    """The subscriber-payload shape Spektate's Flux view reads (`status_name` is what it shows)."""
    where = f"{obs.env}/{obs.cluster}"
    return {
        "commit_id": commit,
        "status_name": f"{where}: {_cap(state.reason, REASON_LIMIT)}",
        "state": STATES[state.phase],
        "message": _cap(f"{where} {obs.obj}: {state.summary}", MESSAGE_LIMIT),
        "gitops_operator": GITOPS_OPERATOR,
        "genre": obs.obj.kind,
        "env": obs.env,
        "cluster": obs.cluster,
        "object": str(obs.obj),
        "time": state.time.astimezone(UTC).isoformat(),
    }


def describe(exc: AzureError) -> str:
    """Type, HTTP status and service error code: enough to tell a missing table or role from an
    outage, without the service's message text."""
    parts = [type(exc).__name__]
    status = getattr(exc, "status_code", None)
    if status is not None:
        parts.append(str(status))
    response = getattr(exc, "response", None)
    code = getattr(exc, "error_code", None) or (
        response.headers.get("x-ms-error-code") if response is not None else None
    )
    if code:
        parts.append(str(code))
    return " ".join(parts)


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


def _meta(metadata: Mapping[str, str], key: str) -> str | None:
    """By plain key, else by group-prefixed key (`event.toolkit.fluxcd.io/<key>`), as Flux
    versions differ in whether they strip the annotation prefix."""
    if key in metadata:
        return metadata[key] or None
    suffix = "/" + key
    return next((v for k, v in metadata.items() if k.endswith(suffix) and v), None)


class SpektateWriter:
    """A `ChangeListener` writing each recorded state change to Spektate, once."""

    def __init__(
        self,
        notifications: NotificationTable,
        *,
        partition_key: str,
        deployments: DeploymentsTable | None = None,
        manifest_repo: str = "",
        links: LinkResolver = links_from_metadata,
    ) -> None:
        if not partition_key:
            raise ValueError("Spektate needs its partition key (SPEKTATE_PARTITION_KEY)")
        self._notifications = notifications
        self._partition = partition_key
        self._deployments = deployments
        self._manifest_repo = manifest_repo
        self._links = links

    def on_observation(self, obs: Observation, recorded: Recorded, env: EnvironmentResult) -> None:
        state = recorded.state
        if obs.commit is None or state is None:
            return
        row = change_id(obs.commit, obs, state)
        try:
            # A re-send of a known state is usually written already: one read instead of a
            # failing insert (and the link query) on every periodic re-send.
            if recorded.verdict != Verdict.CHANGED and self._written(row):
                return
            if self._deployments is not None:
                self._link(self._deployments, obs, obs.commit)
            self._insert(row, notification(obs.commit, obs, state))
        except AzureError as exc:
            error = describe(exc)
            logger.warning("spektate.write_failed", extra={"error": error})
            raise SpektateError(f"Spektate table write failed: {error}") from exc

    def _written(self, row: str) -> bool:
        try:
            self._notifications.get_entity(self._partition, row, select=["RowKey"])
        except ResourceNotFoundError:
            return False
        return True

    def _insert(self, row: str, body: Mapping[str, str]) -> None:
        entity = {
            "PartitionKey": self._partition,
            "RowKey": row,
            "Notification": json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        }
        try:
            self._notifications.create_entity(entity)
        except ResourceExistsError:
            logger.debug("spektate.already_written", extra={"row": row})
            return
        logger.info("spektate.written", extra={"row": row, "state": body["state"]})

    # --- deployments row ------------------------------------------------------------------

    def _link(self, table: DeploymentsTable, obs: Observation, commit: str) -> None:
        for row in self._deployment_rows(table, self._links(obs)):
            patch = self._patch(row, commit)
            if patch:
                self._merge(table, row, patch)

    def _deployment_rows(
        self, table: DeploymentsTable, links: DeploymentLinks
    ) -> list[Mapping[str, Any]]:
        """Rows by HLD commit (as stored: full or 7 chars, lowercase), else by PR."""
        base = "PartitionKey eq @pk"
        if links.hld_commit:
            # Spaces inside the parentheses: the SDK substitutes only space-separated `@names`.
            query = f"{base} and ( hldCommitId eq @full or hldCommitId eq @short )"
            short = links.hld_commit[:SHORT_SHA]
            params = {"pk": self._partition, "full": links.hld_commit, "short": short}
            rows = list(table.query_entities(query, parameters=params))
            if rows:
                return rows
        if links.pull_request:
            params = {"pk": self._partition, "pr": links.pull_request}
            return list(table.query_entities(f"{base} and pr eq @pr", parameters=params))
        return []

    def _patch(self, row: Mapping[str, Any], commit: str) -> dict[str, str]:
        """Only what is missing: the pipelines' own values always win."""
        current = str(row.get("manifestCommitId") or "").lower()
        if current and not commit.startswith(current):
            logger.info("spektate.link_kept", extra={"row": row.get("RowKey")})
            return {}
        patch = {} if current else {"manifestCommitId": commit[:SHORT_SHA]}
        if self._manifest_repo and not row.get("manifestRepo"):
            patch["manifestRepo"] = self._manifest_repo
        return patch

    def _merge(
        self, table: DeploymentsTable, row: Mapping[str, Any], patch: dict[str, str]
    ) -> None:
        entity = {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"], **patch}
        try:
            # MERGE without an ETag is sent with `If-Match: *`: it fails instead of creating.
            table.update_entity(entity, mode=UpdateMode.MERGE)
        except ResourceNotFoundError:
            logger.info("spektate.row_gone", extra={"row": row["RowKey"]})
            return
        logger.info("spektate.linked", extra={"row": row["RowKey"], "fields": sorted(patch)})
