"""Spektate's dashboard, as far as it reads our rows: a test-side reader, written from Spektate's
source (microsoft/spektate, branch `fluxv2-notifications-poc`), so tests check what a user sees.

- `backend/src/lib/flux.ts` `loadFluxNotifications`: rows of table `flux` in the configured
  partition with `Timestamp` in the last 2 days; `Notification` parsed; the subscriber shape
  (`commit_id`) grouped by `commit_id.substring(0, 7)`; each item keeps `status_name` as
  `status`, `genre`, `message` and the row's `Timestamp` as `time`; groups sorted by time.
  (The raw-Flux-event shape, `metadata.revision`, is read too; we never write it.)
- `packages/spektate/src/IDeployment.ts` `parseDeploymentRow`: deployments of the partition,
  `deploymentId` = RowKey, `manifestCommitId` as stored, `timeStamp` = the row's `Timestamp`.
- `backend/src/lib/cache.ts` `getFluxSync`: a deployment's notifications are the group whose key
  equals its `manifestCommitId` exactly. `isDeploymentChanged` / `updateChangedDeployment`: a
  cached deployment gets them again only when its `timeStamp` changed or it is not "complete"
  (new deployments always get them, `updateNewDeployment`).
- `frontend/src/cells/cluster.tsx` `FluxTable`: two columns, `message` and `time`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

SHORT: int = 7  # `substring(0, 7)` in flux.ts
WINDOW = timedelta(days=2)  # `lastTwoDays` in flux.ts


@dataclass(frozen=True)
class PanelLine:
    """One row of the Flux panel: the two displayed columns."""

    message: str
    time: datetime


@dataclass(frozen=True)
class FluxItem:
    """`IFluxNotification`: what reaches the dashboard's API per notification."""

    commit_id: str
    status: str
    genre: str
    message: str
    time: datetime


@dataclass
class Deployment:
    deployment_id: str
    manifest_commit_id: str
    time_stamp: datetime
    complete: bool
    flux_status: list[FluxItem] = field(default_factory=list)

    def panel(self) -> list[PanelLine]:
        return [PanelLine(item.message, item.time) for item in self.flux_status]


def load_flux(table: Any, partition: str, now: datetime | None = None) -> dict[str, list[FluxItem]]:
    since = (now or datetime.now(UTC)) - WINDOW
    rows = table.query_entities(
        "PartitionKey eq @pk and Timestamp gt @since", parameters={"pk": partition, "since": since}
    )
    groups: dict[str, list[FluxItem]] = {}
    for row in rows:
        if "Notification" not in row:
            continue
        item = _item(json.loads(row["Notification"]), row.metadata["timestamp"])
        if item is not None:
            groups.setdefault(item.commit_id, []).append(item)
    for items in groups.values():
        items.sort(key=lambda i: i.time)
    return groups


def _item(note: dict[str, Any], time: datetime) -> FluxItem | None:
    revision = (note.get("metadata") or {}).get("revision")
    if revision is not None:
        commit = revision.split("/")[-1][:SHORT]
        kind = note["involvedObject"]["kind"]
        return FluxItem(commit, note.get("reason", ""), kind, note.get("message", ""), time)
    if "commit_id" in note:
        commit = note["commit_id"][:SHORT]
        status, genre = note.get("status_name", ""), note.get("genre", "")
        return FluxItem(commit, status, genre, note.get("message", ""), time)
    return None


def load_deployments(table: Any, partition: str, complete: bool = True) -> list[Deployment]:
    """`complete`: Spektate computes it from the p3 build's result; tests choose it."""
    rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
    return [
        Deployment(
            row["RowKey"], row.get("manifestCommitId", ""), row.metadata["timestamp"], complete
        )
        for row in rows
    ]


@dataclass
class RunningDashboard:
    """The backend's cache: what a browser shows between and after refreshes."""

    deployments_table: Any
    flux_table: Any
    partition: str
    cache: dict[str, Deployment] = field(default_factory=dict)

    def refresh(self) -> None:
        statuses = load_flux(self.flux_table, self.partition)
        for latest in load_deployments(self.deployments_table, self.partition):
            cached = self.cache.get(latest.deployment_id)
            if cached is None or _changed(cached, latest):
                latest.flux_status = statuses.get(latest.manifest_commit_id, [])
                self.cache[latest.deployment_id] = latest

    def panel(self, deployment_id: str) -> list[str]:
        return [line.message for line in self.cache[deployment_id].panel()]


def _changed(old: Deployment, new: Deployment) -> bool:
    return new.time_stamp != old.time_stamp or not old.complete
