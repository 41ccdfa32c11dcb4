"""`POST /api/gates`: an agentless task (AzureFunction@1 / InvokeRESTAPI@1 in callback mode, or an
"Invoke Azure Function" check) registers the gate it waits on.

Answers at once: the gate is stored and a gate check is queued, which evaluates it (the
deployment may already be done). A `PlanUrl` outside the configured organisation is refused
with 403 and nothing is ever sent there. Every field is validated as strictly as a Flux event's
(400 naming the field), and a gate whose record would not fit in Azure Table is refused with 413,
so that one bad registration can never break the processing of an environment. A 200 means
stored and queued; when the queue is unreachable the answer is 503 with Retry-After.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from connector import telemetry
from connector.core.gates import Gate, PlanRef, gate_id
from connector.core.names import ORIGIN_NAME, ORIGIN_NAME_LIMIT, parse_object_reference
from connector.devops.client import same_organization
from connector.gates import bindings
from connector.gates.keeper import GateKeeper
from connector.gates.rechecks import GateChecks
from connector.gates.store import GateStore, entity
from connector.queue.sender import MessageSender
from connector.settings import Settings
from connector.storage.rows import entity_problems
from connector.web import Reply, Request

logger = logging.getLogger(__name__)

# The callback contract of the agentless tasks (header names are case-insensitive).
REQUIRED_HEADERS = ("PlanUrl", "ProjectId", "HubName", "PlanId", "JobId", "TaskInstanceId")
CHECK_DELAY = timedelta(seconds=3)  # let the task receive our answer before any completion
RETRY_AFTER_SECONDS = "5"

# Limits of one registration. A pipeline task's body is at most 2,000 characters (AzureFunction@1
# and InvokeRESTAPI@1), so real gates are far below them; they bound what one evaluation reads
# and keep a gate record inside the Table entity limits.
MAX_BODY_BYTES = 256 * 1024
MAX_CLUSTERS = 100  # clusters of one environment a gate waits for
MAX_OBJECTS = 500  # Flux objects (Kind/namespace/name) it requires
# Source: Learn, Azure DevOps "Naming restrictions and conventions", Azure Repos: a repository
# name has at most 64 Unicode characters, no control or surrogate characters, none of
# \ / : * ? " < > ; # $ { } , + = [ ] |, and does not start with '_' nor start or end with '.'.
REPOSITORY_NAME_LIMIT = 64
_REPOSITORY_FORBIDDEN = re.compile(r'[\x00-\x1f\ud800-\udfff\\/:*?"<>;#${},+=\[\]|]')
# Azure DevOps pull request ids are int32 (REST 7.1 spec subset, GitPullRequest.pullRequestId).
PULL_REQUEST_ID_MAX = 2**31 - 1


def _origin_name(value: str) -> str:
    if not ORIGIN_NAME.fullmatch(value):
        raise ValueError(
            "use letters, digits, '.', '_' or '-', starting with a letter or digit "
            f"(at most {ORIGIN_NAME_LIMIT} characters)"
        )
    return value


def _object_reference(value: str) -> str:
    parse_object_reference(value)
    return value


def _repository_name(value: str) -> str:
    if _REPOSITORY_FORBIDDEN.search(value) or value.startswith(("_", ".")) or value.endswith("."):
        raise ValueError(
            'not an Azure DevOps repository name: no control characters or \\ / : * ? " < > ; '
            "# $ { } , + = [ ] |, and no leading '_' or '.' or trailing '.'"
        )
    return value


def _not_a_boolean(value: Any) -> Any:
    # JSON `true` is no number: pydantic's lax mode would read it as 1 (PR 1, 1 minute).
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")  # noqa: TRY004 - a 400 message
    return value


Number = BeforeValidator(_not_a_boolean)
OriginName = Annotated[str, AfterValidator(_origin_name)]
ObjectReference = Annotated[str, AfterValidator(_object_reference)]
RepositoryName = Annotated[
    str,
    Field(min_length=1, max_length=REPOSITORY_NAME_LIMIT),
    AfterValidator(_repository_name),
]


class GateRequest(BaseModel):
    """The body of `POST /api/gates`. Unknown fields are refused: a misspelt field silently
    ignored would make a gate wait for the wrong thing."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    environment: OriginName
    commit: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{40}$")
    pull_request_id: Annotated[int | None, Number] = Field(
        default=None, alias="pullRequestId", gt=0, le=PULL_REQUEST_ID_MAX
    )
    repository: RepositoryName | None = None
    clusters: tuple[OriginName, ...] = Field(default=(), max_length=MAX_CLUSTERS)
    objects: tuple[ObjectReference, ...] = Field(default=(), max_length=MAX_OBJECTS)
    # `timeoutInMinutes` is the name of the pipeline templates' parameter.
    timeout_minutes: Annotated[int | None, Number] = Field(
        default=None,
        validation_alias=AliasChoices("timeoutMinutes", "timeoutInMinutes"),
        ge=1,
        le=72 * 60,
    )


