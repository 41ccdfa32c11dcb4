"""The vocabulary of Azure DevOps as the connector uses it: errors, values, consumers' views.

Errors are translated at the client boundary into three kinds the caller branches on:
`PermanentAzureDevOpsError` (retrying cannot help), `TransientAzureDevOpsError` (try again later)
and `ForeignOrganizationError` (a URL outside the configured organisation; nothing was sent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from connector.core.errors import ConnectorError
from connector.core.gates import PlanRef

# --- Errors ---------------------------------------------------------------------------------


class AzureDevOpsError(ConnectorError):
    """Base of every error this module raises about Azure DevOps."""


class PermanentAzureDevOpsError(AzureDevOpsError):
    """Azure DevOps refused the request (a 4xx other than 408/429): retrying cannot help."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"Azure DevOps answered {status_code}: {message}")
        self.status_code = status_code
        self.message = message


class TransientAzureDevOpsError(AzureDevOpsError):
    """Throttled, server error after retries, timeout or connection failure: try again later."""

    retryable = True

    def __init__(
        self, message: str, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after  # seconds the service asked us to wait (429, 503)


class ForeignOrganizationError(AzureDevOpsError):
    """A URL outside the configured organisation; raised before anything is sent."""


class NotSentError(AzureDevOpsError):
    """Trial mode (`AZDO_DRY_RUN`): the write was logged, not sent. Callers record nothing as
    posted, so that the same storage in real mode posts it."""


# --- Values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommitStatus:
    state: str  # "pending" | "succeeded" | "failed" | "error" | "notApplicable"
    description: str
    genre: str
    name: str
    target_url: str | None = None


@dataclass(frozen=True)
class Commit:
    commit_id: str
    comment: str
    parents: tuple[str, ...]
    committed_at: datetime | None = None  # committer.date


@dataclass(frozen=True)
class PullRequest:
    pull_request_id: int
    status: str  # "active" | "abandoned" | "completed"
    repository_id: str
    merge_commit: str | None  # lastMergeCommit.commitId
    closed_date: datetime | None
    repository_name: str = ""


@dataclass(frozen=True)
class PlanState:
    plan_state: str  # "inProgress" | "queued" | "completed" | "throttled" | "unknown"
    job_state: str | None  # state of the timeline record with id == job_id, None if missing

    @property
    def is_finished(self) -> bool:
        """True when completing the task again would be pointless or fail (500)."""
        return self.plan_state == "completed" or self.job_state == "completed"


# --- Consumers' views -----------------------------------------------------------------------


class StatusWriter(Protocol):
    def post_commit_status(self, repository: str, commit: str, status: CommitStatus) -> None: ...

    def post_pull_request_status(
        self, repository: str, pull_request_id: int, status: CommitStatus
    ) -> None: ...


class RepositoryReader(Protocol):
    def get_commit(self, repository: str, commit: str) -> Commit: ...

    def is_ancestor(self, repository: str, ancestor: str, descendant: str) -> bool: ...

    def get_file_text(self, repository: str, path: str, commit: str) -> str | None: ...

    def pull_requests_for_merge_commit(self, repository: str, commit: str) -> list[PullRequest]: ...

    def get_pull_request(self, pull_request_id: int) -> PullRequest: ...

    def list_abandoned_pull_requests(
        self, repository: str, since: datetime
    ) -> list[PullRequest]: ...

    def get_pull_request_properties(
        self, repository: str, pull_request_id: int
    ) -> dict[str, str]: ...


class PipelineCallbacks(Protocol):
    def get_plan_state(self, plan: PlanRef) -> PlanState: ...

    def post_task_completed(self, plan: PlanRef, result: str) -> None: ...

    def append_feed(self, plan: PlanRef, lines: Sequence[str]) -> None: ...

    def create_log(self, plan: PlanRef) -> int: ...

    def append_log(self, plan: PlanRef, log_id: int, lines: Sequence[str]) -> None: ...
