"""The tally row (`connector.core.tally`) of one environment and commit: what it keeps of each
cluster's result, and how it stays within the Table service's limits however many clusters
report and fail.

The row is JSON spread over string properties (`rows.spread_text`). It degrades in steps, each
taken only when the one before does not fit:

1. every entry whole: phase, first failure (object, reason, summary, time), first pending names;
2. without the pending names (what a progress line names; the full roll-up has them);
3. failures after the first `TALLY_DESCRIBED` failing clusters (by name, the order an
   environment status picks its failed cluster) without their object and text: phase, basis and
   a digest of which failure it is, so a change is still told from a re-send;
4. none of that fits (thousands of clusters with long names): the row says `overflow` and keeps
   no entries; the environment is then rolled up in full for each event (`Tallies.tally`
   answers None). Slower, never a message that cannot be processed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from connector.core.gates import PROGRESS_NAMES
from connector.core.state import ClusterResults
from connector.core.tracking import ClusterResult, ObjectRef, ObjectState, Phase
from connector.storage.rows import TEXT_PART_CHARS, gathered_text, iso, spread_text

Entries = dict[str, Any]  # a tally row's entries, by cluster
Tallied = tuple[bool, Entries | None]  # (changed, entries; None: overflowed)

TALLY_PENDING_NAMES = PROGRESS_NAMES  # what a gate's progress line names
TALLY_TEXT_CHARS = 200
TALLY_DETAIL_CHARS = 300_000  # step 1 up to this many characters (600 KB in UTF-16)
# Steps 2 and 3 up to this many. A merge leaves parts of a longer text behind (`spread_text`):
# with at most 14 parts ever written the row stays under 14 x 63.5 KB = 889 KB, the rest of
# the 1 MiB entity limit (`rows.ENTITY_LIMIT_BYTES`) is the keys and the part names.
TALLY_BUDGET_CHARS = 14 * TEXT_PART_CHARS
TALLY_DESCRIBED = 10  # failing clusters whose failure keeps its object and text in step 3
_COMPACT = (",", ":")


def entry_of(result: ClusterResult) -> dict[str, Any]:
    """Its phase and first failure (what a change is judged by) and, as detail refreshed only
    with them, the first objects still pending."""
    entry: dict[str, Any] = {"phase": result.phase.value}
    if result.failed:
        obj, state = result.failed[0]
        text = [state.reason[:TALLY_TEXT_CHARS], state.summary[:TALLY_TEXT_CHARS]]
        entry["failed"] = [_shown(obj), *text, iso(state.time)]
    if result.pending:
        entry["pending"] = [_shown(o) for o in result.pending[:TALLY_PENDING_NAMES]]
    return entry


def _shown(obj: ObjectRef) -> str:
    """An object's name as a tally shows it: bounded, and still `kind/namespace/name`."""
    return str(ObjectRef(obj.kind[:63], obj.namespace[:63], obj.name[:TALLY_TEXT_CHARS]))


def read_entries(entity: dict[str, Any] | None) -> Entries | None:
    """The entries of a row as stored ({} without a row; None: it overflowed)."""
    if entity is None:
        return {}
    if entity.get("overflow"):
        return None
    loaded: Entries = json.loads(gathered_text(entity, "clusters"))
    return loaded


def row_of(clusters: Entries) -> dict[str, Any]:
    """The properties of a tally row, degraded as far as needed to fit (module docstring)."""
    text = json.dumps(clusters, sort_keys=True, separators=_COMPACT)
    if len(text) <= TALLY_DETAIL_CHARS:
        return {**spread_text("clusters", text), "overflow": False}
    for entry in clusters.values():
        entry.pop("pending", None)
    failing = sorted(c for c, e in clusters.items() if "failed" in e)
    for cluster in failing[TALLY_DESCRIBED:]:
        entry = clusters[cluster]
        entry["seen"] = _digest(entry.pop("failed"))
    text = json.dumps(clusters, sort_keys=True, separators=_COMPACT)
    if len(text) <= TALLY_BUDGET_CHARS:
        return {**spread_text("clusters", text), "overflow": False}
    return {**spread_text("clusters", ""), "overflow": True}


def same_result(known: dict[str, Any], entry: dict[str, Any]) -> bool:
    """Whether two entries say the same result: the phase, and which failure (object and time)
    came first; the text of a failure and the pending names are detail."""
    return known.get("phase") == entry.get("phase") and _failure(known) == _failure(entry)


def _failure(entry: dict[str, Any]) -> str | None:
    if "failed" in entry:
        return _digest(entry["failed"])
    seen = entry.get("seen")
    return str(seen) if seen is not None else None


def _digest(failed: list[str]) -> str:
    """Which failure: its object and time (a digest, so that step 3 keeps 12 characters)."""
    obj, time = failed[0], failed[-1]
    return hashlib.sha256(f"{obj}\0{time}".encode()).hexdigest()[:12]


def results_of(clusters: Entries) -> ClusterResults:
    return {c: _result(c, e) for c, e in clusters.items()}


def _result(cluster: str, entry: dict[str, Any]) -> ClusterResult:
    failed: tuple[tuple[ObjectRef, ObjectState], ...] = ()
    if "failed" in entry:
        obj, reason, summary, time = entry["failed"]
        moment = datetime.fromisoformat(time)
        state = ObjectState(Phase.FAILED, reason, summary, moment, moment)
        failed = ((ObjectRef.parse(obj), state),)
    pending = tuple(ObjectRef.parse(o) for o in entry.get("pending", ()))
    return ClusterResult(cluster, Phase(entry["phase"]), pending=pending, failed=failed)
