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

import base64
import ipaddress
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Protocol, Self, TypeVar
from urllib.parse import quote, unquote, urlsplit

from azure.core import PipelineClient
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError, ServiceRequestError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    DistributedTracingPolicy,
    HeadersPolicy,
    HttpLoggingPolicy,
    SansIOHTTPPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest, HttpResponse

from connector.retries import retry_policy

_LOG = logging.getLogger(__name__)

ORG_SCOPE = "499b84ac-1321-427f-aa17-267ca6975798/.default"

_USER_AGENT = "flux-azdo-connector/0.1.0"
# Versions the reference pins per route family; the git routes use the configurable one.
_PLAN_EVENTS_API_VERSION: Final = "2.0-preview.1"
_TIMELINE_FEED_API_VERSION: Final = "6.0"
_PLAN_API_VERSION: Final = "7.1"
_PAGE_SIZE: Final = 100
_FEED_LINE_MAX: Final = 1024
_MESSAGE_MAX: Final = 500
_TASK_RESULTS: Final = frozenset({"succeeded", "failed"})
_LOOPBACK_NAMES: Final = frozenset({"localhost"})
# Azure DevOps-specific response headers that are safe and useful in logs (throttling, tracing).
_LOGGABLE_HEADERS: Final = (
    "X-TFS-FedAuthRedirect",
    "X-TFS-Session",
    "X-VSS-E2EID",
    "ActivityId",
    "X-RateLimit-Resource",
    "X-RateLimit-Delay",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)
_LOGGABLE_QUERY: Final = (
    "searchCriteria.status",
    "searchCriteria.queryTimeRangeType",
    "searchCriteria.minTime",
    "$top",
    "$skip",
    "otherCommitId",
)

T = TypeVar("T")


# --- Errors ---------------------------------------------------------------------------------


class AzureDevOpsError(Exception):
    """Base of every error this module raises about Azure DevOps."""


class PermanentAzureDevOpsError(AzureDevOpsError):
    """Azure DevOps refused the request (a 4xx other than 408/429): retrying cannot help."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"Azure DevOps answered {status_code}: {message}")
        self.status_code = status_code
        self.message = message


class TransientAzureDevOpsError(AzureDevOpsError):
    """Throttled, server error after retries, timeout or connection failure: try again later."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ForeignOrganizationError(AzureDevOpsError):
    """A URL outside the configured organisation; raised before anything is sent."""


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


@dataclass(frozen=True)
class PullRequest:
    pull_request_id: int
    status: str  # "active" | "abandoned" | "completed"
    repository_id: str
    merge_commit: str | None  # lastMergeCommit.commitId
    closed_date: datetime | None


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


# --- Organisation identity ------------------------------------------------------------------

_SERVICES_HOSTS: Final = frozenset({"dev.azure.com", "vsrm.dev.azure.com"})
_LEGACY_HOST: Final = re.compile(r"([a-z0-9][a-z0-9-]*)(?:\.vsrm)?\.visualstudio\.com")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True)
class _Collection:
    """Where credentials may go: scheme, host, port and the collection's path segments."""

    scheme: str
    host: str
    port: int
    path: tuple[str, ...]

    def contains(self, other: _Collection) -> bool:
        # Segment-wise prefix, so ".../fabrikam-evil" never matches ".../fabrikam".
        return (self.scheme, self.host, self.port) == (
            other.scheme,
            other.host,
            other.port,
        ) and other.path[: len(self.path)] == self.path


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _path_segments(path: str) -> tuple[str, ...] | None:
    """Lower-cased, decoded segments; None if any could make a client or server leave the path."""
    segments = []
    for raw in path.split("/"):
        segment = unquote(raw)
        if segment in {".", ".."} or "/" in segment or "\\" in segment:
            return None
        if segment:
            segments.append(segment.lower())
    return tuple(segments)


