"""A commit named by a unique prefix (`git`'s short SHA), resolved against the stored commits.

The deployments table is partitioned by commit, so a prefix is a partition-key range query
(`[prefix, prefix + "g")`: lower-case hex sorts below `g`); gates name their commit too.
"""

from __future__ import annotations

import re

from connector.core.errors import ConnectorError
from connector.gates.store import GateStore
from connector.storage.tables import TableStore

MIN_PREFIX = 4  # git's minimum abbreviation
MAX_LISTED = 10
_HEX = re.compile(r"[0-9a-f]+")


class CommitLookupError(ConnectorError, LookupError):
    """No stored commit starts with the prefix."""


class AmbiguousCommitError(CommitLookupError):
    """More than one stored commit starts with the prefix; the message lists them."""


def parse(text: str) -> str:
    """A lower-case commit id or prefix; ValueError (checked before any storage is touched)."""
    prefix = text.strip().lower()
    if not _HEX.fullmatch(prefix) or not MIN_PREFIX <= len(prefix) <= 40:
        raise ValueError(f"a commit id or a unique prefix of at least {MIN_PREFIX} hex characters")
    return prefix


def resolve(store: TableStore, text: str) -> str:
    """The full commit for `text` (a full SHA-1 is returned as it is, stored or not)."""
    prefix = parse(text)
    if len(prefix) == 40:
        return prefix
    found = sorted(_stored(store, prefix))
    if not found:
        raise CommitLookupError(f"no recorded commit starts with {prefix}")
    if len(found) > 1:
        listed = ", ".join(found[:MAX_LISTED]) + (" …" if len(found) > MAX_LISTED else "")
        raise AmbiguousCommitError(f"{prefix} is ambiguous: {len(found)} commits match: {listed}")
    return found[0]


def matches(store: TableStore, text: str) -> list[str]:
    """Every stored commit starting with the prefix `text` (for a page offering the choice)."""
    return sorted(_stored(store, parse(text)))


def _stored(store: TableStore, prefix: str) -> set[str]:
    rows = store.table("deployments").query_entities(
        "PartitionKey ge @low and PartitionKey lt @high",
        parameters={"low": prefix, "high": prefix + "g"},
        select=["PartitionKey"],
    )
    found = {row["PartitionKey"] for row in rows}
    found |= {
        g.commit.lower()
        for g in GateStore(store).all_gates()
        if g.commit and g.commit.lower().startswith(prefix)
    }
    return found
