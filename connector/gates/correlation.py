"""Which deployed commits concern which gates: the gate's own commit or a descendant of it, or
the merge commit of the gate's pull request. Answers from Azure DevOps that never change are
asked once and remembered in the gate store's facts."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

from connector.core.gates import Gate
from connector.devops.types import PermanentAzureDevOpsError, PullRequest, RepositoryReader
from connector.gates.policy import GatePolicy
from connector.gates.store import GateStore

logger = logging.getLogger(__name__)


class Correlation:
    def __init__(self, policy: GatePolicy, gates: GateStore, devops: RepositoryReader) -> None:
        self._policy = policy
        self._gates = gates
        self._devops = devops

    def concerned(self, gate: Gate, commit: str) -> Gate | None:
        """The gate (with its commit learned, for a PR gate) when `commit` concerns it."""
        if gate.commit is not None:
            return gate if self.is_descendant(gate.commit, commit) else None
        if gate.pull_request_id is not None and gate.pull_request_id in self.prs_of(commit):
            learned = self._gates.update(gate, lambda g: replace(g, commit=g.commit or commit))
            return learned or replace(gate, commit=commit)
        return None

    def is_descendant(self, ancestor: str, commit: str) -> bool:
        if ancestor == commit:
            return True
        known = self._gates.fact("ancestor", ancestor, commit)
        if known is not None:
            return bool(known)
        try:
            answer = self._devops.is_ancestor(self._policy.gitops_repo, ancestor, commit)
        except PermanentAzureDevOpsError:
            answer = False  # e.g. one of them is not in the repository
        self._gates.remember("ancestor", (ancestor, commit), answer)
        return answer

    def prs_of(self, commit: str) -> set[int]:
        """Pull requests a merge commit belongs to: by Azure DevOps' own record, and by the PR
        numbers the merge message names (patterns from `PR_NUMBER_PATTERNS`)."""
        known = self._gates.fact("prs", commit)
        if known is not None:
            return set(known)
        prs: set[int] = set()
        try:
            found = self._devops.pull_requests_for_merge_commit(self._policy.pr_repo, commit)
            prs |= {pr.pull_request_id for pr in found}
            message = self._devops.get_commit(self._policy.gitops_repo, commit).comment
            patterns = self._policy.pr_number_patterns
            prs |= {int(m.group(1)) for p in patterns for m in p.finditer(message)}
        except PermanentAzureDevOpsError as exc:
            logger.warning("gate.pr_lookup_refused", extra={"commit": commit, "error": exc.message})
        self._gates.remember("prs", (commit,), sorted(prs))
        return prs

    def pull_request(self, gate: Gate) -> PullRequest | None:
        """The gate's pull request as Azure DevOps has it now (None: no PR, or not found)."""
        if gate.pull_request_id is None:
            return None
        try:
            return self._devops.get_pull_request(gate.pull_request_id)
        except PermanentAzureDevOpsError as exc:
            # Unknown here (another project?): the gate waits for a deployment or its deadline.
            logger.warning("gate.pr_not_found", extra={"gate": gate.id, "error": exc.message})
            return None

    def abandoned_pull_requests(self, gates: Iterable[Gate]) -> set[int]:
        """PRs abandoned since the oldest gate still waiting for its PR to merge."""
        waiting = [g for g in gates if g.pull_request_id is not None and g.commit is None]
        if not waiting:
            return set()
        since = min(g.created_at for g in waiting)
        found = self._devops.list_abandoned_pull_requests(self._policy.pr_repo, since)
        return {pr.pull_request_id for pr in found}