def _collection_of(url: str) -> _Collection | None:
    """Canonical identity of the organisation/collection a URL points into, or None if unsafe."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    scheme = parts.scheme.lower()
    segments = _path_segments(parts.path)
    if not host or parts.username is not None or parts.password is not None or segments is None:
        return None
    # Credentials travel in clear over http, tolerable only to this machine (tests, local fakes).
    if scheme != "https" and not (scheme == "http" and _is_loopback(host)):
        return None
    port = port or _DEFAULT_PORTS[scheme]
    legacy = _LEGACY_HOST.fullmatch(host)
    if host in _SERVICES_HOSTS or legacy:
        # Both Services URL forms name the same organisation: map them to dev.azure.com/{org}.
        organization = legacy.group(1) if legacy else (segments[0] if segments else None)
        if port != 443 or not organization:
            return None
        return _Collection("https", "dev.azure.com", 443, (organization,))
    return _Collection(scheme, host, port, segments)


def same_organization(url: str, org_url: str) -> bool:
    """Whether `url` lies inside the organisation (or Server collection) at `org_url`.

    Both Services forms (dev.azure.com/{org}, {org}.visualstudio.com) are recognised and the
    organisation compared case-insensitively; https is required except on loopback hosts.
    """
    org = _collection_of(org_url)
    target = _collection_of(url)
    return org is not None and target is not None and org.contains(target)


# --- Requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """One REST call, built once and either sent (client) or logged (dry run)."""

    method: str
    url: str
    api_version: str
    params: Mapping[str, str | int] = field(default_factory=dict)
    body: Any = None

    @property
    def query(self) -> str:
        # azure-core appends `params` unencoded; encode values here (keys are our constants).
        params = {**self.params, "api-version": self.api_version}
        return "&".join(f"{key}={quote(str(value), safe='')}" for key, value in params.items())

    @property
    def full_url(self) -> str:
        return f"{self.url}?{self.query}"

    def describe(self) -> str:
        return f"{self.method} {urlsplit(self.url).path}?{self.query}"


def _segment(value: str, what: str) -> str:
    """Quote one path segment; reject values that would leave the intended path."""
    if value in {"", ".", ".."}:
        raise ValueError(f"{what} is not a valid URL path segment")
    return quote(value, safe="")


def _status_body(status: CommitStatus) -> dict[str, Any]:
    body: dict[str, Any] = {
        "state": status.state,
        "description": status.description,
        "context": {"genre": status.genre, "name": status.name},
    }
    if status.target_url:
        body["targetUrl"] = status.target_url
    return body


def _utc_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _feed_lines(lines: Sequence[str], now: datetime) -> list[str]:
    """Timestamped lines within the feed's 1024-character limit, one per physical line."""
    stamp = _utc_timestamp(now)
    return [
        f"{stamp} {physical}"[:_FEED_LINE_MAX] for line in lines for physical in line.splitlines()
    ]


