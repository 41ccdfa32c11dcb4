"""Runs the gates: registers them, evaluates those a deployed commit concerns, and sweeps for
deadlines and abandoned pull requests. Correlation lives in `correlation`, the existing
connector's PR-property callbacks in `legacy`, what the waiting task is told in `task_log`, and
completing it exactly once in `completion`: collaborators the composition root builds
(`connector.app.root.gates`). Every change of a stored gate is a named transition
(`connector.core.gate_transitions`).

Every path that touches several gates (events, the service hook, the sweep) isolates each gate:
one that fails is logged with its id and never stops the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from connector import errors, retries, telemetry
from connector.core import gate_transitions as transitions
from connector.core.gates import OPEN, Decision, Gate, GateState, decide
from connector.core.processing import Change
from connector.core.rollup import Rollup
from connector.core.state import CachedReads, DeploymentReads
from connector.core.tracking import EnvironmentResult, Phase, Verdict, environment_result
from connector.devops.types import AzureDevOpsError
from connector.gates.completion import Completion, UnconfirmedCompletionError
from connector.gates.config import GatePolicy
from connector.gates.correlation import Correlation
from connector.gates.legacy import LegacyCallbacks
from connector.gates.rechecks import GateChecks
from connector.gates.store import GateStore
from connector.gates.task_log import TaskStory

logger = logging.getLogger(__name__)

# The sweep runs every 5 minutes and may run 10 (host.json functionTimeout): it stops after 4, so
# that it ends before the next one starts, and the next one resumes, nearest deadlines first.
SWEEP_BUDGET_SECONDS = 240.0
RolledUp = dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], EnvironmentResult]


class GateKeeper:
    def __init__(
        self,
        policy: GatePolicy,
        gates: GateStore,
        deployments: DeploymentReads,
        *,
        correlation: Correlation,
        legacy: LegacyCallbacks,
        story: TaskStory,
        completion: Completion,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        checks: GateChecks | None = None,
    ) -> None:
        self._checks = checks  # when a failure's grace ends (without: the sweep sees to it)
        self._policy = policy
        self._gates = gates
        self._deployments = deployments
        self._clock = clock
        self._correlation = correlation
        self._legacy = legacy
        self._story = story
        self._completion = completion

    # --- entry points -------------------------------------------------------------------------

    def register(self, gate: Gate) -> Gate:
        if self._correlation.in_hld_terms(gate):
            # A commit of the HLD repository: the manifests commit is learned from its link.
            gate = transitions.move_commit_to_hld(gate) or gate
        stored = self._gates.add(gate)
        telemetry.gates_registered.add(1, {"env": stored.environment, "source": stored.source})
        logger.info(
            "gate.registered",
            extra={
                "gate": stored.id,
                "env": stored.environment,
                "commit": stored.commit,
                "hld_commit": stored.hld_commit,
                "state": stored.state.value,
            },
        )
        return stored

    def check(self, environment: str, gate: str) -> None:
        """Evaluate one gate now (after registration, and from the sweep)."""
        found = self._gates.get(environment, gate)
        if found is not None and found.state in OPEN:
            self.evaluate(found)

    def on_change(self, change: Change) -> None:
        """A deployed commit changed state: evaluate the gates it may concern. One gate's
        failure never stops the others; a retryable one is raised after them (redelivery)."""
        commit = change.commit
        if not commit:
            return
        for gate in self._legacy.gates_for(commit):
            self.register(gate)

        def consider(gate: Gate) -> None:
            concerned = self._correlation.concerned(gate, commit)
            if concerned is None or _unmoved(concerned, change):
                return
            if _tallied(concerned, change):
                self._evaluate_tallied(concerned, change)
            else:
                self.evaluate(concerned, change.reads)

        open_gates = self._gates.open_gates(change.obs.env)
        _raise_first([self._isolated(g, consider) for g in open_gates])

    def sweep(
        self,
        budget_seconds: float = SWEEP_BUDGET_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> int:
        """Timer: fail timed-out gates and those of PRs abandoned unnoticed; retry stuck ones.
        Nearest deadlines first (`sweep_order`); the environment's rows and each roll-up are
        read once per sweep and shared by its gates; past `budget_seconds` the rest wait for the
        next run. Each gate is isolated: one that fails is logged and the sweep goes on.
        Returns how many gates were swept."""
        started = monotonic()
        gates = sorted(self._gates.open_gates(), key=sweep_order)
        try:
            abandoned = self._correlation.abandoned_pull_requests(gates)
        except AzureDevOpsError as exc:
            logger.warning("sweep.abandoned_lookup_failed", extra={"error": str(exc)})
            abandoned = set()
        reads = CachedReads(self._deployments)  # one snapshot of each environment per sweep
        rolled: RolledUp = {}

        def sweep_one(gate: Gate) -> None:
            with retries.wait_budget():
                if gate.pull_request_id in abandoned and not (gate.commit or gate.hld_commit):
                    self._fail_if_abandoned(gate)
                else:
                    self.evaluate(gate, reads, rolled)

        for swept, gate in enumerate(gates):
            if monotonic() - started >= budget_seconds:
                left = len(gates) - swept
                logger.warning("sweep.budget_spent", extra={"swept": swept, "left": left})
                return swept
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
            and (not names or (gate.repository or self._policy.pr_repo).lower() in names)
        ]
        failed: list[Gate] = []

        def fail(gate: Gate) -> None:
            if self._fail_if_abandoned(gate):
                failed.append(gate)

        _raise_first([self._isolated(gate, fail) for gate in waiting])
        return len(failed)

    # --- evaluation ---------------------------------------------------------------------------

    def evaluate(
        self, gate: Gate, reads: DeploymentReads | None = None, rolled: RolledUp | None = None
    ) -> None:
        """Decide on one gate now; `reads`: the rows the current message already read;
        `rolled`: the roll-ups this sweep already made (gates of one environment and commit
        share one)."""
        with telemetry.span(
            "gate.evaluate",
            gate=gate.id,
            env=gate.environment,
            commit=gate.commit,
            state=gate.state.value,
        ):
            self._evaluate(gate, reads or self._deployments, rolled)

    def _evaluate_tallied(self, gate: Gate, change: Change) -> None:
        """Judge a gate on the whole environment and this very commit by the environment's tally
        (the cost of one cluster): while it says the environment is still deploying, with nothing
        failed, only the progress is told. Anything that may complete the gate (all healthy, a
        failure, the deadline) is decided by the full roll-up, which also follows descendant
        commits: the tally may wait longer than the full roll-up would, never conclude sooner."""
        result = change.environment()
        decision = decide(gate, result, gate.commit, self._clock(), self._policy.failure_grace)
        if decision.result is not None or result.phase != Phase.PROGRESSING:
            self.evaluate(gate, change.reads)
            return
        with telemetry.span("gate.evaluate", gate=gate.id, env=gate.environment, tally=True):
            self._story.progress(gate, decision, result)

    def _evaluate(self, gate: Gate, reads: DeploymentReads, rolled: RolledUp | None = None) -> None:
        if gate.state == GateState.COMPLETING:
            self._completion.resume(gate)
            return
        commit = gate.commit or self._deployed_commit(gate, reads)
        if commit is None:
            return
        wanted = (commit, gate.environment, gate.clusters, gate.objects)
        result = rolled.get(wanted) if rolled is not None else None
        if result is None:
            result = Rollup(self._policy.environments, reads).environment(
                commit,
                gate.environment,
                clusters=gate.clusters,
                objects=gate.objects,
                follow=self._correlation.is_descendant,
            )
            if rolled is not None:
                rolled[wanted] = result
        descendant = result.followed and not gate.descendant_seen
        decision = decide(gate, result, commit, self._clock(), self._policy.failure_grace)
        if descendant and decision.result is None:  # else the claim records it (one write)
            gate = self._gates.update(gate, transitions.see_descendant) or gate
        if decision.recheck_at is not None and self._checks is not None:
            key = f"grace/{int(decision.recheck_at.timestamp())}"
            self._checks.queue(gate, decision.recheck_at, key)
        gate = self._story.progress(gate, decision, result)
        if decision.result is not None:
            self._completion.complete(gate, decision, descendant_seen=descendant)

    def _deployed_commit(self, gate: Gate, reads: DeploymentReads) -> str | None:
        """The manifests commit a gate that knows none yet is judged on: for a gate on a
        manifests PR, its merge commit; in HLD terms, the oldest deployed manifests commit that
        carries the HLD commit (the PR's merge commit, once it merged). Meanwhile the gate fails
        if its PR was abandoned or the deadline passed, and tells what it waits for."""
        if not self._correlation.in_hld_terms(gate):
            return self._merge_commit(gate)
        hld_commit = gate.hld_commit or self._merge_commit(gate, learn=False)
        if hld_commit is None:
            return None
        if gate.hld_commit is None:
            learned = self._correlation.learn_hld_commit(gate, hld_commit)
            gate = transitions.learn_hld_commit(gate, learned) or gate
        pointers = reads.cluster_objects(gate.environment).values()
        deployed = {p.commit for objects in pointers for p in objects.values()}
        found = self._correlation.first_deployed(gate, deployed)
        if found is None:
            self._await_link(self._gates.get(gate.environment, gate.id) or gate)
            return None
        return found.commit

    def _await_link(self, gate: Gate) -> None:
        """No deployed manifests commit carries the gate's HLD commit yet: say what is missing
        (task log, PR status), and fail at the deadline."""
        short = (gate.hld_commit or "")[:8]
        line = gate.link_problem or f"waiting for a manifests commit rendered from HLD {short}"
        if self._clock() >= gate.deadline:
            reason = f"timed out after waiting until {gate.deadline:%Y-%m-%d %H:%M}Z: {line}"
            self._completion.complete(gate, Decision("failed", reason, (line,)))
            return
        empty = environment_result(gate.environment, ())
        self._story.progress(gate, Decision(None, "waiting", (line,)), empty)

    def _merge_commit(self, gate: Gate, *, learn: bool = True) -> str | None:
        """For a gate on a PR: its merge commit once the PR completed (stored as the gate's
        commit when `learn`). Meanwhile the gate fails if the PR was abandoned or the deadline
        passed."""
        pr = self._correlation.pull_request(gate)
        if pr is not None and pr.status == "completed" and pr.merge_commit:
            merge = pr.merge_commit.lower()
            if learn:
                self._gates.update(gate, transitions.learn_commit, merge)
            return merge
        if pr is not None and pr.status == "abandoned":
            self._completion.complete(gate, _abandoned(gate))  # just read: confirmed
        elif self._clock() >= gate.deadline:
            self._completion.complete(
                gate, Decision("failed", "timed out before the PR merged", ())
            )
        return None

    def _fail_if_abandoned(self, gate: Gate) -> bool:
        """Fail a gate for its abandoned PR, after reading the PR itself: one that completed
        (merged) or is active again never fails by abandonment."""
        pr = self._correlation.pull_request(gate)
        if pr is None or pr.status != "abandoned":
            logger.info(
                "gate.abandonment_not_confirmed",
                extra={"gate": gate.id, "status": pr.status if pr else "unknown"},
            )
            return False
        self._completion.complete(gate, _abandoned(gate))
        return True

    def _isolated(self, gate: Gate, work: Callable[[Gate], None]) -> Exception | None:
        """Run one gate's work so that its failure never stops the other gates: logged with the
        gate id; returned when a retry may help (the caller raises it after the others)."""
        try:
            work(gate)
        except Exception as exc:
            # An unconfirmed completion waits for the sweep: redelivering the event cannot help.
            retry = errors.is_retryable(exc) and not isinstance(exc, UnconfirmedCompletionError)
            logger.warning(
                "gate.failed",
                extra={"gate": gate.id, "env": gate.environment, "error": type(exc).__name__},
                exc_info=not retry,
            )
            return exc if retry else None
        return None


def sweep_order(gate: Gate) -> tuple[bool, datetime]:
    """Stuck completions first (a decided gate whose TaskCompleted is owed), then the nearest
    deadline: a sweep cut short by its budget leaves the gates with the most time to spare."""
    return gate.state != GateState.COMPLETING, gate.deadline


def _unmoved(gate: Gate, change: Change) -> bool:
    """A new state of one object that left its cluster's result as it was cannot change the
    decision of a gate on the whole environment and this very commit: skip the environment-wide
    roll-up (the sweep evaluates every open gate anyway). A redelivery is always evaluated: it
    may be finishing a completion that failed."""
    return (
        change.recorded.verdict == Verdict.CHANGED
        and gate.commit == change.commit
        and not gate.clusters
        and not gate.objects
        and not change.cluster_changed()
    )


def _tallied(gate: Gate, change: Change) -> bool:
    """Whether the change's environment tally can judge the gate (`_evaluate_tallied`): a gate
    on the whole environment and the change's own commit, still waiting, that no descendant
    commit concerns. A redelivery takes the full path: it may be finishing a completion."""
    return (
        change.recorded.verdict == Verdict.CHANGED
        and gate.state == GateState.WAITING
        and gate.commit == change.commit
        and not gate.clusters
        and not gate.objects
        and not gate.descendant_seen
    )


def _abandoned(gate: Gate) -> Decision:
    return Decision("failed", f"pull request {gate.pull_request_id} was abandoned", ())


def _raise_first(errors: Iterable[Exception | None]) -> None:
    for error in errors:
        if error is not None:
            raise error