class Registration:
    def __init__(
        self, settings: Settings, keeper: GateKeeper, sender: MessageSender, gates: GateStore
    ) -> None:
        self._settings = settings
        self._keeper = keeper
        self._sender = sender
        self._gates = gates

    def handle(self, request: Request) -> Reply:
        admitted = self._admit(request)
        if isinstance(admitted, Reply):
            return admitted
        wanted, timeout = admitted
        differ = bindings.conflicts(self._gates, wanted, timeout)
        if differ:
            logger.warning("gate.binding_conflict", extra={"gate": wanted.id, "fields": differ})
            return Reply(
                409,
                {
                    "error": "this job (PlanId, JobId, TaskInstanceId) is registered with other "
                    f"values: {', '.join(differ)}; a registration cannot change them",
                    "fields": [
                        {"field": f, "problem": "differs from the registration"} for f in differ
                    ],
                },
            )
        with telemetry.span("gate.register", gate=wanted.id, env=wanted.environment):
            # Kept with the gate: its completion, in another trace, links back to this one.
            registered = replace(wanted, registered_trace=telemetry.traceparent())
            gate = self._keeper.register(registered)
            queued = self._queue_check(gate)
        if not queued:
            return Reply(
                503,
                {"error": "queue unavailable, retry later", "gate": gate.id},
                {"Retry-After": RETRY_AFTER_SECONDS},
            )
        return Reply(
            200,
            {
                "gate": gate.id,
                "state": gate.state.value,
                "environment": gate.environment,
                "commit": gate.commit,
                "pullRequestId": gate.pull_request_id,
            },
        )

    def _admit(self, request: Request) -> tuple[Gate, int | None] | Reply:
        """The gate to store, or the 4xx that says why not; nothing is stored before this."""
        if request.method.upper() != "POST":
            return Reply(405, {"error": "method not allowed: use POST"})
        missing = _missing_headers(request.headers)
        if missing:
            return Reply(
                400, {"error": f"missing headers: {', '.join(missing)}", "missing": missing}
            )
        if len(request.body) > MAX_BODY_BYTES:
            return Reply(413, {"error": f"body larger than {MAX_BODY_BYTES} bytes"})
        parsed = self._body(request.body)
        if isinstance(parsed, Reply):
            return parsed
        body, repository = parsed
        plan = _plan(request.headers)
        if not same_organization(plan.plan_url, self._settings.azdo_org_url):
            logger.warning("gate.refused_foreign_plan_url", extra={"plan": plan.plan_id})
            return Reply(
                403, {"error": "PlanUrl is not in the configured Azure DevOps organisation"}
            )
        token = request.headers.get("AuthToken", "") if self._settings.gate_use_job_token else ""
        gate = replace(self._gate(plan, body, repository), auth_token=token)
        return _too_large(gate) or (gate, body.timeout_minutes)

    def _body(self, raw: bytes) -> tuple[GateRequest, str] | Reply:
        body = _parse(raw)
        if isinstance(body, Reply):
            return body
        repository = self._repository(body.repository)
        return repository if isinstance(repository, Reply) else (body, repository)

    def _repository(self, named: str | None) -> str | Reply:
        """The repository of the gate's PR status and abandonment matching: one the connector is
        configured for (its spelling), else 400; a PR status must not go to another team's PR."""
        configured = {
            r.casefold(): r for r in (self._settings.pr_repo, self._settings.azdo_gitops_repo) if r
        }
        if named is None:
            return self._settings.pr_repo
        found = configured.get(named.casefold())
        if found is None:
            allowed = ", ".join(sorted(set(configured.values()))) or "none configured"
            return Reply(
                400,
                {
                    "error": f"repository {named!r} is not a repository of this connector "
                    f"(AZDO_PR_REPO, AZDO_GITOPS_REPO: {allowed})",
                    "fields": [{"field": "repository", "problem": "not configured"}],
                },
            )
        return found

    def _gate(self, plan: PlanRef, body: GateRequest, repository: str) -> Gate:
        now = datetime.now(UTC)
        minutes = body.timeout_minutes or self._settings.gate_timeout_minutes
        return Gate(
            id=gate_id(plan.plan_id, plan.job_id),
            plan=plan,
            environment=body.environment,
            created_at=now,
            deadline=now + timedelta(minutes=minutes),
            commit=body.commit.lower() if body.commit else None,
            pull_request_id=body.pull_request_id,
            repository=repository,
            clusters=body.clusters,
            objects=body.objects,
        )

    def _queue_check(self, gate: Gate) -> bool:
        # Keyed by the registration time: a re-run of the job waits again and is checked again.
        # Not queued: the gate stays stored (the sweep evaluates it); the task's retry registers
        # the same gate again, which is harmless, and queues its check.
        at = datetime.now(UTC) + CHECK_DELAY
        return GateChecks(self._sender).queue(gate, at, f"registered/{gate.created_at.isoformat()}")