class _Routes:
    """Builds every call the connector makes; shared by the client and the dry run."""

    def __init__(self, org_url: str, project: str, api_version: str) -> None:
        self.org_url = org_url
        self._base = org_url.rstrip("/")
        self._project = _segment(project, "project")
        self._api_version = api_version

    def _git(self, method: str, path: str, **kwargs: Any) -> _Call:
        url = f"{self._base}/{self._project}/_apis/git/{path}"
        return _Call(method, url, self._api_version, **kwargs)

    def _repository(self, repository: str) -> str:
        return f"repositories/{_segment(repository, 'repository')}"

    def commit_status(self, repository: str, commit: str, status: CommitStatus) -> _Call:
        path = f"{self._repository(repository)}/commits/{_segment(commit, 'commit')}/statuses"
        return self._git("POST", path, body=_status_body(status))

    def pull_request_status(self, repository: str, pr_id: int, status: CommitStatus) -> _Call:
        path = f"{self._repository(repository)}/pullRequests/{int(pr_id)}/statuses"
        return self._git("POST", path, body=_status_body(status))

    def commit(self, repository: str, commit: str) -> _Call:
        return self._git(
            "GET", f"{self._repository(repository)}/commits/{_segment(commit, 'commit')}"
        )

    def merge_bases(self, repository: str, commit: str, other: str) -> _Call:
        path = f"{self._repository(repository)}/commits/{_segment(commit, 'commit')}/mergebases"
        return self._git("GET", path, params={"otherCommitId": other})

    def merge_commit_query(self, repository: str, commit: str) -> _Call:
        body = {"queries": [{"type": "lastMergeCommit", "items": [commit]}]}
        return self._git("POST", f"{self._repository(repository)}/pullrequestquery", body=body)

    def pull_request(self, pr_id: int) -> _Call:
        return self._git("GET", f"pullrequests/{int(pr_id)}")

    def abandoned_pull_requests(self, repository: str, since: datetime, skip: int) -> _Call:
        params: dict[str, str | int] = {
            "searchCriteria.status": "abandoned",
            "searchCriteria.queryTimeRangeType": "closed",
            "searchCriteria.minTime": _utc_timestamp(since),
            "$top": _PAGE_SIZE,
            "$skip": skip,
        }
        return self._git("GET", f"{self._repository(repository)}/pullrequests", params=params)

    def pull_request_properties(self, repository: str, pr_id: int) -> _Call:
        path = f"{self._repository(repository)}/pullRequests/{int(pr_id)}/properties"
        return self._git("GET", path)

    def _plan(self, plan: PlanRef) -> str:
        # The PlanRef arrives in request headers: check it before building a URL that would
        # carry our credentials, and let no header value add or climb path segments.
        if not same_organization(plan.plan_url, self.org_url):
            raise ForeignOrganizationError("plan URL is outside the configured organisation")
        try:
            project = _segment(plan.project_id, "ProjectId")
            hub = _segment(plan.hub_name, "HubName")
            plan_id = _segment(plan.plan_id, "PlanId")
        except ValueError as exc:
            raise ForeignOrganizationError(str(exc)) from exc
        base = plan.plan_url.rstrip("/")
        return f"{base}/{project}/_apis/distributedtask/hubs/{hub}/plans/{plan_id}"

    def _timeline(self, plan: PlanRef) -> str:
        try:
            return f"{self._plan(plan)}/timelines/{_segment(plan.timeline_id, 'TimelineId')}"
        except ValueError as exc:
            raise ForeignOrganizationError(str(exc)) from exc

    def plan(self, plan: PlanRef) -> _Call:
        return _Call("GET", self._plan(plan), _PLAN_API_VERSION)

    def timeline_records(self, plan: PlanRef) -> _Call:
        return _Call("GET", f"{self._timeline(plan)}/records", _PLAN_API_VERSION)

    def task_completed(self, plan: PlanRef, result: str) -> _Call:
        if result not in _TASK_RESULTS:
            raise ValueError(f"task result must be one of {sorted(_TASK_RESULTS)}")
        body = {
            "name": "TaskCompleted",
            "taskId": plan.task_instance_id,
            "jobId": plan.job_id,
            "result": result,
        }
        return _Call("POST", f"{self._plan(plan)}/events", _PLAN_EVENTS_API_VERSION, body=body)

    def feed(self, plan: PlanRef, lines: list[str]) -> _Call:
        try:
            record = _segment(plan.job_id, "JobId")
        except ValueError as exc:
            raise ForeignOrganizationError(str(exc)) from exc
        url = f"{self._timeline(plan)}/records/{record}/feed"
        body = {"value": lines, "count": len(lines)}
        return _Call("POST", url, _TIMELINE_FEED_API_VERSION, body=body)


# --- Response decoding ----------------------------------------------------------------------


def _parse_datetime(value: Any) -> datetime | None:
    # Azure DevOps writes 7 fractional digits and uses year 1 for "never"; 3.11 parses both.
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    if moment.year <= 1:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _items(data: Any) -> list[Any]:
    value = data["value"]
    if not isinstance(value, list):
        raise TypeError("value is not a list")
    return value


def _to_commit(data: Any) -> Commit:
    return Commit(
        commit_id=str(data["commitId"]),
        comment=str(data.get("comment", "")),
        parents=tuple(str(parent) for parent in data.get("parents", ())),
    )


def _to_pull_request(data: Any) -> PullRequest:
    merge_commit = data.get("lastMergeCommit") or {}
    return PullRequest(
        pull_request_id=int(data["pullRequestId"]),
        status=str(data["status"]),
        repository_id=str(data["repository"]["id"]),
        merge_commit=str(merge_commit["commitId"]) if merge_commit.get("commitId") else None,
        closed_date=_parse_datetime(data.get("closedDate")),
    )


