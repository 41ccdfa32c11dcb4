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

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode

from connector import telemetry
from connector.core.processing import Change
from connector.core.tracking import Observation, Verdict
from connector.outputs.spektate_errors import (
    ErrorReport,
    GaveUpError,
    SpektateError,
    Step,
    describe,
    error_code,
    is_permanent,
)
from connector.outputs.spektate_rows import (
    SHORT_SHA,
    UPDATED_PROPERTY,
    DeploymentLinks,
    DeploymentsTable,
    LinkResolver,
    NotificationTable,
    change_id,
    links_from_metadata,
    notification,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


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
                with suppress(GaveUpError):  # the notification is worth writing without the link
                    self._link(self._deployments, obs, obs.commit)
            created = self._insert(row, notification(obs.commit, obs, state))
        except GaveUpError:
            return
        if created and self._deployments is not None:
            self._touch(self._deployments, obs.commit)

    @contextmanager
    def _step(self, step: Step) -> Iterator[None]:
        """Transient errors raise `SpektateError` (Service Bus redelivers); permanent ones are
        reported and raise `GaveUpError`."""
        try:
            yield
        except AzureError as exc:
            if isinstance(exc, HttpResponseError) and is_permanent(exc):
                self._errors.permanent(step, exc)
                raise GaveUpError(exc) from exc
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
            with suppress(GaveUpError), self._step(Step.CREATE_TABLE):
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
        except GaveUpError as gave_up:
            if error_code(gave_up.error) == "TableNotFound":
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
        except GaveUpError:
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
