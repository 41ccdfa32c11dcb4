"""Compatibility with the existing gitops-connector's pipelines: their PRs carry the waiting
task's callback in a PR property (`callback-task-id`); such a PR becomes a gate when its merge
commit deploys. A callback URL outside the configured organisation is never used."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from connector.core.gates import Gate, PlanRef, gate_id
from connector.devops.organization import same_organization
from connector.devops.types import PermanentAzureDevOpsError, RepositoryReader
from connector.gates.correlation import Correlation
from connector.gates.policy import GatePolicy
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
        found = []
        for pr in sorted(self._correlation.prs_of(commit)):
            if self._gates.fact("legacy", str(pr)) is not None:
                continue
            try:
                props = self._devops.get_pull_request_properties(self._policy.pr_repo, pr)
            except PermanentAzureDevOpsError:
                props = {}
            gate = self._gate(pr, commit, props.get(LEGACY_PROPERTY))
            if gate is not None:
                found.append(gate)
            self._gates.remember("legacy", (str(pr),), True)
        return found

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
        env = str(data.get("environment") or self._policy.legacy_environment)
        if not env:
            logger.warning("gate.legacy_without_environment", extra={"pull_request": pr})
            return None
        if not same_organization(plan.plan_url, self._policy.org_url):
            logger.warning("gate.legacy_foreign_plan_url", extra={"pull_request": pr})
            return None
        now = self._clock()
        return Gate(
            id=gate_id(plan.plan_id, plan.job_id),
            plan=plan,
            environment=env,
            created_at=now,
            deadline=now + self._policy.timeout,
            commit=commit,
            pull_request_id=pr,
            repository=self._policy.pr_repo,
            source="pr-property",
        )