def _to_pull_requests(data: Any) -> list[PullRequest]:
    return [_to_pull_request(item) for item in _items(data)]


def _merge_bases(data: Any) -> set[str]:
    return {str(item["commitId"]).lower() for item in _items(data)}


def _query_results(commit: str) -> Callable[[Any], list[PullRequest]]:
    def parse(data: Any) -> list[PullRequest]:
        # results[i] answers queries[i]; a commit with no PR may be absent from the mapping.
        results = data.get("results") or [{}]
        found = {key.lower(): value for key, value in results[0].items()}
        return [_to_pull_request(item) for item in found.get(commit.lower(), [])]

    return parse


def _unwrap_properties(data: Any) -> dict[str, str]:
    properties: dict[str, str] = {}
    for key, value in (data.get("value") or {}).items():
        is_typed = isinstance(value, dict) and "$value" in value
        properties[str(key)] = str(value["$value"] if is_typed else value)
    return properties


def _job_state(job_id: str) -> Callable[[Any], str | None]:
    def parse(data: Any) -> str | None:
        for record in _items(data):
            if str(record.get("id", "")).lower() == job_id.lower():
                return str(record["state"]) if record.get("state") else None
        return None

    return parse


def _plan_state(data: Any) -> tuple[str, str]:
    timeline = data.get("timeline") or {}
    return str(data["state"]), str(timeline.get("id") or "")


def _ignore(_: Any) -> None:
    return None


# --- Pipeline policies ----------------------------------------------------------------------


