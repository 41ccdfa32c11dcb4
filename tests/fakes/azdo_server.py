"""A loopback fake of the Azure DevOps REST routes the connector uses.

It speaks the real routes (statuses, PR lookups, merge bases, plan events, timeline feed), checks
auth and `api-version` like the service, answers errors as `{"message","typeKey","errorCode"}`
and collections as `{"count","value"}`. State is seeded by tests; every request is recorded.
Faults (status codes with `Retry-After`, dropped connections, slow answers) can be injected.

    with FakeAzureDevOps(pat="secret") as azdo:
        azdo.add_repository("gitops")
        ...AzureDevOpsClient(azdo.org_url, "project", pat="secret")...
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from tests.contract.checker import check_request


@dataclass(frozen=True)
class Versions:
    """What a resource location publishes (the `OPTIONS _apis` catalogue): the oldest version it
    serves and its last released one. A released api-version above `released` is refused as
    "under preview" (400 VssInvalidPreviewVersionException); `X.Y-preview[.N]` is served up to
    the service's own maximum. Source: the resource-location catalogue in
    shared/reference/azure-devops-api.md §6.3 and the service's error texts quoted there."""

    minimum: tuple[int, int]
    released: tuple[int, int]


SERVICE_MAX = (7, 2)  # Azure DevOps Services serves 7.2 previews (REST spec folders up to 7.2)
# Git resources: released 7.1 in the REST spec (specification/git/7.1/git.json).
GIT_API_VERSIONS = Versions(minimum=(1, 0), released=(7, 1))
# Plans, timeline records and the record feed: not in the spec; a published catalogue lists them
# with releasedVersion 5.1, minVersion 2.0 (the generated clients' 7.x versions are -preview).
PLAN_API_VERSIONS = Versions(minimum=(2, 0), released=(5, 1))
# Plan events, task logs, records update: released 7.1 (specification/distributedTask/7.1).
TASK_API_VERSIONS = Versions(minimum=(2, 0), released=(7, 1))

COMMIT_STATES = frozenset({"notSet", "pending", "succeeded", "failed", "error", "notApplicable"})
PR_STATUSES = frozenset({"notSet", "active", "abandoned", "completed", "all"})
TASK_RESULTS = frozenset(
    {"succeeded", "succeededwithissues", "failed", "canceled", "skipped", "abandoned"}
)
DEFAULT_PR_PAGE = 101  # what the service returns when $top is not given


def _iso(moment: datetime) -> str:
    """The service's timestamp format: UTC with seven fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


# --- State ----------------------------------------------------------------------------------


# The committer date of commits seeded without one (the fake's clock is fixed).
DEFAULT_COMMIT_DATE = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
COMPLETED_DATE = datetime(2026, 5, 14, 8, 55, tzinfo=UTC)


@dataclass
class FakeCommit:
    commit_id: str
    comment: str = ""
    parents: tuple[str, ...] = ()
    date: datetime = DEFAULT_COMMIT_DATE
    files: dict[str, str] = field(default_factory=dict)  # path → text, for Items - Get


@dataclass
class FakeRepository:
    id: str
    name: str
    commits: dict[str, FakeCommit] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by commit id

    def ancestors(self, commit_id: str) -> set[str]:
        """The commit and everything reachable through its parents."""
        seen: set[str] = set()
        pending = [commit_id]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            commit = self.commits.get(current)
            pending.extend(commit.parents if commit else ())
        return seen


@dataclass
class FakePullRequest:
    pull_request_id: int
    repository_id: str
    status: str = "active"
    last_merge_commit: str | None = None
    closed_date: datetime | None = None
    creation_date: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    commits: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeRecord:
    id: str
    state: str = "inProgress"
    type: str = "Job"
    result: str | None = None
    parent_id: str | None = None
    log_id: int | None = None


@dataclass
class FakeLog:
    id: int
    path: str
    lines: list[str] = field(default_factory=list)


@dataclass
class FakePlan:
    plan_id: str
    timeline_id: str
    hub: str = "build"
    state: str = "inProgress"
    result: str | None = None
    records: dict[str, FakeRecord] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    feed: dict[str, list[str]] = field(default_factory=dict)  # by record id
    logs: dict[int, FakeLog] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """One request as the fake saw it. `auth` is the kind only: basic, bearer, none, other."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    auth: str
    status: int  # 0 when the connection was dropped
    at: float = field(default_factory=time.monotonic, compare=False)  # when it arrived


@dataclass
class _Fault:
    path_contains: str
    remaining: int
    method: str | None
    status: int = 0
    retry_after: str | None = None
    drop: bool = False
    delay: float = 0.0
    lose_response: bool = False  # handle the request, then close without answering

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == method)
            and _path_has(path, self.path_contains)
        )


def _path_has(path: str, needle: str) -> bool:
    return needle in path or needle in unquote(path)


