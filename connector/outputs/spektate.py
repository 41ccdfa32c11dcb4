"""Spektate: status notifications for the dashboard's Flux view, and the deployment row's link to
the manifests commit. Both are written straight into Spektate's storage account (not through its
`POST /api/flux`, which answers 200 even when its insert fails and has no authentication).
Field by field, and what the dashboard displays of it: `docs/spektate.md`.

1. Table `flux` (`SPEKTATE_TABLE`; the POC dashboard hard-codes `flux`), created on first use:
   one entity per recorded state change of an object on a commit,
   `{PartitionKey: SPEKTATE_PARTITION_KEY, RowKey: change id, Notification: JSON}`. `Notification`
   is the connector-subscriber shape the Flux view reads: `commit_id` (full SHA; the dashboard keeps
   7 chars), `message` (the only text the panel displays, so it starts with the phase and reason),
   `status_name` (`<env>/<cluster>: <reason>`; reaches the API, not the screen), `state`
   (`pending|succeeded|failed`), `genre` (the Flux kind), `gitops_operator` (`Flux`), plus `env`,
   `cluster`, `object` and `time` for readers that want them.
2. Deployments table (`SPEKTATE_DEPLOYMENTS_TABLE`, optional): `manifestCommitId` (7 chars, as the
   Bedrock writers store it and the dashboard compares it) and `manifestRepo` are merged into rows
   the pipelines created, found by `hldCommitId`, else by `pr` (Spektate's own lookup order). Merge,
   never replace, never create; a row already linked to another manifest commit is left alone.
   After each new notification, `fluxUpdatedAt` is merged into the rows linked to its commit: a
   running dashboard reloads a row's Flux notifications only when the row's `Timestamp` changed
   (or it is not yet Complete).

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
inserted, so the notification row marks both done: a retry repeats only what did not happen. The
`fluxUpdatedAt` merge follows only an insert that created the row, so it happens at most once
per notification.

Errors: Spektate is a dashboard, so its failures never hold up statuses or gates. A transient one
(5xx, 408, 429, timeout, connection) raises `SpektateError` and Service Bus redelivers; a
permanent one (403, a table that cannot be created, any other 4xx) cannot be cured by
redelivering, so it is logged once per kind with its remedy, counted in
`connector.spektate.errors`, and the message completes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Protocol
from urllib.parse import quote

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode

from connector import telemetry
from connector.core.processing import Change
from connector.core.tracking import ObjectState, Observation, Phase, Verdict

logger = logging.getLogger(__name__)

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
# Retrying cures these 4xx; every other 4xx is the same on every delivery.
TRANSIENT_4XX: Final = frozenset({408, 429})
CONTRIBUTOR_ROLE: Final = "Storage Table Data Contributor (0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3)"


class SpektateError(Exception):
    """Spektate's storage could not be written for a reason that may pass (outage, throttling
    past the SDK's retries, a timeout). Raised so that Service Bus redelivers the message;
    statuses and gates are unaffected (see `Processor`)."""


class _GaveUpError(Exception):
    """A permanent error, already reported: skip what depends on the failed step."""

    def __init__(self, error: HttpResponseError) -> None:
        super().__init__(describe(error))
        self.error = error


class Step(StrEnum):
    """What the writer was doing when Spektate's storage refused; part of an error's kind."""

    CREATE_TABLE = "create table"
    READ = "read notification"
    LINK = "link deployment"
    INSERT = "insert notification"
    TOUCH = "touch deployment"


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
Clock = Callable[[], datetime]


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


def describe(exc: AzureError) -> str:
    """Type, HTTP status and service error code: enough to tell a missing table or role from an
    outage, without the service's message text."""
    parts = [type(exc).__name__]
    status = getattr(exc, "status_code", None)
    if status is not None:
        parts.append(str(status))
    code = _error_code(exc)
    if code:
        parts.append(code)
    return " ".join(parts)


