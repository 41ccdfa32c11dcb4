"""Trial mode's Azure DevOps: every write logged and not sent, reads passed to a real client."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from connector.core.gates import PlanRef
from connector.devops.client import AzureDevOpsClient
from connector.devops.routes import Call, Routes, feed_lines
from connector.devops.types import (
    Commit,
    CommitStatus,
    NotSentError,
    PermanentAzureDevOpsError,
    PlanState,
    PullRequest,
)

_LOG = logging.getLogger(__name__)


class TrialAzureDevOps:
    """Trial mode: logs every write it would make, sends none, and raises `NotSentError` so that
    callers record nothing as posted (turned off on the same storage, the connector posts it all).

    Reads are harmless: with a `reader` (a real client, when a PAT or identity is configured)
    they go to Azure DevOps, so PR gates can be tried; without one they answer "nothing known".
    Calls are built by the same code as the real client, so the logged paths and bodies are what
    it would send.
    """

    def __init__(
        self,
        org_url: str,
        project: str,
        *,
        api_version: str = "7.1",
        reader: AzureDevOpsClient | None = None,
    ) -> None:
        self._routes = Routes(org_url, project, api_version)
        self._reader = reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    # --- writes: logged, never sent ---

    def post_commit_status(self, repository: str, commit: str, status: CommitStatus) -> None:
        self._not_sent(self._routes.commit_status(repository, commit, status))

    def post_pull_request_status(
        self, repository: str, pull_request_id: int, status: CommitStatus
    ) -> None:
        self._not_sent(self._routes.pull_request_status(repository, pull_request_id, status))

    def post_task_completed(self, plan: PlanRef, result: str) -> None:
        self._not_sent(self._routes.task_completed(plan, result))

    def append_feed(self, plan: PlanRef, lines: Sequence[str]) -> None:
        self._not_sent(self._routes.feed(plan, feed_lines(lines, datetime.now(UTC))))

    def create_log(self, plan: PlanRef) -> int:
        self._not_sent(self._routes.create_log(plan))
        return 0  # not reached

    def append_log(self, plan: PlanRef, log_id: int, lines: Sequence[str]) -> None:
        self._not_sent(self._routes.append_log(plan, log_id, lines))

    # --- reads: real when a reader is configured ---

    def get_commit(self, repository: str, commit: str) -> Commit:
        if self._reader is not None:
            return self._reader.get_commit(repository, commit)
        return Commit(commit, "", ())

    def list_commits(self, repository: str, top: int) -> list[Commit]:
        return []

    def count_commit_statuses(self, repository: str, commit: str, top: int) -> int:
        return 0

    def is_ancestor(self, repository: str, ancestor: str, descendant: str) -> bool:
        if self._reader is not None:
            return self._reader.is_ancestor(repository, ancestor, descendant)
        return False

    def get_file_text(self, repository: str, path: str, commit: str) -> str | None:
        if self._reader is not None:
            return self._reader.get_file_text(repository, path, commit)
        return None

    def pull_requests_for_merge_commit(self, repository: str, commit: str) -> list[PullRequest]:
        if self._reader is not None:
            return self._reader.pull_requests_for_merge_commit(repository, commit)
        return []

    def get_pull_request(self, pull_request_id: int) -> PullRequest:
        if self._reader is not None:
            return self._reader.get_pull_request(pull_request_id)
        raise PermanentAzureDevOpsError(404, "trial mode without credentials: no PR look-ups")

    def list_abandoned_pull_requests(self, repository: str, since: datetime) -> list[PullRequest]:
        if self._reader is not None:
            return self._reader.list_abandoned_pull_requests(repository, since)
        return []

    def get_pull_request_properties(self, repository: str, pull_request_id: int) -> dict[str, str]:
        if self._reader is not None:
            return self._reader.get_pull_request_properties(repository, pull_request_id)
        return {}

    def get_plan_state(self, plan: PlanRef) -> PlanState:
        if self._reader is not None:
            return self._reader.get_plan_state(plan)
        self._routes.plan(plan)  # same ForeignOrganizationError as the real client
        return PlanState("inProgress", "inProgress")

    def _not_sent(self, call: Call) -> None:
        body = call.body.decode() if isinstance(call.body, bytes) else json.dumps(call.body)
        _LOG.info("azure_devops.trial %s %s", call.describe(), body)
        raise NotSentError(f"trial mode: {call.method} not sent")