# --- HTTP plumbing --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise _HttpError(
                400, "The request body is not valid JSON.", "ArgumentException"
            ) from None


@dataclass
class _Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8; api-version=7.1"
    drop: bool = False
    delay: float = 0.0

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return b"" if self.body is None else json.dumps(self.body).encode()


class _HttpError(Exception):
    def __init__(self, status: int, message: str, type_key: str, error_code: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type_key = type_key
        self.error_code = error_code

    def response(self) -> _Response:
        body = {
            "$id": "1",
            "innerException": None,
            "message": self.message,
            "typeName": f"Microsoft.VisualStudio.Services.WebApi.{self.type_key}",
            "typeKey": self.type_key,
            "errorCode": self.error_code,
            "eventId": 3000,
        }
        return _Response(self.status, body)


def _collection(items: list[Any]) -> dict[str, Any]:
    return {"count": len(items), "value": items}


Handler = Callable[["FakeAzureDevOps", _Request, dict[str, str]], _Response]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: str  # name of a FakeAzureDevOps method
    api_versions: Versions


_PROJECT = r"^/(?P<org>[^/]+)/(?P<project>[^/]+)/_apis"
_REPO = _PROJECT + r"/git/repositories/(?P<repo>[^/]+)"
_COMMIT = _REPO + r"/commits/(?P<commit>[^/]+)"
_PR = _REPO + r"/pullrequests/(?P<pr>\d+)"
_PLAN = _PROJECT + r"/distributedtask/hubs/(?P<hub>[^/]+)/plans/(?P<plan>[^/]+)"
_TIMELINE = _PLAN + r"/timelines/(?P<timeline>[^/]+)"


def _route(method: str, pattern: str, handler: str, versions: Versions) -> _Route:
    # Azure DevOps routes are case-insensitive (pullRequests == pullrequests).
    return _Route(method, re.compile(pattern + "/?$", re.IGNORECASE), handler, versions)


ROUTES: tuple[_Route, ...] = (
    _route("POST", _COMMIT + "/statuses", "_create_commit_status", GIT_API_VERSIONS),
    _route("GET", _COMMIT + "/statuses", "_list_commit_statuses", GIT_API_VERSIONS),
    _route("GET", _COMMIT + "/mergebases", "_merge_bases", GIT_API_VERSIONS),
    _route("GET", _COMMIT, "_get_commit", GIT_API_VERSIONS),
    # "Commits - Get Commits" (operationId `Commits_Get Commits`, REST spec subset git 7.1).
    _route("GET", _REPO + "/commits", "_list_commits", GIT_API_VERSIONS),
    # "Items - Get" (operationId `Items_Get`, REST spec subset git 7.1: `path` is required).
    _route("GET", _REPO + "/items", "_get_item", GIT_API_VERSIONS),
    _route("POST", _PR + "/statuses", "_create_pr_status", GIT_API_VERSIONS),
    _route("GET", _PR + "/statuses", "_list_pr_statuses", GIT_API_VERSIONS),
    _route("GET", _PR + "/properties", "_pr_properties", GIT_API_VERSIONS),
    _route("GET", _REPO + "/pullrequests", "_list_pull_requests", GIT_API_VERSIONS),
    _route("POST", _REPO + "/pullrequestquery", "_query_pull_requests", GIT_API_VERSIONS),
    _route(
        "GET", _PROJECT + r"/git/pullrequests/(?P<pr>\d+)", "_get_pull_request", GIT_API_VERSIONS
    ),
    _route("GET", _PLAN, "_get_plan", PLAN_API_VERSIONS),
    _route("GET", _TIMELINE + "/records", "_get_records", PLAN_API_VERSIONS),
    _route("PATCH", _TIMELINE + "/records", "_update_records", TASK_API_VERSIONS),
    _route("POST", _PLAN + "/events", "_post_event", TASK_API_VERSIONS),
    _route("POST", _TIMELINE + r"/records/(?P<record>[^/]+)/feed", "_post_feed", PLAN_API_VERSIONS),
    _route("POST", _PLAN + "/logs", "_create_log", TASK_API_VERSIONS),
    _route("POST", _PLAN + r"/logs/(?P<log>\d+)", "_append_log", TASK_API_VERSIONS),
    _route("GET", _PLAN + r"/logs/(?P<log>\d+)", "_get_log", TASK_API_VERSIONS),
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeAzureDevOps) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out closes its socket before a delayed answer: not an error here.
        return None


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the service; clients reuse connections
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query, True).items()}
        headers = {key.lower(): value for key, value in self.headers.items()}
        request = _Request(self.command, parts.path, query, headers, self.rfile.read(length))
        response = self.server.fake.handle(request)
        if response.delay:
            time.sleep(response.delay)
        if response.drop:
            self.close_connection = True
            return
        payload = response.payload()
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