def _error_code(exc: AzureError) -> str:
    response = getattr(exc, "response", None)
    code = getattr(exc, "error_code", None) or (
        response.headers.get("x-ms-error-code") if response is not None else None
    )
    # azure-data-tables gives some codes as `TableErrorCode` members: their value is the wire code.
    return str(getattr(code, "value", code) or "")


def is_permanent(exc: AzureError) -> bool:
    """A 4xx answer other than timeout and throttling: redelivering would meet it again."""
    if not isinstance(exc, HttpResponseError) or exc.status_code is None:
        return False  # no answer at all: connection, timeout, credential endpoint
    return 400 <= exc.status_code < 500 and exc.status_code not in TRANSIENT_4XX


def remedy(step: Step, exc: HttpResponseError) -> str:
    """What an operator does about a permanent error: the log line's second half."""
    if exc.status_code in (401, 403):
        return (
            f"grant the Function's identity {CONTRIBUTOR_ROLE} on Spektate's storage account, "
            "or give SPEKTATE_STORAGE a key or SAS allowed to create tables and add, read and "
            "update entities"
        )
    if step is Step.CREATE_TABLE:
        return "create the table named by SPEKTATE_TABLE (Spektate's POC reads `flux`) yourself"
    if _error_code(exc) == "TableNotFound":
        which = (
            "SPEKTATE_DEPLOYMENTS_TABLE" if step in (Step.LINK, Step.TOUCH) else "SPEKTATE_TABLE"
        )
        return f"create the table, or fix {which}; the table it names does not exist"
    return "check SPEKTATE_TABLE, SPEKTATE_DEPLOYMENTS_TABLE and SPEKTATE_PARTITION_KEY"


