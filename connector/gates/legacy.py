"""Compatibility with the existing gitops-connector's pipelines: their PRs carry the waiting
task's callback in a PR property (`callback-task-id`); such a PR becomes a gate when its merge
commit deploys. A callback URL outside the configured organisation is never used.

PR properties are invisible in the web UI and writable by anyone who may contribute to the PR, so
they are honoured only when `LEGACY_CALLBACK_ENVIRONMENT` is set (opt-in), only for a completed
PR whose merge commit is the deployed commit or an ancestor of it (a commit message naming a PR
proves nothing), always for that configured environment (never the property's), and never for a
job that is bound to another environment (`bindings`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from connector.core.gates import Gate, PlanRef, gate_id
from connector.devops.organization import same_organization
from connector.devops.types import PermanentAzureDevOpsError, PullRequest, RepositoryReader
from connector.gates import bindings
from connector.gates.config import GatePolicy
from connector.gates.correlation import Correlation
from connector.gates.store import GateStore

logger = logging.getLogger(__name__)

LEGACY_PROPERTY = "callback-task-id"


class LegacyCallbacks:
    def __init__(
        self,
        policy: GatePolicy,
        gates: GateStore,
        devops: RepositoryReader,
        correlation: Correlation,
        clock: Callable[[], datetime],
    ) -> None:
        self._policy = policy
        self._gates = gates
        self._devops = devops
        self._correlation = correlation
        self._clock = clock

    def gates_for(self, commit: str) -> list[Gate]:
        """New gates from the PR properties of the PRs `commit` merged (each PR read once)."""
        if not self._policy.legacy_environment:
            return []  # not opted in: properties are never read
        found = []
        for pr in sorted(self._correlation.prs_of(commit)):
            if self._gates.fact("legacy", str(pr)) is not None:
                continue
            merged = self._merged(pr, commit)
            if merged is None:
                continue  # not (yet) a completed PR of this deployment: asked again next time
            gate = self._gate(pr, merged, self._properties(pr).get(LEGACY_PROPERTY))
            if gate is not None:
                found.append(gate)
            self._gates.remember("legacy", (str(pr),), True)
        return found

    def _merged(self, pr: int, commit: str) -> str | None:
        """The PR's merge commit when the PR is completed and that commit is `commit` or an
        ancestor of it; None otherwise (an unknown PR is remembered as read)."""
        try:
            found: PullRequest = self._devops.get_pull_request(pr)
        except PermanentAzureDevOpsError:
            self._gates.remember("legacy", (str(pr),), True)
            return None
        merge = found.merge_commit
        if found.status != "completed" or not merge:
            logger.warning("gate.legacy_pr_not_completed", extra={"pull_request": pr})
            return None
        if not self._correlation.deploys(merge.lower(), commit):
            logger.warning("gate.legacy_pr_not_deployed", extra={"pull_request": pr})
            return None
        return merge.lower()

    def _properties(self, pr: int) -> dict[str, str]:
        try:
            return self._devops.get_pull_request_properties(self._policy.pr_repo, pr)
        except PermanentAzureDevOpsError:
            return {}

    def _gate(self, pr: int, commit: str, raw: str | None) -> Gate | None:
        if not raw:
            return None
        try:
            data: dict[str, Any] = {k.lower(): v for k, v in json.loads(raw).items()}
            plan = PlanRef(
                plan_url=data["planurl"],
                project_id=data["projectid"],
                hub_name=data.get("hubname", "build"),
                plan_id=data["planid"],
                job_id=data["jobid"],
                timeline_id=data.get("timelineid", ""),
                task_instance_id=data["taskid"],
            )
        except (ValueError, KeyError, AttributeError, TypeError):
            logger.warning("gate.legacy_property_invalid", extra={"pull_request": pr})
            return None
        if not same_organization(plan.plan_url, self._policy.org_url):
            logger.warning("gate.legacy_foreign_plan_url", extra={"pull_request": pr})
            return None
        now = self._clock()
        gate = Gate(
            id=gate_id(plan.plan_id, plan.job_id),
            plan=plan,
            environment=self._policy.legacy_environment,  # never the property's own
            created_at=now,
            deadline=now + self._policy.timeout,
            commit=commit,
            pull_request_id=pr,
            repository=self._policy.pr_repo,
            source="pr-property",
        )
        elsewhere = bindings.bound_elsewhere(self._gates, gate)
        if elsewhere is not None:
            logger.warning(
                "gate.legacy_job_bound_elsewhere",
                extra={"pull_request": pr, "gate": gate.id, "env": elsewhere},
            )
            return None
        return gate