# --- The fake -------------------------------------------------------------------------------


class FakeAzureDevOps:
    """Azure DevOps Services for one organisation on 127.0.0.1, any project name or id."""

    def __init__(
        self,
        *,
        organization: str = "fabrikam",
        pat: str | None = "fake-pat",
        bearer_token: str | None = None,
    ) -> None:
        self.organization = organization
        self.expected_pat = pat
        self.expected_bearer = bearer_token
        self.repositories: dict[str, FakeRepository] = {}  # by id
        self.pull_requests: dict[int, FakePullRequest] = {}
        self.plans: dict[str, FakePlan] = {}
        self._calls: list[Call] = []
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._next_status_id = 1
        # Every request is checked against the REST spec subset (tests/contract); fixtures fail
        # a test whose requests broke it unless the test says it breaks it on purpose.
        self.contract_violations: list[str] = []

    # --- lifecycle ---

    def start(self) -> Self:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake is not started")
        return int(self._server.server_address[1])

    @property
    def org_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.organization}/"

    # --- seeding ---

    def add_repository(self, name: str, repository_id: str | None = None) -> FakeRepository:
        repository = FakeRepository(repository_id or str(uuid.uuid4()), name)
        with self._lock:
            self.repositories[repository.id] = repository
        return repository

    def add_commit(
        self,
        repository: str,
        commit_id: str,
        comment: str = "",
        parents: Iterable[str] = (),
        *,
        date: datetime = DEFAULT_COMMIT_DATE,
        files: Mapping[str, str] | None = None,
    ) -> FakeCommit:
        commit = FakeCommit(
            commit_id.lower(), comment, tuple(p.lower() for p in parents), date, dict(files or {})
        )
        with self._lock:
            self._repository(repository).commits[commit.commit_id] = commit
        return commit

    def add_pull_request(
        self,
        pull_request_id: int,
        repository: str,
        *,
        status: str = "active",
        last_merge_commit: str | None = None,
        closed_date: datetime | None = None,
        commits: Iterable[str] = (),
        properties: Mapping[str, str] | None = None,
    ) -> FakePullRequest:
        with self._lock:
            pull_request = FakePullRequest(
                pull_request_id,
                self._repository(repository).id,
                status=status,
                last_merge_commit=last_merge_commit.lower() if last_merge_commit else None,
                # The service sets closedDate when a PR completes; seeded without one, a
                # completed PR closed before the fake's commits were made.
                closed_date=closed_date or (COMPLETED_DATE if status == "completed" else None),
                commits=tuple(c.lower() for c in commits),
                properties=dict(properties or {}),
            )
            self.pull_requests[pull_request_id] = pull_request
        return pull_request

    def add_plan(
        self,
        plan_id: str,
        *,
        timeline_id: str,
        hub: str = "build",
        state: str = "inProgress",
        records: Mapping[str, str] | None = None,
    ) -> FakePlan:
        """A plan whose timeline holds Job records `{record id: state}`."""
        plan = FakePlan(plan_id.lower(), timeline_id.lower(), hub=hub, state=state)
        for record_id, record_state in (records or {}).items():
            plan.records[record_id.lower()] = FakeRecord(record_id.lower(), record_state)
        with self._lock:
            self.plans[plan.plan_id] = plan
        return plan

    # --- fault injection ---

    def inject(
        self,
        path_contains: str,
        status: int,
        count: int = 1,
        retry_after: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next `count` matching requests with `status` and a JSON error body."""
        fault = _Fault(path_contains, count, method, status=status, retry_after=retry_after)
        with self._lock:
            self._faults.append(fault)

    def inject_disconnect(
        self, path_contains: str, count: int = 1, method: str | None = None
    ) -> None:
        """Read the next `count` matching requests, then close the connection without answering."""
        with self._lock:
            self._faults.append(_Fault(path_contains, count, method, drop=True))

    def inject_lost_response(
        self, path_contains: str, count: int = 1, method: str | None = None
    ) -> None:
        """Handle the next `count` matching requests for real, then drop the answer."""
        with self._lock:
            self._faults.append(_Fault(path_contains, count, method, lose_response=True))

    def inject_delay(
        self, path_contains: str, seconds: float, count: int = 1, method: str | None = None
    ) -> None:
        """Handle the next `count` matching requests normally, but answer after `seconds`."""
        with self._lock:
            self._faults.append(_Fault(path_contains, count, method, delay=seconds))

    def clear_faults(self) -> None:
        """Forget faults not yet used up, e.g. to let a persistent outage end."""
        with self._lock:
            self._faults.clear()

    # --- inspection ---

    def calls(self, method: str | None = None, path_contains: str | None = None) -> list[Call]:
        with self._lock:
            return [
                call
                for call in self._calls
                if (method is None or call.method == method.upper())
                and (path_contains is None or _path_has(call.path, path_contains))
            ]

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def status_writes(self) -> list[Call]:
        """Every POST to a commit or PR statuses route, including refused attempts."""
        return [call for call in self.calls("POST") if _is_statuses(call.path)]

    def status_reads(self) -> list[Call]:
        """Every GET of a commit or PR statuses list."""
        return [call for call in self.calls("GET") if _is_statuses(call.path)]

    def task_completed_events(self) -> list[dict[str, Any]]:
        """Bodies of the TaskCompleted events the fake accepted, across plans, in order."""
        with self._lock:
            return [
                event
                for plan in self.plans.values()
                for event in plan.events
                if event.get("name") == "TaskCompleted"
            ]

    def commit_statuses(self, repository: str, commit_id: str) -> list[dict[str, Any]]:
        """Statuses stored for a commit, oldest first."""
        with self._lock:
            return list(self._repository(repository).statuses.get(commit_id.lower(), []))

    def pull_request_statuses(self, pull_request_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.pull_requests[pull_request_id].statuses)

    def task_log(self, plan_id: str, record_id: str) -> list[str]:
        """Lines of the stored log attached to a timeline record ([] when none is attached)."""
        with self._lock:
            plan = self.plans[plan_id.lower()]
            record = plan.records.get(record_id.lower())
            if record is None or record.log_id is None:
                return []
            return list(plan.logs[record.log_id].lines)

    def feed_lines(self, plan_id: str, record_id: str) -> list[str]:
        with self._lock:
            return list(self.plans[plan_id.lower()].feed.get(record_id.lower(), []))

    # --- dispatch ---

    def handle(self, request: _Request) -> _Response:
        violations = check_request(
            request.method,
            request.path,
            request.query,
            request.body,
            request.headers.get("content-type", ""),
        )
        with self._lock:
            self.contract_violations.extend(violations)
            response = self._answer(request)
            self._calls.append(
                Call(
                    request.method,
                    request.path,
                    request.query,
                    _json_or_none(request.body),
                    _auth_kind(request.headers.get("authorization", "")),
                    0 if response.drop else response.status,
                )
            )
        return response

    def _answer(self, request: _Request) -> _Response:
        fault = self._take_fault(request)
        if fault is not None and (fault.drop or fault.status):
            return self._fault_response(fault)
        try:
            response = self._route(request)
        except _HttpError as error:
            response = error.response()
        response.delay = fault.delay if fault is not None else 0.0
        response.drop = fault is not None and fault.lose_response
        return response

    def _take_fault(self, request: _Request) -> _Fault | None:
        for fault in self._faults:
            if fault.matches(request.method, request.path):
                fault.remaining -= 1
                return fault
        return None

    @staticmethod
    def _fault_response(fault: _Fault) -> _Response:
        if fault.drop:
            return _Response(0, drop=True)
        if fault.status == 429:
            message = (
                "TF400733: The request has been canceled: Request was blocked due to exceeding"
                " usage of resource 'Global' in namespace 'User'."
            )
            error = _HttpError(429, message, "RequestBlockedException")
        else:
            error = _HttpError(fault.status, f"Injected {fault.status}.", "InjectedFault")
        response = error.response()
        if fault.retry_after is not None:
            response.headers["Retry-After"] = fault.retry_after
        return response

    def _route(self, request: _Request) -> _Response:
        self._authenticate(request)
        path_matched = False
        for route in ROUTES:
            match = route.pattern.match(request.path)
            if match is None:
                continue
            path_matched = True
            if route.method != request.method:
                continue
            args = {key: unquote(value) for key, value in match.groupdict().items()}
            self._check_organization(args["org"])
            _check_api_version(request, route.api_versions)
            handler: Handler = getattr(type(self), route.handler)
            return handler(self, request, args)
        if path_matched:
            raise _HttpError(405, "The requested resource does not support http method.", "")
        raise _HttpError(404, "The controller for path was not found.", "HttpException")

    def _authenticate(self, request: _Request) -> None:
        header = request.headers.get("authorization", "")
        kind = _auth_kind(header)
        token = header.split(" ", 1)[1] if " " in header else ""
        accepted = {"basic": self.expected_pat, "bearer": self.expected_bearer}.get(kind)
        presented = _basic_password(token) if kind == "basic" else token
        if accepted is not None and presented == accepted:
            return
        if request.headers.get("x-tfs-fedauthredirect", "").lower() != "suppress":
            # Without the header the service answers a sign-in page, not an error.
            raise _SignInPageError
        raise _HttpError(401, "TF400813: The user is not authorized to access this resource.", "")

    def _check_organization(self, organization: str) -> None:
        if organization.lower() != self.organization.lower():
            message = f"The resource cannot be found: organization '{organization}'."
            raise _HttpError(404, message, "HostNotFoundException")

    # --- lookups ---

    def _repository(self, name_or_id: str) -> FakeRepository:
        wanted = name_or_id.lower()
        for repository in self.repositories.values():
            if wanted in {repository.id.lower(), repository.name.lower()}:
                return repository
        message = (
            f"TF401019: The Git repository with name or identifier {name_or_id} does not exist"
            " or you do not have permissions for the operation you are attempting."
        )
        raise _HttpError(404, message, "GitRepositoryNotFoundException", 1250)

    def _commit(self, repository: FakeRepository, commit_id: str) -> FakeCommit:
        commit = repository.commits.get(commit_id.lower())
        if commit is None:
            message = f"TF401175:The object '{commit_id}' does not exist."
            raise _HttpError(404, message, "GitObjectNotFoundException", 1232)
        return commit

    def _pull_request(self, pr_id: str, repository: FakeRepository | None) -> FakePullRequest:
        pull_request = self.pull_requests.get(int(pr_id))
        if pull_request is None or (repository and pull_request.repository_id != repository.id):
            message = "TF401180: The requested pull request was not found."
            raise _HttpError(404, message, "GitPullRequestNotFoundException", 1271)
        return pull_request

    def _plan(self, args: Mapping[str, str]) -> FakePlan:
        plan = self.plans.get(args["plan"].lower())
        if plan is None or plan.hub.lower() != args["hub"].lower():
            message = f"Orchestration plan {args['plan']} not found."
            raise _HttpError(404, message, "TaskOrchestrationPlanNotFoundException")
        return plan

    def _timeline(self, args: Mapping[str, str]) -> FakePlan:
        plan = self._plan(args)
        if plan.timeline_id != args["timeline"].lower():
            message = f"Timeline {args['timeline']} not found."
            raise _HttpError(404, message, "TimelineNotFoundException")
        return plan

    # --- JSON shapes ---

    def _pr_json(self, pull_request: FakePullRequest) -> dict[str, Any]:
        repository = self.repositories[pull_request.repository_id]
        data: dict[str, Any] = {
            "pullRequestId": pull_request.pull_request_id,
            "codeReviewId": pull_request.pull_request_id,
            "status": pull_request.status,
            "repository": {"id": repository.id, "name": repository.name},
            "creationDate": _iso(pull_request.creation_date),
            "title": f"PR {pull_request.pull_request_id}",
            "sourceRefName": "refs/heads/feature",
            "targetRefName": "refs/heads/main",
        }
        if pull_request.closed_date is not None:
            data["closedDate"] = _iso(pull_request.closed_date)
        if pull_request.last_merge_commit is not None:
            data["lastMergeCommit"] = {"commitId": pull_request.last_merge_commit}
        return data

    @staticmethod
    def _commit_json(commit: FakeCommit) -> dict[str, Any]:
        # GitUserDate (REST spec 7.1): git dates have whole seconds.
        date = commit.date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        person = {"name": "Flux", "email": "flux@example.com", "date": date}
        return {
            "commitId": commit.commit_id,
            "comment": commit.comment,
            "parents": list(commit.parents),
            "author": person,
            "committer": person,
        }

    def _new_status(self, body: Any, *, require_state: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _HttpError(
                400, "Value cannot be null.\r\nParameter name: status", "ArgumentNullException"
            )
        context = body.get("context") or {}
        if not isinstance(context, dict) or not context.get("name"):
            raise _HttpError(400, "The status context name must be set.", "ArgumentException")
        state = body.get("state")
        if (require_state or state is not None) and state not in COMMIT_STATES:
            raise _HttpError(400, f"Invalid status state '{state}'.", "ArgumentException")
        status = {
            "id": self._next_status_id,
            "state": state or "notSet",
            "description": body.get("description", ""),
            "context": {"name": context["name"], "genre": context.get("genre")},
            "creationDate": _iso(datetime.now(UTC)),
            "updatedDate": _iso(datetime.now(UTC)),
            "createdBy": {"displayName": "Connector"},
        }
        if body.get("targetUrl"):
            status["targetUrl"] = body["targetUrl"]
        self._next_status_id += 1
        return status

    # --- git handlers ---

    def _create_commit_status(self, request: _Request, args: dict[str, str]) -> _Response:
        repository = self._repository(args["repo"])
        commit = self._commit(repository, args["commit"])
        status = self._new_status(request.json(), require_state=True)
        repository.statuses.setdefault(commit.commit_id, []).append(status)
        return _Response(201, status)

    def _list_commit_statuses(self, request: _Request, args: dict[str, str]) -> _Response:
        repository = self._repository(args["repo"])
        commit = self._commit(repository, args["commit"])
        newest_first = list(reversed(repository.statuses.get(commit.commit_id, [])))
        if request.query.get("latestOnly", "").lower() == "true":
            newest_first = _latest_per_context(newest_first)
        skip = _int_param(request, "skip", 0)
        top = _int_param(request, "top", 1000)
        return _Response(200, _collection(newest_first[skip : skip + top]))

    def _get_commit(self, request: _Request, args: dict[str, str]) -> _Response:
        repository = self._repository(args["repo"])
        return _Response(200, self._commit_json(self._commit(repository, args["commit"])))

    # Projects the organisation has, by name or id; None accepts any (the default). So far only
    # the commits list checks it.
    projects: frozenset[str] | None = None

    def _list_commits(self, request: _Request, args: dict[str, str]) -> _Response:
        self._check_project(args["project"])
        repository = self._repository(args["repo"])
        newest_first = list(reversed(repository.commits.values()))
        skip = _int_param(request, "searchCriteria.$skip", 0)
        top = _int_param(request, "searchCriteria.$top", 100)  # a page of 100 when unset
        page = [self._commit_json(commit) for commit in newest_first[skip : skip + top]]
        return _Response(200, _collection(page))

    def _check_project(self, project: str) -> None:
        if self.projects is None or project.lower() in {p.lower() for p in self.projects}:
            return
        # What the service answers for a project name it does not know (404, TF200016).
        message = f"TF200016: The following project does not exist: {project}."
        raise _HttpError(404, message, "ProjectDoesNotExistWithNameException")

    def _get_item(self, request: _Request, args: dict[str, str]) -> _Response:
        repository = self._repository(args["repo"])
        path = request.query.get("path")
        if not path:
            raise _HttpError(400, "The path parameter is required.", "ArgumentException")
        version = request.query.get("versionDescriptor.version", "")
        if request.query.get("versionDescriptor.versionType") != "commit" or not version:
            # This fake serves commit versions only (the connector reads files at a commit).
            raise _HttpError(400, "Only commit versions are served here.", "ArgumentException")
        commit = self._commit(repository, version)
        text = commit.files.get("/" + path.lstrip("/"))
        if text is None:
            # TF401174, GitItemNotFoundException: what the service answers for a missing path.
            message = (
                f"TF401174: The item '{path}' could not be found in the repository"
                f" '{repository.name}' at the version specified by '<Commit: {version}>'."
            )
            raise _HttpError(404, message, "GitItemNotFoundException", 1253)
        item: dict[str, Any] = {
            "objectId": hashlib.sha1(text.encode()).hexdigest(),  # noqa: S324 - git's blob id
            "gitObjectType": "blob",
            "commitId": commit.commit_id,
            "path": "/" + path.lstrip("/"),
        }
        if request.query.get("includeContent", "").lower() == "true":
            item["content"] = text
        return _Response(200, item)

    def _merge_bases(self, request: _Request, args: dict[str, str]) -> _Response:
        repository = self._repository(args["repo"])
        other = request.query.get("otherCommitId")
        if not other:
            raise _HttpError(400, "The otherCommitId parameter is required.", "ArgumentException")
        first = self._commit(repository, args["commit"]).commit_id
        second = self._commit(repository, other).commit_id
        common = repository.ancestors(first) & repository.ancestors(second)
        # Best common ancestors: those not reachable from another common ancestor.
        best = [
            commit
            for commit in sorted(common)
            if not any(commit in repository.ancestors(o) for o in common if o != commit)
        ]
        return _Response(200, _collection([{"commitId": commit} for commit in best]))

    def _create_pr_status(self, request: _Request, args: dict[str, str]) -> _Response:
        pull_request = self._pull_request(args["pr"], self._repository(args["repo"]))
        status = self._new_status(request.json(), require_state=False)
        pull_request.statuses.append(status)
        return _Response(200, status)

    def _list_pr_statuses(self, request: _Request, args: dict[str, str]) -> _Response:
        pull_request = self._pull_request(args["pr"], self._repository(args["repo"]))
        return _Response(200, _collection(list(pull_request.statuses)))

    def _pr_properties(self, request: _Request, args: dict[str, str]) -> _Response:
        pull_request = self._pull_request(args["pr"], self._repository(args["repo"]))
        value = {
            key: {"$type": "System.String", "$value": item}
            for key, item in pull_request.properties.items()
        }
        return _Response(200, {"count": len(value), "value": value})

    def _list_pull_requests(self, request: _Request, args: dict[str, str]) -> _Response:
        repository = self._repository(args["repo"])
        status = request.query.get("searchCriteria.status", "active")
        if status not in PR_STATUSES:
            raise _HttpError(400, f"Invalid value '{status}' for status.", "ArgumentException")
        in_time = _time_filter(request)
        found = [
            pull_request
            for pull_request in sorted(
                self.pull_requests.values(), key=lambda p: -p.pull_request_id
            )
            if pull_request.repository_id == repository.id
            and status in {"all", pull_request.status}
            and in_time(pull_request)
        ]
        skip = _int_param(request, "$skip", 0)
        top = _int_param(request, "$top", DEFAULT_PR_PAGE)
        page = [self._pr_json(pull_request) for pull_request in found[skip : skip + top]]
        return _Response(200, _collection(page))

    def _query_pull_requests(self, request: _Request, args: dict[str, str]) -> _Response:
        repository = self._repository(args["repo"])
        body = request.json()
        queries = body.get("queries") if isinstance(body, dict) else None
        if not isinstance(queries, list) or not queries:
            raise _HttpError(400, "The queries collection must be set.", "ArgumentException")
        results = [self._answer_query(repository, query) for query in queries]
        return _Response(200, {"queries": queries, "results": results})

    def _answer_query(self, repository: FakeRepository, query: Any) -> dict[str, Any]:
        kind = query.get("type") if isinstance(query, dict) else None
        if kind not in {"lastMergeCommit", "commit"}:
            raise _HttpError(400, f"Invalid query type '{kind}'.", "ArgumentException")
        answer: dict[str, Any] = {}
        for item in query.get("items") or []:
            sha = str(item).lower()
            matches = [
                self._pr_json(pull_request)
                for pull_request in self.pull_requests.values()
                if pull_request.repository_id == repository.id
                and (
                    pull_request.last_merge_commit == sha
                    if kind == "lastMergeCommit"
                    else sha in pull_request.commits
                )
            ]
            if matches:  # the service leaves commits with no pull request out of the mapping
                answer[str(item)] = matches
        return answer

    def _get_pull_request(self, request: _Request, args: dict[str, str]) -> _Response:
        return _Response(200, self._pr_json(self._pull_request(args["pr"], None)))

    # --- pipeline handlers ---

    def _get_plan(self, request: _Request, args: dict[str, str]) -> _Response:
        plan = self._plan(args)
        body = {
            "planId": plan.plan_id,
            "planType": "Build",
            "state": plan.state,
            "result": plan.result,
            "timeline": {"id": plan.timeline_id},
        }
        return _Response(200, body)

    def _get_records(self, request: _Request, args: dict[str, str]) -> _Response:
        plan = self._timeline(args)
        records = [
            {
                "id": record.id,
                "parentId": record.parent_id,
                "type": record.type,
                "state": record.state,
                "result": record.result,
            }
            for record in plan.records.values()
        ]
        return _Response(200, _collection(records))

    def _post_event(self, request: _Request, args: dict[str, str]) -> _Response:
        plan = self._plan(args)
        event = request.json()
        if not isinstance(event, dict) or event.get("name") not in {"TaskStarted", "TaskCompleted"}:
            raise _HttpError(400, "Unknown event name.", "ArgumentException")
        job_id = str(event.get("jobId", "")).lower()
        if not job_id or not event.get("taskId"):
            raise _HttpError(400, "jobId and taskId are required.", "ArgumentException")
        if event["name"] == "TaskCompleted":
            self._complete_task(plan, job_id, event)
        plan.events.append(event)
        return _Response(204)

    @staticmethod
    def _complete_task(plan: FakePlan, job_id: str, event: dict[str, Any]) -> None:
        result = str(event.get("result", ""))
        if result.lower() not in TASK_RESULTS:
            raise _HttpError(400, f"Invalid task result '{result}'.", "ArgumentException")
        if plan.state == "completed":
            # What the service does for a cancelled or timed-out plan.
            message = f"The orchestration plan {plan.plan_id} has already completed."
            raise _HttpError(500, message, "TaskOrchestrationPlanTerminatedException")
        record = plan.records.get(job_id)
        if record is None:
            message = f"Job {job_id} was not found in plan {plan.plan_id}."
            raise _HttpError(404, message, "TaskOrchestrationJobNotFoundException")
        record.state, record.result = "completed", result

    def _create_log(self, request: _Request, args: dict[str, str]) -> _Response:
        plan = self._plan(args)
        body = request.json()
        path = body.get("path") if isinstance(body, dict) else None
        if not isinstance(path, str) or not path:
            raise _HttpError(400, "The log path is required.", "ArgumentNullException")
        log = FakeLog(len(plan.logs) + 1, path)
        plan.logs[log.id] = log
        return _Response(200, self._log_json(plan, log))

    def _append_log(self, request: _Request, args: dict[str, str]) -> _Response:
        # Spec: consumes application/octet-stream (Logs_Append Log Content).
        if not request.headers.get("content-type", "").startswith("application/octet-stream"):
            raise _HttpError(415, "The request content type is not supported.", "")
        plan = self._plan(args)
        log = plan.logs.get(int(args["log"]))
        if log is None:
            raise _HttpError(404, f"Log {args['log']} was not found.", "TaskLogNotFoundException")
        log.lines.extend(request.body.decode("utf-8").splitlines())
        return _Response(200, self._log_json(plan, log))

    def _update_records(self, request: _Request, args: dict[str, str]) -> _Response:
        plan = self._timeline(args)
        body = request.json()
        items = body.get("value") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise _HttpError(400, "The value must be a list of records.", "ArgumentException")
        updated = []
        for item in items:
            record_id = str(item.get("id", "")).lower()
            record = plan.records.setdefault(record_id, FakeRecord(record_id, type="Task"))
            log = item.get("log")
            if isinstance(log, dict):
                if log.get("id") not in plan.logs:
                    raise _HttpError(400, "The log does not exist.", "ArgumentException")
                record.log_id = int(log["id"])
            updated.append({"id": record.id, "state": record.state, "log": log})
        return _Response(200, _collection(updated))

    def _log_json(self, plan: FakePlan, log: FakeLog) -> dict[str, Any]:
        return {
            "id": log.id,
            "path": log.path,
            "lineCount": len(log.lines),
            "createdOn": _iso(datetime.now(UTC)),
            "lastChangedOn": _iso(datetime.now(UTC)),
            "url": f"{self.org_url}_apis/distributedtask/plans/{plan.plan_id}/logs/{log.id}",
        }

    def _post_feed(self, request: _Request, args: dict[str, str]) -> _Response:
        plan = self._timeline(args)
        body = request.json()
        lines = body.get("value") if isinstance(body, dict) else None
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            raise _HttpError(400, "The feed value must be a list of lines.", "ArgumentException")
        plan.feed.setdefault(args["record"].lower(), []).extend(lines)
        return _Response(204)


class _SignInPageError(_HttpError):
    def __init__(self) -> None:
        super().__init__(203, "sign in", "")

    def response(self) -> _Response:
        page = b"<html><head><title>Sign In</title></head><body>Azure DevOps</body></html>"
        return _Response(203, page, content_type="text/html; charset=utf-8")


# --- helpers --------------------------------------------------------------------------------


def _auth_kind(header: str) -> str:
    if not header:
        return "none"
    scheme = header.split(" ", 1)[0].lower()
    return scheme if scheme in {"basic", "bearer"} else "other"


def _basic_password(token: str) -> str | None:
    try:
        decoded = base64.b64decode(token, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[1] if ":" in decoded else None


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _is_statuses(path: str) -> bool:
    return re.search(r"/statuses/?$", path, re.IGNORECASE) is not None


_VERSION = re.compile(r"^(\d+)\.(\d+)(-preview(\.\d+)?)?$")


def _check_api_version(request: _Request, versions: Versions) -> None:
    version = request.query.get("api-version")
    if not version:
        message = (
            f'No api-version was supplied for the "{request.method}" request. The version must'
            ' be supplied either as part of the Accept header (e.g. "application/json;'
            ' api-version=1.0") or as a query parameter (e.g. "?api-version=1.0").'
        )
        raise _HttpError(400, message, "VssVersionNotSpecifiedException")
    match = _VERSION.match(version)
    if match is None:
        message = f"The requested version '{version}' is not a valid API version."
        raise _HttpError(400, message, "VssInvalidApiVersionException")
    number = (int(match.group(1)), int(match.group(2)))
    if not versions.minimum <= number <= SERVICE_MAX:
        message = (
            f"The requested REST API version of {version} is outside the range of versions"
            " supported by this server."
        )
        raise _HttpError(400, message, "VssVersionOutOfRangeException")
    if match.group(3) is None and number > versions.released:
        message = (
            f'The requested version "{version}" of the resource is under preview. The -preview'
            " flag must be supplied in the api-version for such requests. For example:"
            f' "{version}-preview"'
        )
        raise _HttpError(400, message, "VssInvalidPreviewVersionException")


def _int_param(request: _Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    try:
        return default if raw is None else max(0, int(raw))
    except ValueError:
        raise _HttpError(400, f"Invalid value '{raw}' for {name}.", "ArgumentException") from None


def _time_param(request: _Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _HttpError(400, f"Invalid date '{raw}' for {name}.", "ArgumentException") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _time_filter(request: _Request) -> Callable[[FakePullRequest], bool]:
    kind = request.query.get("searchCriteria.queryTimeRangeType", "created")
    if kind not in {"created", "closed"}:
        raise _HttpError(400, f"Invalid queryTimeRangeType '{kind}'.", "ArgumentException")
    low = _time_param(request, "searchCriteria.minTime")
    high = _time_param(request, "searchCriteria.maxTime")

    def accept(pull_request: FakePullRequest) -> bool:
        moment = pull_request.closed_date if kind == "closed" else pull_request.creation_date
        if moment is None:
            return low is None and high is None
        return (low is None or moment >= low) and (high is None or moment <= high)

    return accept


def _latest_per_context(newest_first: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[tuple[Any, Any]] = set()
    latest = []
    for status in newest_first:
        key = (status["context"].get("genre"), status["context"]["name"])
        if key not in seen:
            seen.add(key)
            latest.append(status)
    return latest
