"""The gates' part of the composition root: the keeper and the collaborators it works with
(correlation, the existing connector's PR-property callbacks, what the task is told, completing
it), built here once and handed to `GateKeeper`, which builds nothing itself."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from connector.core.gates import Gate
from connector.core.state import DeploymentReads
from connector.devops.client import AzureDevOpsClient
from connector.devops.links import CommitLinks
from connector.devops.policies import JobToken
from connector.devops.types import PipelineCallbacks, RepositoryReader, StatusWriter
from connector.gates.completion import Completion
from connector.gates.config import GatePolicy
from connector.gates.correlation import Correlation
from connector.gates.keeper import GateKeeper
from connector.gates.legacy import LegacyCallbacks
from connector.gates.rechecks import GateChecks
from connector.gates.store import GateStore
from connector.gates.task_log import PullRequestPublisher, TaskStory
from connector.settings import Settings


class DevOps(RepositoryReader, PipelineCallbacks, StatusWriter, Protocol):
    """What gates need from Azure DevOps."""


def gatekeeper(
    policy: GatePolicy,
    gates: GateStore,
    deployments: DeploymentReads,
    devops: DevOps,
    pr_statuses: PullRequestPublisher,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    job_client: Callable[[str], PipelineCallbacks] | None = None,
    checks: GateChecks | None = None,
    links: CommitLinks | None = None,
) -> GateKeeper:
    """A keeper and its collaborators. `job_client`: a client on a job's own token (with
    `GATE_USE_JOB_TOKEN`); `checks`: queued re-evaluations when a failure's grace ends (without:
    the sweep sees to it); `links`: the app's shared commit links (default: new ones)."""
    callbacks = job_callbacks(devops, job_client)
    correlation = Correlation(policy, gates, devops, links or policy.commit_links(devops, gates))
    story = TaskStory(gates, pr_statuses, callbacks, policy, clock=clock)
    return GateKeeper(
        policy,
        gates,
        deployments,
        correlation=correlation,
        legacy=LegacyCallbacks(policy, gates, devops, correlation, clock),
        story=story,
        completion=Completion(gates, story, callbacks, org_url=policy.org_url, clock=clock),
        clock=clock,
        checks=checks,
    )


def job_client(settings: Settings) -> Callable[[str], PipelineCallbacks] | None:
    """A client on a job's own token, with `GATE_USE_JOB_TOKEN` (never in trial mode: nothing
    is sent there); None: every call uses the connector's identity."""
    if not settings.gate_use_job_token or settings.trial_mode:
        return None

    def client(token: str) -> PipelineCallbacks:
        return AzureDevOpsClient(
            settings.azdo_org_url, settings.azdo_project, credential=JobToken(token)
        )

    return client


def job_callbacks(
    devops: PipelineCallbacks, job_client: Callable[[str], PipelineCallbacks] | None
) -> Callable[[Gate], PipelineCallbacks]:
    """Who calls back a gate's job: its own token when `GATE_USE_JOB_TOKEN` kept it, else our
    identity."""

    def callbacks(gate: Gate) -> PipelineCallbacks:
        if job_client is not None and gate.auth_token:
            return job_client(gate.auth_token)
        return devops

    return callbacks
