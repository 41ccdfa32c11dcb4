"""The on-call index's board: one row per environment saying what each cluster runs now.

Table `<p>board`, PartitionKey `env`, RowKey = the environment: so the index of every environment
is one query of one partition (1,000 rows a page), whatever the size of the fleet. The row is
kept as events are processed (`connector.outputs.board`), from the environment's tally, only when
a cluster's result moves (about twice per cluster and rollout): never from the state rows.

- `clusters` (JSON, spread over properties as the tally is): per cluster the commit it runs, its
  phase there, since when it runs it (first report), when the phase last changed, the first
  failure, the first objects still pending on it, and the commit it ran before;
- `commits` (JSON): the environment's most recent commits, newest first, with their result.

A cluster's entry follows its newest commit by event time: a late event of an older commit does
not take it back.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from connector.core.tracking import ClusterResult, Phase
from connector.storage.rows import (
    Version,
    gathered_text,
    iso,
    key,
    spread_text,
    unkey,
    update_row_tagged,
)

if TYPE_CHECKING:
    from azure.data.tables import TableClient

PARTITION = "env"
RECENT_COMMITS = 10
TEXT_CHARS = 200  # reason, message and object names, as the tally bounds them
# The row's JSON stays under this many characters (UTF-16: 2 bytes each, within 1 MiB with the
# commits list): past it, pending names go first, then failure messages (the reason stays).
BOARD_CHARS = 400_000
KNOWN_ROWS = 1_000  # board versions kept in memory (one per environment)
_Entries = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class ClusterNow:
    cluster: str
    commit: str
    phase: str
    since: str  # ISO time of its first report of `commit`
    changed: str  # ISO time the phase last changed
    failed: tuple[str, ...] = ()  # (object, reason, message), message possibly dropped
    pending: tuple[str, ...] = ()  # the first objects not yet done on `commit`
    previous: str = ""  # the commit it ran before


@dataclass(frozen=True)
class CommitResult:
    commit: str
    phase: str
    since: str
    changed: str


@dataclass(frozen=True)
class Board:
    env: str
    clusters: dict[str, ClusterNow]
    commits: tuple[CommitResult, ...]


class BoardTable:
    def __init__(self, table: Callable[[], TableClient]) -> None:
        self._table = table
        # Each board row as this process last wrote it, with its ETag: the next write is tried
        # on that version without reading first (a row changed meanwhile is read as usual).
        self._versions: dict[str, Version] = {}
        self._lock = threading.Lock()

    def note(
        self, env: str, commit: str, result: ClusterResult, env_phase: Phase, time: datetime
    ) -> bool:
        """Record a cluster's result on a commit and the environment's; whether it wrote."""
        moment = iso(time)
        tried: list[dict[str, Any]] = []  # the data of each write tried (the last one stands)

        def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
            clusters: _Entries = json.loads(gathered_text(entity, "clusters")) if entity else {}
            commits: list[dict[str, Any]] = json.loads(entity["commits"]) if entity else []
            moved = _note_cluster(clusters, commit, result, moment)
            listed = _note_commit(commits, commit, env_phase.value, moment)
            if not (moved or listed):
                return None, False
            data = {**spread_text("clusters", _bounded(clusters)), "commits": json.dumps(commits)}
            tried.append(data)
            return data, True

        with self._lock:
            known = self._versions.pop(env, None)
        written, etag = update_row_tagged(self._table(), PARTITION, key(env), change, known=known)
        if written and etag:
            with self._lock:
                if len(self._versions) >= KNOWN_ROWS:
                    self._versions.clear()
                self._versions[env] = (tried[-1], etag)
        return bool(written)

    def boards(self) -> list[Board]:
        """Every environment's board: one query (a page per 1,000 environments)."""
        rows = self._table().query_entities("PartitionKey eq @pk", parameters={"pk": PARTITION})
        return sorted((_board(dict(row)) for row in rows), key=lambda b: b.env)


def _note_cluster(clusters: _Entries, commit: str, result: ClusterResult, moment: str) -> bool:
    known = clusters.get(result.cluster)
    if known is not None and known["commit"] != commit and known["since"] > moment:
        return False  # a late event of an older commit: the cluster has moved on
    entry: dict[str, Any] = {"commit": commit, "phase": result.phase.value}
    if known is None or known["commit"] != commit:
        entry |= {"since": moment, "changed": moment}
        if known is not None:
            entry["previous"] = known["commit"]
    else:
        changed = known["changed"] if known["phase"] == entry["phase"] else moment
        entry |= {"since": known["since"], "changed": changed}
        if "previous" in known:
            entry["previous"] = known["previous"]
    if result.failed:
        obj, state = result.failed[0]
        entry["failed"] = [
            str(obj)[:TEXT_CHARS],
            state.reason[:TEXT_CHARS],
            state.summary[:TEXT_CHARS],
        ]
    if result.pending:
        entry["pending"] = [str(o)[:TEXT_CHARS] for o in result.pending[:3]]
    if known == entry:
        return False
    clusters[result.cluster] = entry
    return True


def _note_commit(commits: list[dict[str, Any]], commit: str, phase: str, moment: str) -> bool:
    for item in commits:
        if item["commit"] == commit:
            if item["phase"] == phase:
                return False
            item |= {"phase": phase, "changed": moment}
            return True
    commits.append({"commit": commit, "phase": phase, "since": moment, "changed": moment})
    commits.sort(key=lambda c: c["since"], reverse=True)
    kept = commits[:RECENT_COMMITS]
    listed = any(c["commit"] == commit for c in kept)
    commits[:] = kept
    return listed


def _bounded(clusters: _Entries) -> str:
    text = json.dumps(clusters, sort_keys=True)
    for cut in (_drop_pending, _drop_messages):
        if len(text) <= BOARD_CHARS:
            break
        for entry in clusters.values():
            cut(entry)
        text = json.dumps(clusters, sort_keys=True)
    return text


def _drop_pending(entry: dict[str, Any]) -> None:
    entry.pop("pending", None)


def _drop_messages(entry: dict[str, Any]) -> None:
    if "failed" in entry:
        entry["failed"] = entry["failed"][:2]


def _board(row: dict[str, Any]) -> Board:
    (env,) = unkey(row["RowKey"])
    entries: _Entries = json.loads(gathered_text(row, "clusters"))
    clusters = {name: _cluster(name, e) for name, e in sorted(entries.items())}
    commits = tuple(CommitResult(**c) for c in json.loads(row.get("commits") or "[]"))
    return Board(env, clusters, commits)


def _cluster(name: str, entry: dict[str, Any]) -> ClusterNow:
    return ClusterNow(
        cluster=name,
        commit=entry["commit"],
        phase=entry["phase"],
        since=entry["since"],
        changed=entry["changed"],
        failed=tuple(entry.get("failed", ())),
        pending=tuple(entry.get("pending", ())),
        previous=entry.get("previous", ""),
    )
