"""Promotion gates: a waiting pipeline task, and the rules that decide when it may go on.

A gate waits for one environment to run a manifests commit (or a descendant of it) healthily in
every expected cluster. It succeeds when all are done, fails when a required object failed for
longer than the grace period, when its PR was abandoned, or when its deadline passed. Pure code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from connector.core.tracking import EnvironmentResult, Phase

PROGRESS_NAMES = 3  # pending objects a progress line names per cluster


@dataclass(frozen=True)
class PlanRef:
    """Where a waiting agentless task lives, as sent in the callback headers."""

    plan_url: str  # System.CollectionUri, with a trailing slash
    project_id: str
    hub_name: str  # "build" | "release"/"rm" | "checks": passed through verbatim
    plan_id: str
    job_id: str
    timeline_id: str
    task_instance_id: str


class GateState(StrEnum):
    WAITING = "waiting"
    COMPLETING = "completing"  # a result is decided and being posted
    SUCCEEDED = "succeeded"
    FAILED = "failed"


OPEN = frozenset({GateState.WAITING, GateState.COMPLETING})


def gate_id(plan_id: str, job_id: str) -> str:
    """One gate per waiting job: a registration and a PR-property callback naming the same plan
    and job are the same gate."""
    return hashlib.sha256(f"{plan_id.lower()}|{job_id.lower()}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Gate:
    id: str
    plan: PlanRef
    environment: str
    created_at: datetime
    deadline: datetime
    commit: str | None = None
    pull_request_id: int | None = None
    repository: str = ""
    clusters: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    state: GateState = GateState.WAITING
    result: str = ""  # "succeeded" | "failed", once decided
    result_reason: str = ""
    claimed_at: datetime | None = None
    progress: str = ""  # digest of the last progress written to the task log
    source: str = "registered"
    auth_token: str = field(default="", repr=False)  # only with GATE_USE_JOB_TOKEN
    log_id: int = 0  # the task's stored log in Azure DevOps, once created
    logged: tuple[str, ...] = ()  # short digests of the lines already in the stored log
    completion_posts: int = 0  # TaskCompleted POSTs whose outcome we did not see
    trial: str = ""  # what trial mode would have done (AZDO_DRY_RUN); nothing was sent
    # A descendant of the commit runs in the environment: only the full roll-up, which follows
    # it, may judge the gate (the environment's tally knows this commit alone).
    descendant_seen: bool = False
    # Three repositories: the HLD commit the gate waits for (registered, or its PR's merge
    # commit); `commit` is then the manifests commit first found to carry it (or a descendant).
    hld_commit: str | None = None
    link_problem: str = ""  # why the deployed manifests commit does not link to the HLD commit
    # The W3C traceparent of the registration, so that the completion's span links to it.
    registered_trace: str = ""


@dataclass(frozen=True)
class Decision:
    """What a gate should do now: keep waiting, or complete with a result and a reason."""

    result: str | None  # None (wait) | "succeeded" | "failed"
    reason: str
    lines: tuple[str, ...]  # progress for the waiting task's log
    # Waiting out a failure's grace: when to look again (nothing else may arrive before then).
    recheck_at: datetime | None = None

    @property
    def progress_digest(self) -> str:
        return hashlib.sha256("\n".join(self.lines).encode()).hexdigest()[:16]


def decide(
    gate: Gate,
    result: EnvironmentResult,
    commit: str | None,
    now: datetime,
    grace: timedelta,
) -> Decision:
    """Apply the completion rules to an environment roll-up for the gate's commit."""
    lines = progress_lines(result, commit)
    if result.phase == Phase.SUCCEEDED:
        where = ", ".join(c.cluster for c in result.clusters)
        return Decision(
            "succeeded", f"{gate.environment} healthy on {_short(commit)} in {where}", lines
        )
    failed = result.failed_cluster
    if failed is not None:
        obj, state = failed.failed[0]
        # From when the connector learned of the failure: a queue backlog must not eat the grace.
        since = state.failure_noticed or state.failed_since or state.time
        if now - since >= grace:
            reason = f"{failed.cluster}: {obj}: {state.reason}: {state.summary}"
            return Decision("failed", reason, lines)
        if now < gate.deadline:
            return Decision(None, "waiting", lines, recheck_at=since + grace)
    if now >= gate.deadline:
        return Decision(
            "failed",
            f"timed out after waiting until {gate.deadline:%Y-%m-%d %H:%M}Z for {gate.environment}",
            lines,
        )
    return Decision(None, "waiting", lines)


def progress_lines(result: EnvironmentResult, commit: str | None) -> tuple[str, ...]:
    lines = []
    for c in result.clusters:
        if c.phase == Phase.SUCCEEDED:
            lines.append(f"{c.cluster}: healthy on {_short(commit)}")
        elif c.phase == Phase.FAILED:
            obj, state = c.failed[0]
            lines.append(f"{c.cluster}: FAILED {obj}: {state.reason}: {state.summary}")
        elif c.pending:
            names = ", ".join(str(o) for o in c.pending[:PROGRESS_NAMES])
            lines.append(f"{c.cluster}: waiting for {names}")
        else:
            lines.append(f"{c.cluster}: waiting for a report of {_short(commit)}")
    return tuple(lines)


def _short(commit: str | None) -> str:
    return commit[:8] if commit else "the commit"