def _allows_credentials(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or _is_loopback((parts.hostname or "").lower())


class _PatPolicy(SansIOHTTPPolicy[HttpRequest, HttpResponse]):
    """Basic auth with a PAT (empty user name), refused over http except to loopback."""

    def __init__(self, pat: str) -> None:
        super().__init__()
        self._header = "Basic " + base64.b64encode(f":{pat}".encode()).decode("ascii")

    def on_request(self, request: PipelineRequest[HttpRequest]) -> None:
        # The client passes enforce_https for BearerTokenCredentialPolicy; consume it here too,
        # since the transport would reject an unknown keyword.
        request.context.options.pop("enforce_https", None)
        if not _allows_credentials(request.http_request.url):
            raise ServiceRequestError("refusing to send a PAT over plain http")
        request.http_request.headers["Authorization"] = self._header


def _auth_policy(pat: str | None, credential: TokenCredential | None) -> Any:
    if (pat is None) == (credential is None):
        raise ValueError("pass exactly one of pat or credential")
    if credential is not None:
        return BearerTokenCredentialPolicy(credential, ORG_SCOPE)
    if not pat:
        raise ValueError("pat must not be empty")
    return _PatPolicy(pat)


def _policies(
    *,
    auth: Any,
    retry_total: int,
    retry_backoff_factor: float,
    retry_backoff_max: float,
) -> list[Any]:
    logging_policy: HttpLoggingPolicy = HttpLoggingPolicy(
        http_logging_level=logging.DEBUG, additional_allowed_query_params=_LOGGABLE_QUERY
    )
    # HttpLoggingPolicy redacts every header not allow-listed, Authorization included.
    # NetworkTraceLoggingPolicy is left out on purpose: it logs headers verbatim.
    logging_policy.allowed_header_names.update(_LOGGABLE_HEADERS)
    return [
        HeadersPolicy({"X-TFS-FedAuthRedirect": "Suppress", "Accept": "application/json"}),
        UserAgentPolicy(base_user_agent=_USER_AGENT),
        retry_policy(retry_total, retry_backoff_factor, retry_backoff_max),
        auth,
        DistributedTracingPolicy(instrumentation_config={"library_name": "flux-azdo-connector"}),
        _CountResponses(),
        logging_policy,
    ]


class _CountResponses(SansIOHTTPPolicy[HttpRequest, HttpResponse]):
    """Counts every answer, retried attempts included (it sits inside the retry loop)."""

    def on_response(
        self,
        request: PipelineRequest[HttpRequest],
        response: PipelineResponse[HttpRequest, HttpResponse],
    ) -> None:
        from connector import telemetry

        status = response.http_response.status_code
        attributes: dict[str, str | int] = {
            "http.request.method": request.http_request.method,
            "http.response.status_code": status,
        }
        telemetry.azdo_requests.add(1, attributes)
        if status == 429:
            telemetry.azdo_throttled.add(1, attributes)


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
        auth = _auth_policy(pat, credential)
        if _collection_of(org_url) is None:
            raise ValueError("org_url must be an https URL (http only for loopback hosts)")
        self._routes = _Routes(org_url, project, api_version)
        self._secrets = _secret_forms(pat)
        self._transport_options: dict[str, Any] = {
            "connection_timeout": connection_timeout,
            "read_timeout": read_timeout,
        }
        self._client: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(
            base_url=org_url,
            policies=_policies(
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
        self._send(self._routes.commit_status(repository, commit, status), _ignore)

    def post_pull_request_status(
        self, repository: str, pull_request_id: int, status: CommitStatus
    ) -> None:
        call = self._routes.pull_request_status(repository, pull_request_id, status)
        self._send(call, _ignore)

    # --- repository reads ---

    def get_commit(self, repository: str, commit: str) -> Commit:
        return self._send(self._routes.commit(repository, commit), _to_commit)

    def is_ancestor(self, repository: str, ancestor: str, descendant: str) -> bool:
        """Whether `ancestor` is reachable from `descendant`: their merge base is `ancestor`."""
        bases = self._send(self._routes.merge_bases(repository, ancestor, descendant), _merge_bases)
        return ancestor.lower() in bases

    def pull_requests_for_merge_commit(self, repository: str, commit: str) -> list[PullRequest]:
        call = self._routes.merge_commit_query(repository, commit)
        return self._send(call, _query_results(commit))

    def get_pull_request(self, pull_request_id: int) -> PullRequest:
        return self._send(self._routes.pull_request(pull_request_id), _to_pull_request)

    def list_abandoned_pull_requests(self, repository: str, since: datetime) -> list[PullRequest]:
        """PRs abandoned at or after `since` (timezone-aware), all pages."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        found: list[PullRequest] = []
        while True:
            call = self._routes.abandoned_pull_requests(repository, since, skip=len(found))
            page = self._send(call, _to_pull_requests)
            found.extend(page)
            if len(page) < _PAGE_SIZE:
                return found

    def get_pull_request_properties(self, repository: str, pull_request_id: int) -> dict[str, str]:
        call = self._routes.pull_request_properties(repository, pull_request_id)
        return self._send(call, _unwrap_properties)

    # --- agentless task callbacks ---

    def get_plan_state(self, plan: PlanRef) -> PlanState:
        """Plan state and the job record's state; a plan Azure DevOps no longer knows is
        "unknown" (deleted, or a stale callback), a missing timeline or record is None.
        Without a TimelineId (PR-property callbacks) the plan's own timeline is used."""
        try:
            plan_state, timeline_id = self._send(self._routes.plan(plan), _plan_state)
        except PermanentAzureDevOpsError as exc:
            if exc.status_code != 404:
                raise
            return PlanState("unknown", None)
        if not plan.timeline_id and timeline_id:
            plan = replace(plan, timeline_id=timeline_id)
        if not plan.timeline_id:
            return PlanState(plan_state, None)
        try:
            job_state = self._send(self._routes.timeline_records(plan), _job_state(plan.job_id))
        except PermanentAzureDevOpsError as exc:
            if exc.status_code != 404:
                raise
            job_state = None
        return PlanState(plan_state, job_state)

    def post_task_completed(self, plan: PlanRef, result: str) -> None:
        self._send(self._routes.task_completed(plan, result), _ignore)

    def append_feed(self, plan: PlanRef, lines: Sequence[str]) -> None:
        feed = _feed_lines(lines, datetime.now(UTC))
        call = self._routes.feed(plan, feed)
        if feed:
            self._send(call, _ignore)

    # --- transport ---

    def _options(self, url: str) -> dict[str, Any]:
        options = dict(self._transport_options)
        if urlsplit(url).scheme == "http":
            # Only reachable for loopback (checked by _collection_of); lets bearer auth reach
            # a local fake, which BearerTokenCredentialPolicy would otherwise refuse.
            options["enforce_https"] = False
        return options

    def _send(self, call: _Call, parse: Callable[[Any], T]) -> T:
        request = HttpRequest(call.method, call.full_url, json=call.body)
        where = f"{call.method} {urlsplit(call.url).path}"
        try:
            response = self._client.send_request(request, **self._options(call.url))
        except ClientAuthenticationError as exc:
            # The credential could not produce a token (identity endpoint down, not assigned):
            # nothing reached Azure DevOps; a later attempt may succeed.
            raise TransientAzureDevOpsError(
                f"{where}: no access token ({type(exc).__name__})"
            ) from exc
        except AzureError as exc:
            raise TransientAzureDevOpsError(f"{where}: {type(exc).__name__}") from exc
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
        if status in {408, 429} or status >= 500:
            raise TransientAzureDevOpsError(f"{where} answered {status}: {error}", status)
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


def _secret_forms(pat: str | None) -> tuple[str, ...]:
    if not pat:
        return ()
    return (pat, base64.b64encode(f":{pat}".encode()).decode("ascii"))


def _error_message(response: HttpResponse, secrets: Sequence[str]) -> str:
    """The service's own message, bounded, with anything resembling our credentials removed."""
    try:
        body = response.json()
        message = str(body.get("message") or response.reason or "")
    except (ValueError, AttributeError):
        message = str(response.reason or "")
    for secret in secrets:
        message = message.replace(secret, "***")
    return message[:_MESSAGE_MAX]


# --- Dry run --------------------------------------------------------------------------------


class DryRunAzureDevOps:
    """Logs every write it would make and sends nothing; reads answer harmlessly.

    For trying the connector against a real organisation without touching it. Calls are built
    by the same code as the real client, so the logged paths and bodies are what it would send.
    """

    def __init__(self, org_url: str, project: str, *, api_version: str = "7.1") -> None:
        self._routes = _Routes(org_url, project, api_version)

    def close(self) -> None:
        return None

    def post_commit_status(self, repository: str, commit: str, status: CommitStatus) -> None:
        self._log(self._routes.commit_status(repository, commit, status))

    def post_pull_request_status(
        self, repository: str, pull_request_id: int, status: CommitStatus
    ) -> None:
        self._log(self._routes.pull_request_status(repository, pull_request_id, status))

    def get_commit(self, repository: str, commit: str) -> Commit:
        return Commit(commit, "", ())

    def is_ancestor(self, repository: str, ancestor: str, descendant: str) -> bool:
        return False

    def pull_requests_for_merge_commit(self, repository: str, commit: str) -> list[PullRequest]:
        return []

    def get_pull_request(self, pull_request_id: int) -> PullRequest:
        raise PermanentAzureDevOpsError(404, "dry run: pull requests are not looked up")

    def list_abandoned_pull_requests(self, repository: str, since: datetime) -> list[PullRequest]:
        return []

    def get_pull_request_properties(self, repository: str, pull_request_id: int) -> dict[str, str]:
        return {}

    def get_plan_state(self, plan: PlanRef) -> PlanState:
        self._routes.plan(plan)  # same ForeignOrganizationError as the real client
        return PlanState("inProgress", "inProgress")

    def post_task_completed(self, plan: PlanRef, result: str) -> None:
        self._log(self._routes.task_completed(plan, result))

    def append_feed(self, plan: PlanRef, lines: Sequence[str]) -> None:
        feed = _feed_lines(lines, datetime.now(UTC))
        call = self._routes.feed(plan, feed)
        if feed:
            self._log(call)

    def _log(self, call: _Call) -> None:
        _LOG.info("azure_devops.dry_run %s %s", call.describe(), json.dumps(call.body))


class JobToken:
    """A `TokenCredential` holding a pipeline job's access token (`System.AccessToken`), for
    completing a gate as the job itself; it cannot be refreshed, so it is used as it is."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)
