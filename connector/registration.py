"""`POST /api/gates`: an agentless task (AzureFunction@1 / InvokeRESTAPI@1 in callback mode, or an
"Invoke Azure Function" check) registers the gate it waits on.

Answers at once: the gate is stored and a gate check is queued, which evaluates it (the
deployment may already be done). A `PlanUrl` outside the configured organisation is refused
with 403 and nothing is ever sent there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector.devops import PlanRef, same_organization
from connector.gatekeeper import GateKeeper
from connector.gates import Gate, gate_id
from connector.queue import MessageSender, OutgoingMessage, QueueUnavailableError
from connector.settings import Settings
from connector.web import Reply, Request

logger = logging.getLogger(__name__)

# The callback contract of the agentless tasks (header names are case-insensitive).
REQUIRED_HEADERS = ("PlanUrl", "ProjectId", "HubName", "PlanId", "JobId", "TaskInstanceId")
CHECK_DELAY = timedelta(seconds=3)  # let the task receive our answer before any completion


class GateRequest(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    environment: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    commit: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{40}$")
    pull_request_id: int | None = Field(default=None, alias="pullRequestId", gt=0)
    repository: str | None = Field(default=None, min_length=1, max_length=256)
    clusters: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    timeout_minutes: int | None = Field(default=None, alias="timeoutMinutes", ge=1, le=72 * 60)


class Registration:
    def __init__(self, settings: Settings, keeper: GateKeeper, sender: MessageSender) -> None:
        self._settings = settings
        self._keeper = keeper
        self._sender = sender

    def handle(self, request: Request) -> Reply:
        if request.method.upper() != "POST":
            return Reply(405, {"error": "method not allowed: use POST"})
        missing = [h for h in REQUIRED_HEADERS if not request.headers.get(h)]
        hub = request.headers.get("HubName", "")
        if hub.lower() != "checks" and not request.headers.get("TimelineId"):
            missing.append("TimelineId")
        if missing:
            return Reply(
                400, {"error": f"missing headers: {', '.join(missing)}", "missing": missing}
            )
        body = _parse(request.body)
        if isinstance(body, Reply):
            return body
        plan = _plan(request.headers)
        if not same_organization(plan.plan_url, self._settings.azdo_org_url):
            logger.warning("gate.refused_foreign_plan_url", extra={"plan": plan.plan_id})
            return Reply(
                403, {"error": "PlanUrl is not in the configured Azure DevOps organisation"}
            )
        token = request.headers.get("AuthToken", "") if self._settings.gate_use_job_token else ""
        gate = self._keeper.register(replace(self._gate(plan, body), auth_token=token))
        self._queue_check(gate)
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

    def _gate(self, plan: PlanRef, body: GateRequest) -> Gate:
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
            repository=body.repository or self._settings.pr_repo,
            clusters=body.clusters,
            objects=body.objects,
        )

    def _queue_check(self, gate: Gate) -> None:
        message = OutgoingMessage(
            body=f'{{"kind":"gate-check","env":"{gate.environment}","gate":"{gate.id}"}}'.encode(),
            message_id=f"gate-check/{gate.id}/{int(gate.created_at.timestamp())}",
            session_id=f"gate/{gate.id}",
            application_properties={"kind": "gate-check", "env": gate.environment},
            scheduled_at=datetime.now(UTC) + CHECK_DELAY,
        )
        try:
            self._sender.send(message)
        except QueueUnavailableError:
            # Stored all the same: the next deployment event or the sweep evaluates it.
            logger.warning("gate.check_not_queued", extra={"gate": gate.id})


def _parse(body: bytes) -> GateRequest | Reply:
    try:
        request = GateRequest.model_validate_json(body or b"{}")
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(e["type"] == "json_invalid" for e in errors):
            return Reply(400, {"error": "body is not valid JSON"})
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "problem": e["msg"]}
            for e in errors
        ]
        names = ", ".join(f["field"] for f in fields)
        return Reply(400, {"error": f"invalid gate request: {names}", "fields": fields})
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
