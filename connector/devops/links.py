"""Which change a deployed manifests commit carries, verified against Azure DevOps.

A commit's message and files only *claim* a link (`core.links`); nothing completes a gate on a
claim. Before a link counts:
- a named HLD commit (trailer, hydrator) must exist in the HLD repository;
- a claimed pull request must be completed, in the change repository, its merge commit the
  named HLD commit or an ancestor of it (when one is named; in a single-repository setup, the
  manifests commit itself or an ancestor of it), and the manifests commit no older than the merge.
Answers never change once known (a commit's message and files are immutable, a completed PR
stays completed), so each manifests commit's link is read once and remembered as a fact; a
failure that may pass (throttling, a refused credential) is never remembered.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from connector.core.errors import ConnectorError
from connector.core.links import (
    HYDRATOR_METADATA,
    Link,
    claimed_pull_requests,
    hydrator_dry_sha,
    trailer_commit,
    unlinked_problem,
)
from connector.devops.types import (
    Commit,
    PermanentAzureDevOpsError,
    PullRequest,
    RepositoryReader,
)

logger = logging.getLogger(__name__)

NOT_FOUND = 404
T = TypeVar("T")


class Facts(Protocol):
    """Answers that never change, asked once (the gate store's facts table)."""

    def fact(self, kind: str, *parts: str) -> Any: ...

    def remember(self, kind: str, parts: tuple[str, ...], value: Any) -> None: ...


@dataclass(frozen=True)
class Repositories:
    manifests: str  # AZDO_GITOPS_REPO: what Flux pulls
    change: str  # AZDO_PR_REPO: where people's PRs are (the HLD repository, or the same one)

    @property
    def three(self) -> bool:
        """An HLD repository distinct from the manifests repository."""
        return bool(self.change) and self.change.lower() != self.manifests.lower()

    def is_change(self, repository: str) -> bool:
        return repository.lower() == self.change.lower()


class _NotCacheableError(ConnectorError):
    """A refusal that configuration may fix (401/403): say so now, ask again next time."""


class CommitLinks:
    def __init__(
        self,
        reader: RepositoryReader,
        facts: Facts,
        repositories: Repositories,
        patterns: Sequence[re.Pattern[str]] = (),
    ) -> None:
        self._reader = reader
        self._facts = facts
        self.repositories = repositories
        self._patterns = tuple(patterns)

    # --- the link of a manifests commit (three repositories) ------------------------------------

    def link(self, commit: str) -> Link:
        """What the manifests commit carries of the HLD repository (read once, remembered)."""
        commit = commit.lower()
        known = self._facts.fact("link", commit)
        if known is not None:
            return Link.from_json(known)
        try:
            link = self._read_link(commit)
        except _NotCacheableError as exc:
            return Link(problem=str(exc))
        self._facts.remember("link", (commit,), link.to_json())
        logger.info(
            "link.read",
            extra={"commit": commit, "via": link.via, "hld": list(link.hld_commits)},
        )
        return link

    def hld_commits(self, commit: str) -> tuple[str, ...]:
        """The HLD commits a manifests commit carries (none without an HLD repository)."""
        return self.link(commit).hld_commits if self.repositories.three else ()

    def _read_link(self, commit: str) -> Link:
        manifests = self._commit(self.repositories.manifests, commit)
        if manifests is None:
            return Link(problem=f"manifests commit {commit[:8]} is not in the manifests repository")
        tried: list[str] = []
        hld: list[str] = []
        via = ""
        named = trailer_commit(manifests.comment)
        if named is not None:
            if self._commit(self.repositories.change, named) is not None:
                hld, via = [named], "trailer"
            else:
                tried.append(f"its HLD-Commit trailer names {named[:8]}, not in the HLD repository")
        merged, refused = self._verified_pull_requests(
            manifests, hld[0] if hld else None, self.repositories.change
        )
        tried += refused
        if not hld and merged:
            hld, via = sorted(set(merged.values())), "pull request"
        if not hld:
            dry = self._hydrated_from(commit)
            if dry is not None:
                hld, via = [dry], "hydrator"
        problem = "; ".join(tried) if hld else unlinked_problem(commit, tried)
        return Link(tuple(hld), merged, via, problem)

    def _hydrated_from(self, commit: str) -> str | None:
        text = self._guarded(
            lambda: self._reader.get_file_text(
                self.repositories.manifests, HYDRATOR_METADATA, commit
            )
        )
        dry = hydrator_dry_sha(text)
        if dry is None or self._commit(self.repositories.change, dry) is None:
            return None
        return dry

    # --- pull requests a commit carries (either setup) ------------------------------------------

    def pull_requests(self, commit: str) -> dict[int, str]:
        """Completed PRs of the change repository (`AZDO_PR_REPO`) that a manifests commit
        carries, each with its merge commit: with an HLD repository, those of the link;
        otherwise those of `merged_into`."""
        if self.repositories.three:
            return dict(self.link(commit).merged)
        return self.merged_into(commit)

    def merged_into(self, commit: str) -> dict[int, str]:
        """Completed PRs of the manifests repository whose merge the commit is or descends from:
        those Azure DevOps records the commit as the merge of, and verified claims of its
        message (remembered)."""
        commit = commit.lower()
        known = self._facts.fact("merged", commit)
        if known is not None:
            return {int(pr): str(merge) for pr, merge in known.items()}
        try:
            merged = self._manifests_merges(commit)
        except _NotCacheableError as exc:
            logger.warning("gate.pr_lookup_refused", extra={"commit": commit, "error": str(exc)})
            return {}
        self._facts.remember("merged", (commit,), {str(pr): m for pr, m in merged.items()})
        return merged

    def _manifests_merges(self, commit: str) -> dict[int, str]:
        repository = self.repositories.manifests
        recorded = self._guarded(
            lambda: self._reader.pull_requests_for_merge_commit(repository, commit)
        )
        merged = {pr.pull_request_id: commit for pr in recorded or ()}
        manifests = self._commit(repository, commit)
        if manifests is not None:
            claims, _ = self._verified_pull_requests(
                manifests, commit, repository, skip=set(merged)
            )
            merged.update(claims)
        return merged

    def _verified_pull_requests(
        self,
        manifests: Commit,
        anchor: str | None,
        repository: str,
        *,
        skip: set[int] | None = None,
    ) -> tuple[dict[int, str], list[str]]:
        """The message's PR claims that hold, with their merge commits; and why the others do
        not. Each PR must be of `repository`, and its merge `anchor` or an ancestor of it (None:
        no such check)."""
        merged: dict[int, str] = {}
        refused: list[str] = []
        for number in sorted(claimed_pull_requests(manifests.comment, self._patterns)):
            if skip and number in skip:
                continue
            pr = self._pull_request(number)
            problem = self._claim_problem(pr, number, manifests, anchor, repository)
            if problem or pr is None or pr.merge_commit is None:
                refused.append(problem or f"pull request {number} has no merge commit")
                continue
            merged[number] = pr.merge_commit.lower()
        return merged, refused

    def _claim_problem(
        self,
        pr: PullRequest | None,
        number: int,
        manifests: Commit,
        anchor: str | None,
        repository: str,
    ) -> str:
        if pr is None:
            return f"pull request {number} was not found"
        if pr.status != "completed" or not pr.merge_commit:
            return f"pull request {number} is {pr.status}, not completed"
        if repository.lower() not in {pr.repository_name.lower(), pr.repository_id.lower()}:
            return f"pull request {number} is not in {repository}"
        if not _not_older(manifests.committed_at, pr.closed_date):
            return f"manifests commit {manifests.commit_id[:8]} is older than PR {number}'s merge"
        merge = pr.merge_commit.lower()
        if anchor is not None and not self.descends(repository, merge, anchor):
            return f"pull request {number}'s merge {merge[:8]} is not in {anchor[:8]}"
        return ""

    # --- ancestry -------------------------------------------------------------------------------

    def descends(self, repository: str, ancestor: str, commit: str) -> bool:
        """Whether `commit` is `ancestor` or a descendant of it, in `repository` (remembered)."""
        ancestor, commit = ancestor.lower(), commit.lower()
        if ancestor == commit:
            return True
        known = self._facts.fact("ancestor", ancestor, commit)
        if known is not None:
            return bool(known)
        try:
            answer = self._reader.is_ancestor(repository, ancestor, commit)
        except PermanentAzureDevOpsError as exc:
            if exc.status_code != NOT_FOUND:
                # A refusal configuration may fix: no, for now, and ask again next time.
                logger.warning("link.ancestry_refused", extra={"error": exc.message})
                return False
            answer = False  # one of them is not in the repository
        self._facts.remember("ancestor", (ancestor, commit), answer)
        return answer

    # --- reads ------------------------------------------------------------------------------------

    def _commit(self, repository: str, commit: str) -> Commit | None:
        return self._guarded(lambda: self._reader.get_commit(repository, commit))

    def _pull_request(self, number: int) -> PullRequest | None:
        return self._guarded(lambda: self._reader.get_pull_request(number))

    @staticmethod
    def _guarded(read: Callable[[], T]) -> T | None:
        """A read whose 404 means "no such thing" (remembered); other refusals are not kept."""
        try:
            return read()
        except PermanentAzureDevOpsError as exc:
            if exc.status_code == NOT_FOUND:
                return None
            raise _NotCacheableError(f"Azure DevOps refused a link look-up: {exc.message}") from exc


def _not_older(committed: datetime | None, merged: datetime | None) -> bool:
    """The manifests commit was made at or after the merge (to the second: git dates have no
    fractions). Unknown dates prove nothing, so they fail the check."""
    if committed is None or merged is None:
        return False
    return committed >= merged.replace(microsecond=0)
