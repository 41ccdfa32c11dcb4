"""Which deployed manifests commits concern which gates.

- A gate on a manifests commit: that commit or a descendant of it.
- A gate on a pull request of the manifests repository: the PR's merge commit (Azure DevOps'
  own record, or a verified claim of the message).
- A gate in HLD terms (an HLD commit, or a PR of the HLD repository, in a three-repository
  setup): a manifests commit whose verified link (`devops.links`) is the gate's HLD commit or a
  descendant of it in the HLD repository. The first such commit becomes the gate's `commit`, from
  which descendants are followed as for any gate; the HLD commit stays in `hld_commit`.
Answers from Azure DevOps that never change are asked once and remembered in the facts table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from connector.core import gate_transitions as transitions
from connector.core.gates import Gate
from connector.devops.links import CommitLinks
from connector.devops.types import PermanentAzureDevOpsError, PullRequest, RepositoryReader
from connector.gates.config import GatePolicy
from connector.gates.store import GateStore

logger = logging.getLogger(__name__)


class Correlation:
    def __init__(
        self, policy: GatePolicy, gates: GateStore, devops: RepositoryReader, links: CommitLinks
    ) -> None:
        self._policy = policy
        self._gates = gates
        self._devops = devops
        self.links = links

    def concerned(self, gate: Gate, commit: str) -> Gate | None:
        """The gate (with what it learned stored) when the manifests `commit` concerns it."""
        if gate.commit is not None:
            return gate if self.is_descendant(gate.commit, commit) else None
        if self.in_hld_terms(gate):
            return self._linked(gate, commit)
        number = gate.pull_request_id
        if number is not None and number in self.links.merged_into(commit):
            learned = self._gates.update(gate, transitions.learn_commit, commit)
            return learned or transitions.learn_commit(gate, commit) or gate
        return None

    def in_hld_terms(self, gate: Gate) -> bool:
        """Whether the gate waits for a change of the HLD repository (three repositories)."""
        repositories = self.links.repositories
        return repositories.three and repositories.is_change(
            gate.repository or self._policy.pr_repo
        )

    def is_descendant(self, ancestor: str, commit: str) -> bool:
        """In the manifests repository."""
        return self.links.descends(self._policy.gitops_repo, ancestor, commit)

    def deploys(self, merge: str, commit: str) -> bool:
        """Whether the manifests `commit` carries the PR merge `merge`: a descendant of it in the
        manifests repository, or with an HLD repository, rendered from it or a descendant."""
        if self.links.repositories.three:
            return self.links.link(commit).linked and self._carries(merge, commit)
        return self.is_descendant(merge, commit)

    def prs_of(self, commit: str) -> set[int]:
        """Completed pull requests of `AZDO_PR_REPO` a manifests commit carries (verified, never
        a message's say)."""
        return set(self.links.pull_requests(commit))

    # --- gates in HLD terms -----------------------------------------------------------------

    def _linked(self, gate: Gate, commit: str) -> Gate | None:
        link = self.links.link(commit)
        if not link.linked:
            self._note(gate, link.problem)
            return None
        target = gate.hld_commit or self._merge_of(gate, link.merged)
        if target is None or not self._carries(target, commit):
            return None
        return self._learn(gate, commit, target)

    def first_deployed(self, gate: Gate, commits: Iterable[str]) -> Gate | None:
        """For a gate that knows its HLD commit: the oldest of the deployed manifests `commits`
        that carries it (learned as the gate's commit), else None. When none is an ancestor of
        all the others, the first carrying one: the gate may wait longer, never finish sooner."""
        target = gate.hld_commit
        if target is None:
            return None
        carrying = []
        for commit in sorted(set(commits)):
            link = self.links.link(commit)
            if not link.linked:
                self._note(gate, link.problem)
            elif self._carries(target, commit):
                carrying.append(commit)
        if not carrying:
            return None
        oldest = next(
            (c for c in carrying if all(self.is_descendant(c, o) for o in carrying)), carrying[0]
        )
        return self._learn(gate, oldest, target)

    def _carries(self, hld_commit: str, commit: str) -> bool:
        """Whether the manifests commit was rendered from `hld_commit` or a descendant of it."""
        hld = self.links.repositories.change
        return any(
            self.links.descends(hld, hld_commit, h) for h in self.links.link(commit).hld_commits
        )

    def _learn(self, gate: Gate, commit: str, hld_commit: str) -> Gate:
        learned = self._gates.update(gate, transitions.learn_link, commit, hld_commit)
        return learned or transitions.learn_link(gate, commit, hld_commit) or gate

    def _merge_of(self, gate: Gate, merged: Mapping[int, str]) -> str | None:
        """The HLD commit of a gate on an HLD pull request: from the link when it names the PR,
        else from the PR itself once it completed (stored on the gate: it never changes)."""
        number = gate.pull_request_id
        if number is None:
            return None
        if number in merged:
            return merged[number]
        pr = self.pull_request(gate)
        if pr is None or pr.status != "completed" or not pr.merge_commit:
            return None
        return self.learn_hld_commit(gate, pr.merge_commit.lower())

    def learn_hld_commit(self, gate: Gate, hld_commit: str) -> str:
        self._gates.update(gate, transitions.learn_hld_commit, hld_commit)
        return hld_commit

    def _note(self, gate: Gate, problem: str) -> None:
        """An unlinked manifests commit completes nothing: the gate records why it waits."""
        if not problem or gate.link_problem == problem:
            return
        # Against the stored gate: a scan over several unlinked commits writes each problem once.
        written = self._gates.update(gate, transitions.record_link_problem, problem)
        if written is not None:
            logger.warning("gate.unlinked_commit", extra={"gate": gate.id, "problem": problem})

    # --- pull requests ------------------------------------------------------------------------

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
        waiting = [g for g in gates if g.pull_request_id is not None and _unmerged(g)]
        if not waiting:
            return set()
        since = min(g.created_at for g in waiting)
        found = self._devops.list_abandoned_pull_requests(self._policy.pr_repo, since)
        return {pr.pull_request_id for pr in found}


def _unmerged(gate: Gate) -> bool:
    return gate.commit is None and gate.hld_commit is None
