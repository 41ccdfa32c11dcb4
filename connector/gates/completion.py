"""Completing a gate's task exactly once.

A gate moves waiting → completing by a conditional write (one instance wins). The winner reads
the plan and job state (optional: a refused or failed look-up is a warning), tells the task why,
and posts TaskCompleted, the one call that matters. A POST whose answer was lost is never
repeated blindly: the next attempt re-reads the job state first, and without that answer at most
one more POST is made. Only TaskCompleted's own permanent refusal closes a gate unsent.

A completion writes the gate's row three times, each a named transition: the claim (before
anything is sent, so that one instance posts), the count of the POST with the task log just
created (before the POST, so that a lost answer is never followed by a blind repeat), and the
result (after the POST).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from connector import retries, telemetry
from connector.core import gate_transitions as transitions
from connector.core.errors import ConnectorError
from connector.core.gates import Decision, Gate
from connector.devops.types import (
    ForeignOrganizationError,
    NotSentError,
    PermanentAzureDevOpsError,
    PipelineCallbacks,
    TransientAzureDevOpsError,
)
from connector.gates.optional_calls import PERMISSION_CODES, optional
from connector.gates.store import GateStore
from connector.gates.task_log import TaskStory

logger = logging.getLogger(__name__)

# How long past its deadline a gate keeps retrying a completion refused for lack of permission.
PERMISSION_PATIENCE = timedelta(hours=24)
# TaskCompleted POSTs allowed without seeing the job still waiting (the first, and one repeat).
MAX_UNCONFIRMED_POSTS = 2
# A 429 without Retry-After: wait this long before the next attempt.
THROTTLED_WAIT_SECONDS = 5.0
# Throttled POSTs retried within one invocation (each after its Retry-After, within the budget).
MAX_THROTTLED_ATTEMPTS = 3


class _ThrottledError(ConnectorError):
    """TaskCompleted was throttled (429) longer than this invocation may wait."""

    retryable = True

    def __init__(self, wait: float) -> None:
        super().__init__(f"throttled for {wait:.0f}s")
        self.wait = wait


class UnconfirmedCompletionError(TransientAzureDevOpsError):
    """TaskCompleted was posted but its answer lost, and the job state cannot be read: rather
    than post again blindly, leave the gate to the next sweep."""


class Completion:
    def __init__(
        self,
        gates: GateStore,
        story: TaskStory,
        callbacks: Callable[[Gate], PipelineCallbacks],
        *,
        org_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._gates = gates
        self._story = story
        self._callbacks = callbacks
        self._org_url = org_url
        self._clock = clock

    def complete(self, gate: Gate, decision: Decision, *, descendant_seen: bool = False) -> None:
        """Claim the gate for `decision` and complete it; `descendant_seen`: the deciding
        roll-up followed a descendant commit (recorded with the claim)."""
        result = decision.result or "failed"
        claimed = self._gates.update(
            gate, transitions.claim, result, decision.reason, self._clock(), descendant_seen
        )
        if claimed is not None:  # else another instance decided first
            self._finish(claimed)

    def resume(self, gate: Gate) -> None:
        """A claim that was released or whose holder died is taken over."""
        now = self._clock()
        if transitions.claim_is_stale(gate, now):
            claimed = self._gates.update(gate, transitions.reclaim, now)
            if claimed is not None:
                self._finish(claimed)

    def _finish(self, gate: Gate) -> None:
        # Its own trace (an event's, or the sweep's), linked to the gate's registration.
        with telemetry.span(
            "gate.complete", linked=gate.registered_trace, gate=gate.id, env=gate.environment
        ):
            self._finish_linked(gate)

    def _finish_linked(self, gate: Gate) -> None:
        result, reason = gate.result or "failed", gate.result_reason
        try:
            self._post(gate, result, reason)
        except NotSentError:
            self._record_trial(gate, result, reason)
            return
        except _ThrottledError as exc:
            self._throttled(gate, exc.wait)
            return
        except ForeignOrganizationError:
            reason = f"not completed: plan URL outside {self._org_url}"
            logger.error("gate.foreign_plan_url", extra={"gate": gate.id})  # noqa: TRY400
        except PermanentAzureDevOpsError as exc:
            if exc.status_code in PERMISSION_CODES and self._clock() < (
                gate.deadline + PERMISSION_PATIENCE
            ):
                # Missing permissions can be granted while the job still waits: keep the claim
                # (retried after CLAIM_TIMEOUT by the sweep) instead of giving the gate up.
                logger.error(  # noqa: TRY400 - the status and message say what to fix
                    "gate.completion_unauthorized",
                    extra={"gate": gate.id, "status_code": exc.status_code, "error": exc.message},
                )
                return
            reason = f"not completed: Azure DevOps refused ({exc.status_code}): {exc.message}"
            logger.error(  # noqa: TRY400
                "gate.completion_refused",
                extra={"gate": gate.id, "status_code": exc.status_code, "error": exc.message},
            )
        except Exception:
            # Release the claim so that the redelivery (or the sweep) retries straight away.
            self._gates.update(gate, transitions.release_claim)
            raise
        self._gates.update(gate, transitions.finish, result, reason)
        telemetry.gates_completed.add(1, {"env": gate.environment, "result": result})
        logger.info("gate.completed", extra={"gate": gate.id, "result": result, "reason": reason})

    def _post(self, gate: Gate, result: str, reason: str) -> None:
        callbacks = self._callbacks(gate)
        state = optional(
            "plan look-up",
            gate,
            lambda: callbacks.get_plan_state(gate.plan),
            raise_permission=True,
        )
        if state is not None and state.is_finished:
            logger.info("gate.plan_already_finished", extra={"gate": gate.id})
            return
        if state is None and gate.completion_posts >= MAX_UNCONFIRMED_POSTS:
            raise UnconfirmedCompletionError("TaskCompleted posted; the job state is unreadable")
        if gate.completion_posts == 0:
            gate = self._story.conclude(gate, result, reason)
        # The log `conclude` created is recorded with the count: one write before the POST.
        counted = self._gates.update(gate, transitions.count_post, gate.log_id)
        if counted is None:
            raise TransientAzureDevOpsError("the gate changed under us; the redelivery retries")
        # An unknown plan (404) is still tried: TaskCompleted then fails permanently with the
        # service's own reason, rather than being skipped on a guess.
        self._post_unless_throttled(callbacks, gate, result)

    def _post_unless_throttled(self, callbacks: PipelineCallbacks, gate: Gate, result: str) -> None:
        """POST TaskCompleted; a 429 is an answer (the service did not act on it), so it is
        tried again after its Retry-After while the invocation's wait budget lasts, and never
        counts as a POST whose outcome is unknown."""
        for attempt in range(1, MAX_THROTTLED_ATTEMPTS + 1):
            try:
                callbacks.post_task_completed(gate.plan, result)
            except TransientAzureDevOpsError as exc:
                if exc.status_code != 429:
                    raise
                wait = exc.retry_after if exc.retry_after is not None else THROTTLED_WAIT_SECONDS
                telemetry.gates_throttled.add(1, {"env": gate.environment})
                if attempt == MAX_THROTTLED_ATTEMPTS or not retries.wait_within_budget(wait):
                    raise _ThrottledError(wait) from exc
            else:
                return

    def _throttled(self, gate: Gate, wait: float) -> None:
        """Throttled past the budget: the throttled POST is uncounted, and the claim is kept
        so that no attempt (a redelivery, the sweep) comes before Retry-After has passed: a
        claim is taken over `CLAIM_TIMEOUT` after `claimed_at` (`transitions.throttled`)."""
        self._gates.update(gate, transitions.throttled, self._clock(), timedelta(seconds=wait))
        logger.warning(
            "gate.completion_throttled", extra={"gate": gate.id, "retry_after_seconds": wait}
        )

    def _record_trial(self, gate: Gate, result: str, reason: str) -> None:
        """Trial mode decided but sent nothing: the gate waits on, so that real mode on the same
        storage completes it; what trial mode would have done is kept for the view and CLI."""
        trial = f"would complete {result}: {reason}"
        self._gates.update(gate, transitions.reopen_after_trial, trial)
        logger.info("gate.trial_completion", extra={"gate": gate.id, "result": result})