class ErrorReport:
    """Permanent Spektate errors: each kind (step, status, code) is logged once per instance
    (the container builds one writer per process), every occurrence is counted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[str] = set()

    def permanent(self, step: Step, exc: HttpResponseError) -> None:
        kind = f"{step} {describe(exc)}"
        telemetry.spektate_errors.add(
            1, {"step": step.value, "status": str(exc.status_code), "code": _error_code(exc)}
        )
        with self._lock:
            first = kind not in self._seen
            self._seen.add(kind)
        if first:
            logger.error(
                "spektate.gave_up",
                extra={"step": step.value, "error": describe(exc), "remedy": remedy(step, exc)},
            )
        else:
            logger.debug("spektate.gave_up_again", extra={"step": step.value})


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


def _utc_now() -> datetime:
    return datetime.now(UTC)


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
        errors: ErrorReport | None = None,
        clock: Clock = _utc_now,
    ) -> None:
        if not partition_key:
            raise ValueError("Spektate needs its partition key (SPEKTATE_PARTITION_KEY)")
        self._notifications = notifications
        self._partition = partition_key
        self._deployments = deployments
        self._manifest_repo = manifest_repo
        self._links = links
        self._errors = errors or ErrorReport()
        self._clock = clock
        self._table_lock = threading.Lock()
        self._table_tried = False

    def on_change(self, change: Change) -> None:
        obs, recorded = change.obs, change.recorded
        state = recorded.state
        if obs.commit is None or state is None:
            return
        row = change_id(obs.commit, obs, state)
        self._ensure_table()
        try:
            # A re-send of a known state is usually written already: one read instead of a
            # failing insert (and the link query) on every periodic re-send.
            if recorded.verdict != Verdict.CHANGED and self._written(row):
                return
            if self._deployments is not None:
                with suppress(_GaveUpError):  # the notification is worth writing without the link
                    self._link(self._deployments, obs, obs.commit)
            created = self._insert(row, notification(obs.commit, obs, state))
        except _GaveUpError:
            return
        if created and self._deployments is not None:
            self._touch(self._deployments, obs.commit)

    @contextmanager
    def _step(self, step: Step) -> Iterator[None]:
        """Transient errors raise `SpektateError` (Service Bus redelivers); permanent ones are
        reported and raise `_GaveUpError`."""
        try:
            yield
        except AzureError as exc:
            if isinstance(exc, HttpResponseError) and is_permanent(exc):
                self._errors.permanent(step, exc)
                raise _GaveUpError(exc) from exc
            error = describe(exc)
            logger.warning("spektate.write_failed", extra={"step": step.value, "error": error})
            raise SpektateError(f"Spektate {step} failed: {error}") from exc

    # --- the flux table -------------------------------------------------------------------

    def _ensure_table(self) -> None:
        """Create the table on first use, once per writer (so once per process) whatever the
        worker's thread count. A refusal is reported and not repeated: an identity allowed to
        add entities but not to create tables still writes to a table that exists."""
        if self._table_tried:
            return
        with self._table_lock:
            if self._table_tried:
                return
            with suppress(_GaveUpError), self._step(Step.CREATE_TABLE):
                try:
                    self._notifications.create_table()
                    logger.info("spektate.table_created", extra={"table": self._table_name})
                except ResourceExistsError:
                    pass
            self._table_tried = True

    @property
    def _table_name(self) -> str:
        return self._notifications.table_name

    def _written(self, row: str) -> bool:
        with self._step(Step.READ):
            try:
                self._notifications.get_entity(self._partition, row, select=["RowKey"])
            except ResourceNotFoundError:
                return False
        return True

    def _insert(self, row: str, body: Mapping[str, str]) -> bool:
        """True when this call created the row (not a redelivery finding it written)."""
        entity = {
            "PartitionKey": self._partition,
            "RowKey": row,
            "Notification": json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        }
        try:
            with self._step(Step.INSERT):
                try:
                    self._notifications.create_entity(entity)
                except ResourceExistsError:
                    logger.debug("spektate.already_written", extra={"row": row})
                    return False
        except _GaveUpError as gave_up:
            if _error_code(gave_up.error) == "TableNotFound":
                self._table_tried = False  # deleted since: create it again on the next message
            raise
        logger.info("spektate.written", extra={"row": row, "state": body["state"]})
        return True

    # --- deployments row ------------------------------------------------------------------

    def _link(self, table: DeploymentsTable, obs: Observation, commit: str) -> None:
        with self._step(Step.LINK):
            for row in self._deployment_rows(table, self._links(obs)):
                patch = self._patch(row, commit)
                if patch:
                    self._merge(table, row, patch)
                    logger.info(
                        "spektate.linked", extra={"row": row["RowKey"], "fields": sorted(patch)}
                    )

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

    def _touch(self, table: DeploymentsTable, commit: str) -> None:
        """Merge `fluxUpdatedAt` into the rows whose Flux panel shows this commit (Spektate
        groups notifications by the commit's first 7 characters and matches `manifestCommitId`
        exactly), so a running dashboard reloads them. Called once per created notification;
        a failure is reported and not raised, because a redelivery would find the notification
        written and not touch again (at most one merge per notification)."""
        params = {"pk": self._partition, "short": commit[:SHORT_SHA]}
        query = "PartitionKey eq @pk and manifestCommitId eq @short"
        stamp = {UPDATED_PROPERTY: self._clock().astimezone(UTC).isoformat()}
        try:
            with self._step(Step.TOUCH):
                for row in list(table.query_entities(query, parameters=params)):
                    self._merge(table, row, stamp)
        except _GaveUpError:
            return  # reported
        except SpektateError:  # logged by `_step`; counted here, as it is given up too
            telemetry.spektate_errors.add(1, {"step": Step.TOUCH.value, "status": "transient"})

    def _merge(
        self, table: DeploymentsTable, row: Mapping[str, Any], patch: dict[str, str]
    ) -> None:
        entity = {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"], **patch}
        try:
            # MERGE without an ETag is sent with `If-Match: *`: it fails instead of creating.
            table.update_entity(entity, mode=UpdateMode.MERGE)
        except ResourceNotFoundError:
            logger.info("spektate.row_gone", extra={"row": row["RowKey"]})
