"""A job's gate is bound to what it was first registered with (docs/security.md).

Whoever may call `/api/gates` could otherwise register a waiting prod job again under an
environment that is already healthy, or move its PR status to another PR. The first registration
of a (plan, job, task) is kept in the gate store's facts; the same request again is idempotent (a
task's retry), a different one is refused with 409. A PR-property callback binds the job only to
its environment, which a registration may then refine but not change.
"""

from __future__ import annotations

from typing import Any

from connector.core.gates import Gate
from connector.gates.store import GateStore

REGISTERED = "registered"
PR_PROPERTY = "pr-property"


def parts_of(gate: Gate) -> tuple[str, str, str]:
    plan = gate.plan
    return plan.plan_id.lower(), plan.job_id.lower(), plan.task_instance_id.lower()


def binding_of(gate: Gate, timeout_minutes: int | None) -> dict[str, Any]:
    """What a registration binds its job to: every field that decides what releases it."""
    return {
        "source": REGISTERED,
        "environment": gate.environment,
        "commit": gate.commit,
        "pullRequestId": gate.pull_request_id,
        "repository": gate.repository,
        "clusters": list(gate.clusters),
        "objects": list(gate.objects),
        "timeoutMinutes": timeout_minutes,
    }


def conflicts(gates: GateStore, gate: Gate, timeout_minutes: int | None) -> list[str]:
    """The fields in which this registration differs from its job's binding (none: bound now,
    or the same request again)."""
    wanted = binding_of(gate, timeout_minutes)
    stored = gates.bind(parts_of(gate), wanted)
    if stored == wanted:
        return []
    if stored.get("source") == PR_PROPERTY and stored.get("environment") == gate.environment:
        gates.rebind(parts_of(gate), wanted)  # the callback's job, now registered in full
        return []
    return [
        name for name, value in wanted.items() if name != "source" and stored.get(name) != value
    ]


def bound_elsewhere(gates: GateStore, gate: Gate) -> str | None:
    """For a PR-property callback: the environment its job is bound to when that is another one
    (the callback is then ignored), else None (bound to the callback's environment now)."""
    stored = gates.bind(parts_of(gate), {"source": PR_PROPERTY, "environment": gate.environment})
    environment = stored.get("environment")
    return None if environment == gate.environment else str(environment)