def _missing_headers(headers: Mapping[str, str]) -> list[str]:
    missing = [h for h in REQUIRED_HEADERS if not headers.get(h)]
    if headers.get("HubName", "").lower() != "checks" and not headers.get("TimelineId"):
        missing.append("TimelineId")
    return missing


def _parse(body: bytes) -> GateRequest | Reply:
    try:
        request = GateRequest.model_validate_json(body or b"{}")
    except ValidationError as exc:
        return _invalid(exc)
    if request.commit is None and request.pull_request_id is None:
        return Reply(
            400,
            {
                "error": "give commit or pullRequestId (or both)",
                "fields": [
                    {"field": "commit", "problem": "missing"},
                    {"field": "pullRequestId", "problem": "missing"},
                ],
            },
        )
    return request


def _invalid(exc: ValidationError) -> Reply:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return Reply(400, {"error": "body is not valid JSON"})
    fields = [
        {"field": ".".join(str(p) for p in e["loc"]) or "body", "problem": _problem(e)}
        for e in errors
    ]
    unknown = [f["field"] for f in fields if f["problem"] == _UNKNOWN]
    if unknown:
        error = f"unknown gate request fields: {', '.join(unknown)} (allowed: {_ALLOWED})"
    else:
        error = f"invalid gate request: {', '.join(f['field'] for f in fields)}"
    return Reply(400, {"error": error, "fields": fields})


_UNKNOWN = "unknown field"
_ALLOWED = (
    "environment, commit, pullRequestId, repository, clusters, objects, "
    "timeoutMinutes (or timeoutInMinutes)"
)


def _problem(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return _UNKNOWN
    return str(error["msg"]).removeprefix("Value error, ")


def _too_large(gate: Gate) -> Reply | None:
    """413 naming the fields when the gate's record would exceed an Azure Table limit."""
    problems = entity_problems(entity(gate))
    if not problems:
        return None
    fields = [{"field": _BODY_FIELD.get(p, p), "problem": why} for p, why in problems]
    names = ", ".join(dict.fromkeys(f["field"] for f in fields))
    return Reply(413, {"error": f"gate too large to store: {names}", "fields": fields})


# Gate record properties that come from the request, by the name the caller used.
_BODY_FIELD = {
    "PartitionKey": "environment",
    "repository": "repository",
    "clusters": "clusters",
    "objects": "objects",
    "plan_url": "PlanUrl header",
    "project_id": "ProjectId header",
    "hub_name": "HubName header",
    "plan_id": "PlanId header",
    "job_id": "JobId header",
    "timeline_id": "TimelineId header",
    "task_instance_id": "TaskInstanceId header",
    "auth_token": "AuthToken header",
    "entity": "body",
}


def _plan(headers: Mapping[str, Any]) -> PlanRef:
    return PlanRef(
        plan_url=headers.get("PlanUrl", ""),
        project_id=headers.get("ProjectId", ""),
        hub_name=headers.get("HubName", ""),
        plan_id=headers.get("PlanId", "").lower(),
        job_id=headers.get("JobId", "").lower(),
        timeline_id=headers.get("TimelineId", "").lower(),
        task_instance_id=headers.get("TaskInstanceId", ""),
    )
