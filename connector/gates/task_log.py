"""What a waiting pipeline task shows while its gate waits, and why it ended.

Three optional outputs: live lines in the job's console feed (gone when the job ends), the same
story in the task's stored log (what people read after the run, as Learn documents for callback
tasks: create `logs\\{TaskInstanceId}`, append, attach to the task's timeline record), and the
environment's status on the gate's pull request. Each change of progress is claimed in the gate
record before it is sent, so a redelivery or a concurrent evaluation never repeats lines. A
decision that completes the gate is recorded by its claim instead (`Completion`), and the log
`conclude` creates by the count of the POST that follows it: one write each, not three.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from connector.core import gate_transitions as transitions
from connector.core.gates import Decision, Gate
from connector.core.tracking import EnvironmentResult
from connector.devops.types import PipelineCallbacks
from connector.gates.config import GatePolicy
from connector.gates.optional_calls import optional
from connector.gates.store import GateStore
from connector.outputs.sinks import environment_context
from connector.outputs.statuses import DEVOPS_STATES, DesiredStatus, StatusPublisher
from connector.storage.ledger import pull_request_subject

logger = logging.getLogger(__name__)

PR_DESCRIPTION_LIMIT = 250
LOGGED_LIMIT = 500  # digests of logged lines kept on the gate (a line seen again is not logged)
# (repository, pull request id) → the publisher of that PR's statuses, with its own ledger.
PullRequestPublisher = Callable[[str, int], StatusPublisher]


class TaskStory:
    def __init__(
        self,
        gates: GateStore,
        pr_statuses: PullRequestPublisher,
        callbacks: Callable[[Gate], PipelineCallbacks],
        policy: GatePolicy,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._gates = gates
        self._pr_statuses = pr_statuses
        self._callbacks = callbacks
        self._policy = policy
        self._clock = clock

    def progress(self, gate: Gate, decision: Decision, result: EnvironmentResult) -> Gate:
        """Tell the task what changed since the last evaluation; returns the gate as stored."""
        digest = decision.progress_digest
        if digest == gate.progress:
            return gate
        if self._policy.trial:
            # Nothing recorded: turned off on the same storage, the connector tells it for real.
            logger.info("gate.trial_progress", extra={"gate": gate.id, "lines": decision.lines})
            return gate
        if decision.result is not None:
            # The gate completes: its claim is the write, and `conclude` tells the task why
            # (the pull request status, posted once per state, is told here already).
            self.pr_status(gate, decision.result, decision.reason)
            return gate
        lines = [f"{gate.environment}: {line}" for line in decision.lines]
        new = [line for line in lines if _digest(line) not in gate.logged]
        logged = (*gate.logged, *map(_digest, new))[-LOGGED_LIMIT:]
        claimed = self._gates.update(
            gate, transitions.record_progress, gate.progress, digest, logged
        )
        if claimed is None:
            return gate  # another evaluation told this part already
        claimed = self.write(claimed, lines, new)
        self.pr_status(claimed, DEVOPS_STATES[result.phase], decision.reason)
        return claimed

    def conclude(self, gate: Gate, result: str, reason: str) -> Gate:
        """The decision and why, before TaskCompleted. A log created here is on the returned
        gate only: the caller records it with the count of its POST."""
        gate = self.write(gate, [f"{gate.environment}: {result}: {reason}"], record=False)
        self.pr_status(gate, result, reason)
        return gate

    def write(
        self,
        gate: Gate,
        lines: Sequence[str],
        new: Sequence[str] | None = None,
        *,
        record: bool = True,
    ) -> Gate:
        """Lines to the live feed, and those not logged yet (`new`: default all) to the stored
        log (both need the task's timeline). `record`: a log created now is stored on the gate
        (else only returned on it)."""
        if not gate.plan.timeline_id or not lines:
            return gate
        callbacks = self._callbacks(gate)
        optional("feed", gate, lambda: callbacks.append_feed(gate.plan, lines))
        to_log = list(lines if new is None else new)
        if not gate.log_id:
            gate = self._create_log(gate, callbacks, record=record)
            to_log = [self._opening(gate), *to_log]
        if gate.log_id and to_log:
            stamped = _stamped(to_log, self._clock())
            log_id = gate.log_id
            optional("log append", gate, lambda: callbacks.append_log(gate.plan, log_id, stamped))
        return gate

    def pr_status(self, gate: Gate, state: str, reason: str) -> None:
        """The environment's state on the gate's pull request, through the PR status ledger
        (posted once per state; a status policy on the branch can require it)."""
        if gate.pull_request_id is None:
            return
        repository = gate.repository or self._policy.pr_repo
        context = environment_context(gate.environment)  # as on the commits
        desired = DesiredStatus(context, state, reason[:PR_DESCRIPTION_LIMIT])
        publisher = self._pr_statuses(repository, gate.pull_request_id)
        subject = pull_request_subject(repository, gate.pull_request_id)
        optional("pull request status", gate, lambda: publisher.publish(subject, desired))

    def _create_log(self, gate: Gate, callbacks: PipelineCallbacks, *, record: bool) -> Gate:
        log_id = optional("log create", gate, lambda: callbacks.create_log(gate.plan))
        if log_id is None:
            return gate
        stored = self._gates.update(gate, transitions.record_log_id, log_id) if record else None
        return stored or transitions.record_log_id(gate, log_id) or gate

    @staticmethod
    def _opening(gate: Gate) -> str:
        if gate.commit:
            what = gate.commit[:8]
        elif gate.hld_commit:
            what = f"a manifests commit rendered from HLD {gate.hld_commit[:8]}"
        else:
            what = f"pull request {gate.pull_request_id}"
        return (
            f"{gate.environment}: waiting for {what} in {gate.environment}"
            f" (registered {gate.created_at:%Y-%m-%d %H:%M}Z,"
            f" deadline {gate.deadline:%Y-%m-%d %H:%M}Z)"
        )


def _digest(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()[:12]


def _stamped(lines: Sequence[str], now: datetime) -> list[str]:
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [f"{stamp} {physical}" for line in lines for physical in line.splitlines()]
