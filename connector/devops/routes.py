"""The REST routes the connector calls, built as values (sent by the client, logged in trial
mode), and the decoding of their answers. Path segments from outside are quoted or refused."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote, urlsplit

from connector.core.gates import PlanRef
from connector.devops.organization import same_organization
from connector.devops.types import Commit, CommitStatus, ForeignOrganizationError, PullRequest


@dataclass(frozen=True)
class ApiVersion:
    """The api-version one call sends, and the document that says it is served."""

    version: str
    source: str


# Every call the connector makes, with its api-version and where that version is documented.
# Order of authority: the REST specification (MicrosoftDocs/vsts-rest-api-specs, 7.1), then the
# Learn pages for agentless callbacks, then what Microsoft's generated clients send for resources
# the specification omits. Never a released version above a resource's released one: the service
# answers that with 400 VssInvalidPreviewVersionException. docs/azure-devops.md mirrors this table
# (a test keeps them equal). `None` = the configured AZDO_API_VERSION (git resources; 7.1 default).
_SPEC_GIT = "REST spec 7.1, specification/git/7.1/git.json"
_SPEC_TASK = "REST spec 7.1, specification/distributedTask/7.1/task.json"
_LEARN_CALLBACK = (
    "Learn: AzureFunction@1 / InvokeRESTAPI@1 callback; Invoke Azure Function / REST API checks"
)
_CLIENTS = (
    "not in the REST spec; microsoft/azure-devops-python-api task client sends 4.1 (released)"
)
API_VERSIONS: Final[dict[str, ApiVersion | None]] = {
    "Statuses_Create": None,
    "Pull Request Statuses_Create": None,
    "Commits_Get": None,
    "Items_Get": None,  # hydrator.metadata of a hydrated manifests commit
    "Commits_Get Commits": None,  # doctor
    "Statuses_List": None,  # doctor
    "Merge Bases_List": None,
    "Pull Request Query_Get": None,
    "Pull Requests_Get Pull Request By Id": None,
    "Pull Requests_Get Pull Requests": None,
    "Pull Request Properties_List": None,
    "Events_Post Event": ApiVersion("2.0-preview.1", _LEARN_CALLBACK),
    "Logs_Create": ApiVersion("7.1", _SPEC_TASK),
    "Logs_Append Log Content": ApiVersion("7.1", _SPEC_TASK),
    "Records_Update": ApiVersion("7.1", _SPEC_TASK),
    "Feed_Append Timeline Record Feed": ApiVersion("4.1", _LEARN_CALLBACK),
    "Plans_Get": ApiVersion("4.1", _CLIENTS),
    "Records_Get": ApiVersion("4.1", _CLIENTS),
}
GIT_SOURCE: Final = _SPEC_GIT


def _fixed(operation: str) -> str:
    version = API_VERSIONS[operation]
    if version is None:
        raise KeyError(f"{operation} follows the configured api-version")
    return version.version


PAGE_SIZE: Final = 100
FEED_LINE_MAX: Final = 1024
TASK_RESULTS: Final = frozenset({"succeeded", "failed"})


@dataclass(frozen=True)
class Call:
    """One REST call, built once and either sent (client) or logged (trial mode)."""

    method: str
    url: str
    api_version: str
    operation: str  # the key in API_VERSIONS (operationId of the REST spec where it has one)
    params: Mapping[str, str | int] = field(default_factory=dict)
    body: Any = None
    content_type: str = "application/json"

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


def feed_lines(lines: Sequence[str], now: datetime) -> list[str]:
    """Timestamped lines within the feed's 1024-character limit, one per physical line."""
    stamp = _utc_timestamp(now)
    return [
        f"{stamp} {physical}"[:FEED_LINE_MAX] for line in lines for physical in line.splitlines()
    ]


