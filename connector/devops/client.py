"""Azure DevOps REST client: commit/PR statuses, PR lookups and agentless-task callbacks.

Built on azure-core rather than the `azure-devops` SDK: the SDK has no plan-event or timeline-feed
call, depends on the deprecated msrest, and under urllib3 2.x never retries POST/PATCH. Here one
azure-core pipeline gives us retries honouring `Retry-After` for every method, explicit timeouts,
PAT or Entra (managed identity) auth, redacted HTTP logging and OpenTelemetry spans.

Errors are translated at this boundary into three kinds the caller branches on:
`PermanentAzureDevOpsError` (retrying cannot help), `TransientAzureDevOpsError` (try again later)
and `ForeignOrganizationError` (a URL outside the configured organisation; nothing was sent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import urlsplit

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest, HttpResponse

from connector import errors
from connector.core.gates import PlanRef
from connector.devops.organization import is_organization_url, same_organization
from connector.devops.policies import JobToken, auth_policy, policies
from connector.devops.routes import (
    PAGE_SIZE,
    Call,
    Routes,
    decode_job_state,
    decode_plan_state,
    feed_lines,
    ignore,
    item_content,
    merge_bases,
    query_results,
    to_commit,
    to_log_id,
    to_pull_request,
    to_pull_requests,
    unwrap_properties,
)
from connector.devops.types import (
    AzureDevOpsError,
    Commit,
    CommitStatus,
    ForeignOrganizationError,
    NotSentError,
    PermanentAzureDevOpsError,
    PipelineCallbacks,
    PlanState,
    PullRequest,
    RepositoryReader,
    StatusWriter,
    TransientAzureDevOpsError,
)
from connector.redaction import redact, secret_forms
from connector.retries import RetryBudgetExhaustedError

__all__ = [
    "AzureDevOpsClient",
    "AzureDevOpsError",
    "Commit",
    "CommitStatus",
    "ForeignOrganizationError",
    "NotSentError",
    "PermanentAzureDevOpsError",
    "PipelineCallbacks",
    "PlanState",
    "PullRequest",
    "RepositoryReader",
    "StatusWriter",
    "TransientAzureDevOpsError",
    "same_organization",
]

_LOG = logging.getLogger(__name__)

_MESSAGE_MAX: Final = 500

T = TypeVar("T")


# --- Client ---------------------------------------------------------------------------------


class AzureDevOpsClient:
    """Azure DevOps over REST for one organisation and project.

    Every URL is under `org_url`, except plan calls, which go to `PlanRef.plan_url` once it is
    known to be in the same organisation. No redirect policy: a redirect would be a sign-in page
    or a move we did not ask for, so it surfaces as a permanent error instead of being followed.
    """

    def __init__(
        self,
        org_url: str,
        project: str,
        *,
        pat: str | None = None,
        credential: TokenCredential | None = None,
        api_version: str = "7.1",
        retry_total: int = 4,
        retry_backoff_factor: float = 0.8,
        retry_backoff_max: float = 60,
        connection_timeout: float = 5,
        read_timeout: float = 30,
        transport: HttpTransport[HttpRequest, HttpResponse] | None = None,
    ) -> None:
        auth = auth_policy(pat, credential)
        if not is_organization_url(org_url):
            raise ValueError("org_url must be an https URL (http only for loopback hosts)")
        self._routes = Routes(org_url, project, api_version)
        job_token = credential.token if isinstance(credential, JobToken) else None
        self._secrets = secret_forms((pat, job_token))
        self._transport_options: dict[str, Any] = {
            "connection_timeout": connection_timeout,
            "read_timeout": read_timeout,
        }
        self._client: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(
            base_url=org_url,
            policies=policies(
                auth=auth,
                retry_total=retry_total,
                retry_backoff_factor=retry_backoff_factor,
                retry_backoff_max=retry_backoff_max,
            ),
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # --- statuses ---

    def post_commit_status(self, repository: str, commit: str, status: CommitStatus) -> None:
        self._send(self._routes.commit_status(repository, commit, status), ignore)

    def post_pull_request_status(
        self, repository: str, pull_request_id: int, status: CommitStatus
    ) -> None:
        call = self._routes.pull_request_status(repository, pull_request_id, status)
        self._send(call, ignore)

    # --- repository reads ---

    def get_commit(self, repository: str, commit: str) -> Commit:
        return self._send(self._routes.commit(repository, commit), to_commit)

    def list_commits(self, repository: str, top: int) -> list[Commit]:
        """The newest `top` commits of the default branch (Commits - Get Commits)."""
        call = self._routes.commits(repository, top)
        return self._send(call, lambda data: [to_commit(item) for item in data["value"]])

    def count_commit_statuses(self, repository: str, commit: str, top: int) -> int:
        """How many statuses (at most `top`) a commit has (Statuses - List)."""
        call = self._routes.commit_statuses(repository, commit, top)
        return self._send(call, lambda data: len(list(data["value"])))

    def is_ancestor(self, repository: str, ancestor: str, descendant: str) -> bool:
        """Whether `ancestor` is reachable from `descendant`: their merge base is `ancestor`."""
        bases = self._send(self._routes.merge_bases(repository, ancestor, descendant), merge_bases)
        return ancestor.lower() in bases

    def get_file_text(self, repository: str, path: str, commit: str) -> str | None:
        """A file's text at a commit; None when the commit has no such file (404)."""
        try:
            return self._send(self._routes.item(repository, path, commit), item_content)
        except PermanentAzureDevOpsError as exc:
            if exc.status_code == 404:
                return None
            raise

    def pull_requests_for_merge_commit(self, repository: str, commit: str) -> list[PullRequest]:
        call = self._routes.merge_commit_query(repository, commit)
        return self._send(call, query_results(commit))

    def get_pull_request(self, pull_request_id: int) -> PullRequest:
        return self._send(self._routes.pull_request(pull_request_id), to_pull_request)

    def list_abandoned_pull_requests(self, repository: str, since: datetime) -> list[PullRequest]:
        """PRs abandoned at or after `since` (timezone-aware), all pages."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        found: list[PullRequest] = []
        while True:
            call = self._routes.abandoned_pull_requests(repository, since, skip=len(found))
            page = self._send(call, to_pull_requests)
            found.extend(page)
            if len(page) < PAGE_SIZE:
                return found

    def get_pull_request_properties(self, repository: str, pull_request_id: int) -> dict[str, str]:
        call = self._routes.pull_request_properties(repository, pull_request_id)
        return self._send(call, unwrap_properties)

    # --- agentless task callbacks ---

    def get_plan_state(self, plan: PlanRef) -> PlanState:
        """Plan state and the job record's state; a plan Azure DevOps no longer knows is
        "unknown" (deleted, or a stale callback), a missing timeline or record is None.
        Without a TimelineId (PR-property callbacks) the plan's own timeline is used."""
        try:
            plan_state, timeline_id = self._send(self._routes.plan(plan), decode_plan_state)
        except PermanentAzureDevOpsError as exc:
            if exc.status_code != 404:
                raise
            return PlanState("unknown", None)
        if not plan.timeline_id and timeline_id:
            plan = replace(plan, timeline_id=timeline_id)
        if not plan.timeline_id:
            return PlanState(plan_state, None)
        try:
            job_state = self._send(
                self._routes.timeline_records(plan), decode_job_state(plan.job_id)
            )
        except PermanentAzureDevOpsError as exc:
            if exc.status_code != 404:
                raise
            job_state = None
        return PlanState(plan_state, job_state)

    def post_task_completed(self, plan: PlanRef, result: str) -> None:
        """Sent at most once per call: a request that may have reached the service (no answer,
        or a 5xx) is not repeated here; the caller re-reads the job state before trying again."""
        self._send(self._routes.task_completed(plan, result), ignore, **_UNSENT_ONLY)

    def append_feed(self, plan: PlanRef, lines: Sequence[str]) -> None:
        feed = feed_lines(lines, datetime.now(UTC))
        call = self._routes.feed(plan, feed)
        if feed:
            self._send(call, ignore)

    def create_log(self, plan: PlanRef) -> int:
        """Create the task's stored log (`logs\\{TaskInstanceId}`); returns its id."""
        log_id = self._send(self._routes.create_log(plan), to_log_id, **_UNSENT_ONLY)
        self._send(self._routes.attach_log(plan, log_id), ignore)
        return log_id

    def append_log(self, plan: PlanRef, log_id: int, lines: Sequence[str]) -> None:
        if lines:
            self._send(self._routes.append_log(plan, log_id, lines), ignore, **_UNSENT_ONLY)

    # --- transport ---

    def _options(self, url: str) -> dict[str, Any]:
        options = dict(self._transport_options)
        if urlsplit(url).scheme == "http":
            # Only reachable for loopback (checked by is_organization_url); lets bearer auth reach
            # a local fake, which BearerTokenCredentialPolicy would otherwise refuse.
            options["enforce_https"] = False
        return options

    def _send(self, call: Call, parse: Callable[[Any], T], **retry: Any) -> T:
        request = _http_request(call)
        where = f"{call.method} {urlsplit(call.url).path}"
        try:
            response = self._client.send_request(request, **self._options(call.url), **retry)
        except ClientAuthenticationError as exc:
            # The credential could not produce a token (identity endpoint down, not assigned):
            # nothing reached Azure DevOps; a later attempt may succeed.
            raise TransientAzureDevOpsError(
                f"{where}: no access token ({type(exc).__name__})"
            ) from exc
        except (AzureError, RetryBudgetExhaustedError) as exc:
            raise TransientAzureDevOpsError(f"{where}: {_describe(exc)}") from exc
        data = self._decode(where, response)
        with _expecting_shape(where, response.status_code):
            return parse(data)

    def _decode(self, where: str, response: HttpResponse) -> Any:
        status = response.status_code
        if 200 <= status < 300 and status != 203:
            if status == 204 or not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise PermanentAzureDevOpsError(status, "expected a JSON body") from None
        error = _error_message(response, self._secrets)
        _LOG.warning("azure_devops.request_failed %s answered %d: %s", where, status, error)
        if errors.retryable_status(status):
            wait = retry_after(response)
            raise TransientAzureDevOpsError(f"{where} answered {status}: {error}", status, wait)
        if status == 203:
            # What a rejected credential looks like when the redirect is not suppressed.
            raise PermanentAzureDevOpsError(status, "sign-in page instead of a response")
        raise PermanentAzureDevOpsError(status, error)


