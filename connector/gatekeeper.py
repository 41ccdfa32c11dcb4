"""Runs the gates: correlates deployed commits to waiting gates, evaluates them, writes progress to
the waiting task, and completes each gate exactly once.

Exactly once: a gate moves waiting → completing by a conditional write (one instance wins), the
winner checks the plan and job state (a finished job is not completed again), posts TaskCompleted
and then records the final state. A claim whose holder crashed can be taken over after
`CLAIM_TIMEOUT`; a failed post releases the claim so that the redelivery retries at once.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from connector import telemetry
from connector.devops import (
    AzureDevOpsError,
    CommitStatus,
    ForeignOrganizationError,
    PermanentAzureDevOpsError,
    PipelineCallbacks,
    PlanRef,
    PullRequest,
    RepositoryReader,
    StatusWriter,
    same_organization,
)
from connector.gates import OPEN, Decision, Gate, GateState, decide, gate_id
from connector.gatestore import GateStore
from connector.rollup import Rollup
from connector.settings import Settings
from connector.store import DeploymentStore, Recorded
from connector.tracking import EnvironmentResult, Observation, Phase

logger = logging.getLogger(__name__)

CLAIM_TIMEOUT = timedelta(minutes=2)
# How long past its deadline a gate keeps retrying a completion refused for lack of permission.
PERMISSION_PATIENCE = timedelta(hours=24)
LEGACY_PROPERTY = "callback-task-id"
_PR_STATE = {Phase.PROGRESSING: "pending", Phase.SUCCEEDED: "succeeded", Phase.FAILED: "failed"}


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
        """A deployed commit changed state: evaluate the gates it may concern."""
        if obs.commit is None:
            return
        self._pick_up_pr_property_gates(obs.commit)
        for gate in self._gates.open_gates(obs.env):
            concerned = self._correlate(gate, obs.commit)
            if concerned is not None:
                self.evaluate(concerned)

    def sweep(self) -> int:
        """Timer: fail timed-out gates and those of PRs abandoned unnoticed; retry stuck ones."""
        gates = self._gates.open_gates()
        abandoned = self._abandoned_pull_requests(gates)
        for gate in gates:
            if gate.pull_request_id in abandoned and gate.commit is None:
                self._complete(gate, _abandoned(gate))
            else:
                self.evaluate(gate)
        return len(gates)

    def abandon(self, repository_names: Iterable[str], pull_request_id: int) -> int:
        """A service hook said a PR was abandoned: fail the gates still waiting for it.
        `repository_names`: the PR's repository id and name (gates store either)."""
        names = {n.lower() for n in repository_names if n}
        failed = 0
        for gate in self._gates.open_gates():
            repo = (gate.repository or self._settings.pr_repo).lower()
            if gate.pull_request_id == pull_request_id and (not names or repo in names):
                self._complete(gate, _abandoned(gate))
                failed += 1
        return failed

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
            self._resume_completion(gate)
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
        gate = self._report_progress(gate, decision, result)
        if decision.result is not None:
            self._complete(gate, decision)

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
            self._complete(gate, _abandoned(gate))
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

    # --- what the waiting pipeline sees -------------------------------------------------------

    def _report_progress(self, gate: Gate, decision: Decision, result: EnvironmentResult) -> Gate:
        digest = decision.progress_digest
        pr_state = _PR_STATE[result.phase] if decision.result is None else decision.result
        if digest == gate.progress and pr_state == gate.pr_status:
            return gate
        try:
            if digest != gate.progress and gate.plan.timeline_id and decision.result is None:
                self._callbacks(gate).append_feed(
                    gate.plan, [f"{gate.environment}: {line}" for line in decision.lines]
                )
            if pr_state != gate.pr_status and gate.pull_request_id is not None:
                self._post_pr_status(gate, pr_state, decision)
        except AzureDevOpsError as exc:
            # Progress is for people watching; it must never hold up the gate itself.
            logger.warning("gate.progress_failed", extra={"gate": gate.id, "error": str(exc)})
            return gate
        updated = self._gates.update(
            gate, lambda g: replace(g, progress=digest, pr_status=pr_state)
        )
        return updated or gate

    def _post_pr_status(self, gate: Gate, state: str, decision: Decision) -> None:
        if gate.pull_request_id is None:
            return
        status = CommitStatus(
            state=state,
            description=decision.reason[:250],
            genre=self._settings.status_genre,
            name=f"env/{gate.environment}",
        )
        repository = gate.repository or self._settings.pr_repo
        self._devops.post_pull_request_status(repository, gate.pull_request_id, status)

    # --- completion, exactly once -------------------------------------------------------------

    def _complete(self, gate: Gate, decision: Decision) -> None:
        result = decision.result or "failed"
        now = self._clock()

        def claim(g: Gate) -> Gate | None:
            if g.state != GateState.WAITING:
                return None
            return replace(
                g,
                state=GateState.COMPLETING,
                result=result,
                result_reason=decision.reason,
                claimed_at=now,
            )

        claimed = self._gates.update(gate, claim)
        if claimed is None:
            return  # another instance decided first
        self._finish(claimed, result, decision.reason)

    def _resume_completion(self, gate: Gate) -> None:
        """A claim that was released or whose holder died is taken over."""
        now = self._clock()
        if gate.claimed_at is not None and now - gate.claimed_at < CLAIM_TIMEOUT:
            return

        def reclaim(g: Gate) -> Gate | None:
            stale = g.claimed_at is None or now - g.claimed_at >= CLAIM_TIMEOUT
            return replace(g, claimed_at=now) if g.state == GateState.COMPLETING and stale else None

        claimed = self._gates.update(gate, reclaim)
        if claimed is not None:
            self._finish(claimed, claimed.result or "failed", claimed.result_reason)

    def _finish(self, gate: Gate, result: str, reason: str) -> None:
        try:
            self._post_completion(gate, result, reason)
        except ForeignOrganizationError:
            reason = f"not completed: plan URL outside {self._settings.azdo_org_url}"
            logger.error("gate.foreign_plan_url", extra={"gate": gate.id})  # noqa: TRY400
        except PermanentAzureDevOpsError as exc:
            if (
                exc.status_code in (401, 403)
                and self._clock() < gate.deadline + PERMISSION_PATIENCE
            ):
                # Missing permissions can be granted while the job still waits: keep the claim
                # (retried after CLAIM_TIMEOUT by the sweep) instead of giving the gate up.
                logger.error(  # noqa: TRY400 - the status and message say what to fix
                    "gate.completion_unauthorized",
                    extra={"gate": gate.id, "status_code": exc.status_code, "error": exc.message},
                )
                return
            reason = f"not completed: Azure DevOps refused ({exc.status_code}): {exc.message}"
            logger.warning("gate.completion_refused", extra={"gate": gate.id, "error": exc.message})
        except Exception:
            # Release the claim so that the redelivery (or the sweep) retries straight away.
            self._gates.update(gate, lambda g: replace(g, claimed_at=None))
            raise
        final = GateState.SUCCEEDED if result == "succeeded" else GateState.FAILED
        self._gates.update(gate, lambda g: replace(g, state=final, result_reason=reason))
        telemetry.gates_completed.add(1, {"env": gate.environment, "result": result})
        logger.info("gate.completed", extra={"gate": gate.id, "result": result, "reason": reason})

    def _post_completion(self, gate: Gate, result: str, reason: str) -> None:
        callbacks = self._callbacks(gate)
        plan_state = callbacks.get_plan_state(gate.plan)
        # An unknown plan (404) is still tried: TaskCompleted then fails permanently with the
        # service's own reason, rather than being skipped on a guess.
        if plan_state.is_finished:
            logger.info("gate.plan_already_finished", extra={"gate": gate.id})
            return
        if gate.plan.timeline_id:
            try:
                callbacks.append_feed(gate.plan, [f"{gate.environment}: {result}: {reason}"])
            except AzureDevOpsError:
                logger.warning("gate.final_line_failed", extra={"gate": gate.id})
        if gate.pull_request_id is not None and gate.pr_status != result:
            try:
                self._post_pr_status(gate, result, Decision(result, reason, ()))
            except AzureDevOpsError:
                logger.warning("gate.pr_status_failed", extra={"gate": gate.id})
        callbacks.post_task_completed(gate.plan, result)

    def _callbacks(self, gate: Gate) -> PipelineCallbacks:
        """The job's own token when `GATE_USE_JOB_TOKEN` kept it, else our identity."""
        if self._job_client is not None and gate.auth_token:
            return self._job_client(gate.auth_token)
        return self._devops


def _abandoned(gate: Gate) -> Decision:
    return Decision("failed", f"pull request {gate.pull_request_id} was abandoned", ())