class Routes:
    """Builds every call the connector makes; shared by the client and trial mode."""

    def __init__(self, org_url: str, project: str, api_version: str) -> None:
        self.org_url = org_url
        self._base = org_url.rstrip("/")
        self._project = _segment(project, "project")
        self._api_version = api_version

    def _git(self, operation: str, method: str, path: str, **kwargs: Any) -> Call:
        url = f"{self._base}/{self._project}/_apis/git/{path}"
        return Call(method, url, self._api_version, operation, **kwargs)

    def _repository(self, repository: str) -> str:
        return f"repositories/{_segment(repository, 'repository')}"

    def commit_status(self, repository: str, commit: str, status: CommitStatus) -> Call:
        path = f"{self._repository(repository)}/commits/{_segment(commit, 'commit')}/statuses"
        return self._git("Statuses_Create", "POST", path, body=_status_body(status))

    def pull_request_status(self, repository: str, pr_id: int, status: CommitStatus) -> Call:
        path = f"{self._repository(repository)}/pullRequests/{int(pr_id)}/statuses"
        return self._git("Pull Request Statuses_Create", "POST", path, body=_status_body(status))

    def commit(self, repository: str, commit: str) -> Call:
        path = f"{self._repository(repository)}/commits/{_segment(commit, 'commit')}"
        return self._git("Commits_Get", "GET", path)

    def item(self, repository: str, path: str, commit: str) -> Call:
        """One file's content at a commit (Items - Get: `path` is required; `includeContent`
        and `$format=json` return the content inside the GitItem)."""
        params: dict[str, str | int] = {
            "path": path,
            "versionDescriptor.version": commit,
            "versionDescriptor.versionType": "commit",
            "includeContent": "true",
            "$format": "json",
        }
        return self._git("Items_Get", "GET", f"{self._repository(repository)}/items", params=params)

    def commits(self, repository: str, top: int) -> Call:
        params: dict[str, str | int] = {"searchCriteria.$top": int(top)}
        path = f"{self._repository(repository)}/commits"
        return self._git("Commits_Get Commits", "GET", path, params=params)

    def commit_statuses(self, repository: str, commit: str, top: int) -> Call:
        path = f"{self._repository(repository)}/commits/{_segment(commit, 'commit')}/statuses"
        return self._git("Statuses_List", "GET", path, params={"top": int(top)})

    def merge_bases(self, repository: str, commit: str, other: str) -> Call:
        path = f"{self._repository(repository)}/commits/{_segment(commit, 'commit')}/mergebases"
        return self._git("Merge Bases_List", "GET", path, params={"otherCommitId": other})

    def merge_commit_query(self, repository: str, commit: str) -> Call:
        body = {"queries": [{"type": "lastMergeCommit", "items": [commit]}]}
        path = f"{self._repository(repository)}/pullrequestquery"
        return self._git("Pull Request Query_Get", "POST", path, body=body)

    def pull_request(self, pr_id: int) -> Call:
        return self._git(
            "Pull Requests_Get Pull Request By Id", "GET", f"pullrequests/{int(pr_id)}"
        )

    def abandoned_pull_requests(self, repository: str, since: datetime, skip: int) -> Call:
        params: dict[str, str | int] = {
            "searchCriteria.status": "abandoned",
            "searchCriteria.queryTimeRangeType": "closed",
            "searchCriteria.minTime": _utc_timestamp(since),
            "$top": PAGE_SIZE,
            "$skip": skip,
        }
        path = f"{self._repository(repository)}/pullrequests"
        return self._git("Pull Requests_Get Pull Requests", "GET", path, params=params)

    def pull_request_properties(self, repository: str, pr_id: int) -> Call:
        path = f"{self._repository(repository)}/pullRequests/{int(pr_id)}/properties"
        return self._git("Pull Request Properties_List", "GET", path)

    def _plan(self, plan: PlanRef) -> str:
        # The PlanRef arrives in request headers: check it before building a URL that would
        # carry our credentials, and let no header value add or climb path segments.
        if not same_organization(plan.plan_url, self.org_url):
            raise ForeignOrganizationError("plan URL is outside the configured organisation")
        project = _plan_segment(plan.project_id, "ProjectId")
        hub = _plan_segment(plan.hub_name, "HubName")
        plan_id = _plan_segment(plan.plan_id, "PlanId")
        base = plan.plan_url.rstrip("/")
        return f"{base}/{project}/_apis/distributedtask/hubs/{hub}/plans/{plan_id}"

    def _timeline(self, plan: PlanRef) -> str:
        return f"{self._plan(plan)}/timelines/{_plan_segment(plan.timeline_id, 'TimelineId')}"

    def _task(self, operation: str, method: str, url: str, **kwargs: Any) -> Call:
        return Call(method, url, _fixed(operation), operation, **kwargs)

    def plan(self, plan: PlanRef) -> Call:
        return self._task("Plans_Get", "GET", self._plan(plan))

    def timeline_records(self, plan: PlanRef) -> Call:
        return self._task("Records_Get", "GET", f"{self._timeline(plan)}/records")

    def task_completed(self, plan: PlanRef, result: str) -> Call:
        if result not in TASK_RESULTS:
            raise ValueError(f"task result must be one of {sorted(TASK_RESULTS)}")
        body = {
            "name": "TaskCompleted",
            "taskId": plan.task_instance_id,
            "jobId": plan.job_id,
            "result": result,
        }
        return self._task("Events_Post Event", "POST", f"{self._plan(plan)}/events", body=body)

    def feed(self, plan: PlanRef, lines: list[str]) -> Call:
        url = f"{self._timeline(plan)}/records/{_plan_segment(plan.job_id, 'JobId')}/feed"
        body = {"value": lines, "count": len(lines)}
        return self._task("Feed_Append Timeline Record Feed", "POST", url, body=body)

    def create_log(self, plan: PlanRef) -> Call:
        """The task's stored log: Learn documents the path `logs\\{TaskInstanceId}`."""
        task = _plan_segment(plan.task_instance_id, "TaskInstanceId")
        body = {"path": f"logs\\{task}"}
        return self._task("Logs_Create", "POST", f"{self._plan(plan)}/logs", body=body)

    def append_log(self, plan: PlanRef, log_id: int, lines: Sequence[str]) -> Call:
        body = "".join(f"{line}\n" for line in lines).encode()
        url = f"{self._plan(plan)}/logs/{int(log_id)}"
        return self._task(
            "Logs_Append Log Content",
            "POST",
            url,
            body=body,
            content_type="application/octet-stream",
        )

    def attach_log(self, plan: PlanRef, log_id: int) -> Call:
        """Point the task's timeline record (id = TaskInstanceId) at its stored log."""
        record = {"id": plan.task_instance_id, "log": {"id": int(log_id)}}
        body = {"value": [record], "count": 1}
        url = f"{self._timeline(plan)}/records"
        return self._task("Records_Update", "PATCH", url, body=body)