@contextmanager
def _expecting_shape(where: str, status: int) -> Iterator[None]:
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        message = f"{where}: unexpected response shape ({type(exc).__name__})"
        raise PermanentAzureDevOpsError(status, message) from exc


# TaskCompleted and log writes: retry only what certainly did not reach the service.
_UNSENT_ONLY: Final = {"retry_read": 0, "retry_status": 0}


def _http_request(call: Call) -> HttpRequest:
    if isinstance(call.body, bytes):
        headers = {"Content-Type": call.content_type}
        return HttpRequest(call.method, call.full_url, content=call.body, headers=headers)
    return HttpRequest(call.method, call.full_url, json=call.body)


def retry_after(response: HttpResponse) -> float | None:
    """`Retry-After` in seconds (RFC 9110 10.2.3: delay-seconds or an HTTP-date), which Azure
    DevOps sends with a 429 (Learn, "Rate and usage limits": Retry-After, X-RateLimit-*)."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _describe(exc: Exception) -> str:
    if isinstance(exc, RetryBudgetExhaustedError):
        return str(exc)
    return type(exc).__name__


def _error_message(response: HttpResponse, secrets: Sequence[str]) -> str:
    """The service's own message, bounded, with anything resembling a credential removed."""
    try:
        body = response.json()
        message = str(body.get("message") or response.reason or "")
    except (ValueError, AttributeError):
        message = str(response.reason or "")
    return redact(message, secrets)[:_MESSAGE_MAX]
