"""Runs the gates: correlates deployed commits to waiting gates and evaluates them. What the
waiting task is told lives in `gate_story`, completing it exactly once in `gate_completion`.

Every path that touches several gates (events, the service hook, the sweep) isolates each gate:
one that fails is logged with its id and never stops the others.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from azure.core.exceptions import AzureError

from connector import retries, telemetry
from connector.core.gates import OPEN, Decision, Gate, GateState, decide, gate_id
from connector.core.rollup import Rollup
from connector.core.tracking import EnvironmentResult, Observation
from connector.devops.client import (
    AzureDevOpsError,
    PermanentAzureDevOpsError,
    PipelineCallbacks,
    PlanRef,
    PullRequest,
    RepositoryReader,
    StatusWriter,
    TransientAzureDevOpsError,
    same_organization,
)
from connector.gates.completion import Completion
from connector.gates.store import GateStore
from connector.gates.story import TaskStory
from connector.settings import Settings
from connector.storage.tables import ConcurrencyError, DeploymentStore, Recorded

logger = logging.getLogger(__name__)

LEGACY_PROPERTY = "callback-task-id"


class DevOps(RepositoryReader, PipelineCallbacks, StatusWriter, Protocol):
    """What gates need from Azure DevOps."""


class GateKeeper:
    def __init__(
        self,
        settings: Settings,
        gates: GateStore,
        deployments: DeploymentStore,
        devops: DevOps,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        job_client: Callable[[str], PipelineCallbacks] | None = None,
    ) -> None:
        self._settings = settings
        self._gates = gates
        self._rollup = Rollup(settings, deployments)
        self._devops = devops
        self._job_client = job_client
        self._clock = clock
        self._patterns = [re.compile(p, re.MULTILINE) for p in settings.pr_number_patterns]
        trial = settings.azdo_dry_run
        self._story = TaskStory(
            gates,
            devops,
            self._callbacks,
            genre=settings.status_genre,
            pr_repository=settings.pr_repo,
            trial=trial,
            clock=clock,
        )
        self._completion = Completion(
            gates,
            self._story,
            self._callbacks,
            org_url=settings.azdo_org_url,
            trial=trial,
            clock=clock,
        )

    # --- entry points -------------------------------------------------------------------------

    def register(self, gate: Gate) -> Gate:
        stored = self._gates.add(gate)
        telemetry.gates_registered.add(1, {"env": stored.environment, "source": stored.source})
        logger.info(
            "gate.registered",
            extra={
                "gate": stored.id,
                "env": stored.environment,
                "commit": stored.commit,
                "state": stored.state.value,
            },
        )
        return stored

    def check(self, environment: str, gate: str) -> None:
        """Evaluate one gate now (after registration, and from the sweep)."""
        found = self._gates.get(environment, gate)
        if found is not None and found.state in OPEN:
            self.evaluate(found)

    def on_observation(self, obs: Observation, recorded: Recorded, env: EnvironmentResult) -> None:
        """A deployed commit changed state: evaluate the gates it may concern. One gate's
        failure never stops the others; a retryable one is raised after them (redelivery)."""
        commit = obs.commit
        if commit is None:
            return
        self._pick_up_pr_property_gates(commit)

        def consider(gate: Gate) -> None:
            concerned = self._correlate(gate, commit)
            if concerned is not None:
                self.evaluate(concerned)

        _raise_first([self._isolated(g, consider) for g in self._gates.open_gates(obs.env)])

    def sweep(self) -> int:
        """Timer: fail timed-out gates and those of PRs abandoned unnoticed; retry stuck ones.
        Each gate is isolated: one that fails is logged and the sweep goes on."""
        gates = self._gates.open_gates()
        try:
            abandoned = self._abandoned_pull_requests(gates)
        except AzureDevOpsError as exc:
            logger.warning("sweep.abandoned_lookup_failed", extra={"error": str(exc)})
            abandoned = set()

        def sweep_one(gate: Gate) -> None:
            with retries.wait_budget():
                if gate.pull_request_id in abandoned and gate.commit is None:
                    self._fail_if_abandoned(gate)
                else:
                    self.evaluate(gate)

        for gate in gates:
            self._isolated(gate, sweep_one)
        return len(gates)

    def abandon(self, repository_names: Iterable[str], pull_request_id: int) -> int:
        """A service hook said a PR was abandoned: fail the gates still waiting for it, once
        Azure DevOps confirms it (a replayed or late hook for a merged PR changes nothing).
        `repository_names`: the PR's repository id and name (gates store either)."""
        names = {n.lower() for n in repository_names if n}
        waiting = [
            gate
            for gate in self._gates.open_gates()
            if gate.pull_request_id == pull_request_id
            and gate.state == GateState.WAITING
            and (not names or (gate.repository or self._settings.pr_repo).lower() in names)
        ]
        failed: list[Gate] = []

        def fail(gate: Gate) -> None:
            if self._fail_if_abandoned(gate):
                failed.append(gate)

        _raise_first([self._isolated(gate, fail) for gate in waiting])
        return len(failed)

    def _fail_if_abandoned(self, gate: Gate) -> bool:
        """Fail a gate for its abandoned PR, after reading the PR itself: one that completed
        (merged) or is active again never fails by abandonment."""
        pr = self._pull_request(gate)
        if pr is None or pr.status != "abandoned":
            logger.info(
                "gate.abandonment_not_confirmed",
                extra={"gate": gate.id, "status": pr.status if pr else "unknown"},
            )
            return False
        self._complete(gate, _abandoned(gate))
        return True

    # --- evaluation ---------------------------------------------------------------------------

    def evaluate(self, gate: Gate) -> None:
        with telemetry.span(
            "gate.evaluate",
            gate=gate.id,
            env=gate.environment,
            commit=gate.commit,
            state=gate.state.value,
        ):
            self._evaluate(gate)

    def _evaluate(self, gate: Gate) -> None:
        if gate.state == GateState.COMPLETING:
            self._completion.resume(gate)
            return
        commit = gate.commit or self._merge_commit(gate)
        if commit is None:
            return
        result = self._rollup.environment(
            commit,
            gate.environment,
            clusters=gate.clusters,
            objects=gate.objects,
            follow=self._is_descendant,
        )
        grace = timedelta(seconds=self._settings.gate_failure_grace_seconds)
        decision = decide(gate, result, commit, self._clock(), grace)
        gate = self._story.progress(gate, decision, result)
        if decision.result is not None:
            self._complete(gate, decision)

    def _complete(self, gate: Gate, decision: Decision) -> None:
        self._completion.complete(gate, decision)

    def _correlate(self, gate: Gate, commit: str) -> Gate | None:
        """The gate (with its commit learned, for a PR gate) when `commit` concerns it."""
        if gate.commit is not None:
            concerned = gate.commit == commit or self._is_descendant(gate.commit, commit)
            return gate if concerned else None
        if gate.pull_request_id is not None and gate.pull_request_id in self._prs_of(commit):
            learned = self._gates.update(gate, lambda g: replace(g, commit=g.commit or commit))
            return learned or replace(gate, commit=commit)
        return None

    def _merge_commit(self, gate: Gate) -> str | None:
        """For a gate on a PR: its merge commit once the PR completed (stored for next time).
        Meanwhile the gate fails if the PR was abandoned or the deadline passed."""
        pr = self._pull_request(gate)
        if pr is not None and pr.status == "completed" and pr.merge_commit:
            merge = pr.merge_commit
            self._gates.update(gate, lambda g: replace(g, commit=g.commit or merge))
            return merge
        if pr is not None and pr.status == "abandoned":
            self._complete(gate, _abandoned(gate))  # just read from Azure DevOps: confirmed
        elif self._clock() >= gate.deadline:
            self._complete(gate, Decision("failed", "timed out before the PR merged", ()))
        return None

    def _pull_request(self, gate: Gate) -> PullRequest | None:
        if gate.pull_request_id is None:
            return None
        try:
            return self._devops.get_pull_request(gate.pull_request_id)
        except PermanentAzureDevOpsError as exc:
            # Unknown here (another project?): the gate waits for a deployment or its deadline.
            logger.warning("gate.pr_not_found", extra={"gate": gate.id, "error": exc.message})
            return None

    # --- correlation facts (asked once, remembered) -------------------------------------------

    def _is_descendant(self, ancestor: str, commit: str) -> bool:
        if ancestor == commit:
            return True
        known = self._gates.fact("ancestor", ancestor, commit)
        if known is not None:
            return bool(known)
        try:
            answer = self._devops.is_ancestor(self._settings.azdo_gitops_repo, ancestor, commit)
        except PermanentAzureDevOpsError:
            answer = False  # e.g. one of them is not in the repository
        self._gates.remember("ancestor", (ancestor, commit), answer)
        return answer

    def _prs_of(self, commit: str) -> set[int]:
        """Pull requests a merge commit belongs to: by Azure DevOps' own record, and by the PR
        numbers the merge message names (patterns from `PR_NUMBER_PATTERNS`)."""
        known = self._gates.fact("prs", commit)
        if known is not None:
            return set(known)
        prs: set[int] = set()
        try:
            found = self._devops.pull_requests_for_merge_commit(self._settings.pr_repo, commit)
            prs |= {pr.pull_request_id for pr in found}
            message = self._devops.get_commit(self._settings.azdo_gitops_repo, commit).comment
            prs |= {int(m.group(1)) for p in self._patterns for m in p.finditer(message)}
        except PermanentAzureDevOpsError as exc:
            logger.warning("gate.pr_lookup_refused", extra={"commit": commit, "error": exc.message})
        self._gates.remember("prs", (commit,), sorted(prs))
        return prs

    def _abandoned_pull_requests(self, gates: Iterable[Gate]) -> set[int]:
        waiting = [g for g in gates if g.pull_request_id is not None and g.commit is None]
        if not waiting:
            return set()
        since = min(g.created_at for g in waiting)
        found = self._devops.list_abandoned_pull_requests(self._settings.pr_repo, since)
        return {pr.pull_request_id for pr in found}

    # --- compatibility with the existing connector's pipelines --------------------------------

    def _pick_up_pr_property_gates(self, commit: str) -> None:
        """PRs of the existing gitops-connector carry their callback in a PR property."""
        for pr in sorted(self._prs_of(commit)):
            if self._gates.fact("legacy", str(pr)) is not None:
                continue
            try:
                props = self._devops.get_pull_request_properties(self._settings.pr_repo, pr)
            except PermanentAzureDevOpsError:
                props = {}
            gate = self._legacy_gate(pr, commit, props.get(LEGACY_PROPERTY))
            if gate is not None:
                self.register(gate)
            self._gates.remember("legacy", (str(pr),), True)

    def _legacy_gate(self, pr: int, commit: str, raw: str | None) -> Gate | None:
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
        env = str(data.get("environment") or self._settings.legacy_callback_environment)
        if not env:
            logger.warning("gate.legacy_without_environment", extra={"pull_request": pr})
            return None
        if not same_organization(plan.plan_url, self._settings.azdo_org_url):
            logger.warning("gate.legacy_foreign_plan_url", extra={"pull_request": pr})
            return None
        now = self._clock()
        return Gate(
            id=gate_id(plan.plan_id, plan.job_id),
            plan=plan,
            environment=env,
            created_at=now,
            deadline=now + timedelta(minutes=self._settings.gate_timeout_minutes),
            commit=commit,
            pull_request_id=pr,
            repository=self._settings.pr_repo,
            source="pr-property",
        )

    def _callbacks(self, gate: Gate) -> PipelineCallbacks:
        """The job's own token when `GATE_USE_JOB_TOKEN` kept it, else our identity."""
        if self._job_client is not None and gate.auth_token:
            return self._job_client(gate.auth_token)
        return self._devops

    def _isolated(self, gate: Gate, work: Callable[[Gate], None]) -> Exception | None:
        """Run one gate's work so that its failure never stops the other gates: logged with the
        gate id; returned when a retry may help (the caller raises it after the others)."""
        try:
            work(gate)
        except Exception as exc:
            retry = isinstance(exc, (TransientAzureDevOpsError, AzureError, ConcurrencyError))
            logger.warning(
                "gate.failed",
                extra={"gate": gate.id, "env": gate.environment, "error": type(exc).__name__},
                exc_info=not retry,
            )
            return exc if retry else None
        return None


def _abandoned(gate: Gate) -> Decision:
    return Decision("failed", f"pull request {gate.pull_request_id} was abandoned", ())


def _raise_first(errors: Iterable[Exception | None]) -> None:
    for error in errors:
        if error is not None:
            raise error
