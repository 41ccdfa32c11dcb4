"""The one commit parser, and a commit named by a unique prefix (`git`'s short SHA) resolved
against the stored commits (`TableStore.commits_starting`, and the gates, which name their
commit too). The CLI's `status`, the on-call pages, `send-sample --commit` and the deployments
view all parse a commit here; each says how short a prefix it takes.
"""

from __future__ import annotations

import re

from connector.core.errors import ConnectorError
from connector.gates.store import GateStore
from connector.storage.tables import TableStore

MIN_PREFIX = 4  # git's minimum abbreviation
FULL = 40  # a full SHA-1
MAX_LISTED = 10
_HEX = re.compile(r"[0-9a-f]+")


class InvalidCommitError(ConnectorError, ValueError):
    """Not a commit id, or a prefix shorter than the caller takes; the message names the form."""


class CommitLookupError(ConnectorError, LookupError):
    """No stored commit starts with the prefix."""


class AmbiguousCommitError(CommitLookupError):
    """More than one stored commit starts with the prefix; the message lists them."""


def parse(text: str, *, shortest: int = MIN_PREFIX) -> str:
    """A lower-case commit id (Flux reports them so), or a prefix of at least `shortest` hex
    characters; InvalidCommitError, checked before any storage is touched. Spaces around a
    prefix (typed, pasted into a search box) are forgiven; `shortest=FULL` (an address or an
    argument naming one exact commit) takes the 40 characters and nothing else."""
    prefix = (text if shortest >= FULL else text.strip()).lower()
    if not _HEX.fullmatch(prefix) or not shortest <= len(prefix) <= FULL:
        raise InvalidCommitError(expected(shortest))
    return prefix


def expected(shortest: int) -> str:
    """The form `parse(..., shortest=shortest)` takes, in words."""
    if shortest >= FULL:
        return "must be 40 hexadecimal characters (a full SHA-1)"
    return f"a commit id or a unique prefix of at least {shortest} hex characters"


def resolve(store: TableStore, text: str) -> str:
    """The full commit for `text` (a full SHA-1 is returned as it is, stored or not)."""
    prefix = parse(text)
    if len(prefix) == FULL:
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
    found = store.commits_starting(prefix)
    found |= {
        g.commit.lower()
        for g in GateStore(store).all_gates()
        if g.commit and g.commit.lower().startswith(prefix)
    }
    return found