def _plan_segment(value: str, what: str) -> str:
    """A path segment from callback headers: invalid means the plan reference is not ours."""
    try:
        return _segment(value, what)
    except ValueError as exc:
        raise ForeignOrganizationError(str(exc)) from exc


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


def to_commit(data: Any) -> Commit:
    return Commit(
        commit_id=str(data["commitId"]),
        comment=str(data.get("comment", "")),
        parents=tuple(str(parent) for parent in data.get("parents", ())),
        committed_at=_parse_datetime((data.get("committer") or {}).get("date")),
    )


def item_content(data: Any) -> str:
    content = data.get("content")
    if not isinstance(content, str):
        raise TypeError("the item has no text content")
    return content


def to_pull_request(data: Any) -> PullRequest:
    merge_commit = data.get("lastMergeCommit") or {}
    return PullRequest(
        pull_request_id=int(data["pullRequestId"]),
        status=str(data["status"]),
        repository_id=str(data["repository"]["id"]),
        merge_commit=str(merge_commit["commitId"]) if merge_commit.get("commitId") else None,
        closed_date=_parse_datetime(data.get("closedDate")),
        repository_name=str(data["repository"].get("name") or ""),
    )


def to_pull_requests(data: Any) -> list[PullRequest]:
    return [to_pull_request(item) for item in _items(data)]


def merge_bases(data: Any) -> set[str]:
    return {str(item["commitId"]).lower() for item in _items(data)}


def query_results(commit: str) -> Callable[[Any], list[PullRequest]]:
    def parse(data: Any) -> list[PullRequest]:
        # results[i] answers queries[i]; a commit with no PR may be absent from the mapping.
        results = data.get("results") or [{}]
        found = {key.lower(): value for key, value in results[0].items()}
        return [to_pull_request(item) for item in found.get(commit.lower(), [])]

    return parse


def unwrap_properties(data: Any) -> dict[str, str]:
    properties: dict[str, str] = {}
    for key, value in (data.get("value") or {}).items():
        is_typed = isinstance(value, dict) and "$value" in value
        properties[str(key)] = str(value["$value"] if is_typed else value)
    return properties


def decode_job_state(job_id: str) -> Callable[[Any], str | None]:
    def parse(data: Any) -> str | None:
        for record in _items(data):
            if str(record.get("id", "")).lower() == job_id.lower():
                return str(record["state"]) if record.get("state") else None
        return None

    return parse


def decode_plan_state(data: Any) -> tuple[str, str]:
    timeline = data.get("timeline") or {}
    return str(data["state"]), str(timeline.get("id") or "")


def ignore(_: Any) -> None:
    return None


def to_log_id(data: Any) -> int:
    return int(data["id"])
