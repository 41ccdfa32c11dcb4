"""What `send-sample` does around the rollout: register a gate first (`--gate`, as the
agentless task would), then follow the commit in `GET /api/deployments/{commit}` until the
state is recorded, the statuses are (or in trial mode would be) posted, and the gate completed.

The gate registration carries the callback headers the agentless task sends (`PlanUrl`,
`ProjectId`, `HubName`, `PlanId`, `JobId`, `TimelineId`, `TaskInstanceId`: Learn, "Invoke REST
API task", callback mode; connector/gates/registration.py REQUIRED_HEADERS), with `PlanUrl` in
the configured organisation; in trial mode its TaskCompleted is logged, not sent.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from typing import Any

FOLLOW_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.5

View = dict[str, Any]


def api_base(flux_url: str) -> str:
    """`http://h:7071/api/flux` → `http://h:7071/api` (the routes live beside the webhook)."""
    return flux_url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[0]


def _call(
    url: str, key: str | None, body: bytes | None = None, extra: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **(extra or {})}
    if key:
        headers["x-functions-key"] = key
    method = "POST" if body is not None else "GET"
    request = urllib.request.Request(url, body, headers, method=method)  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            status, text = int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        return 0, {"error": f"no answer: {getattr(exc, 'reason', exc)}"}
    try:
        return status, json.loads(text) if text else {}
    except ValueError:
        return status, {"error": text.decode("utf-8", "replace")[:200]}


def register_gate(
    base: str, key: str | None, org_url: str, env: str, commit: str
) -> tuple[int, Any]:
    plan = {
        "PlanUrl": org_url.rstrip("/") + "/",
        "ProjectId": str(uuid.uuid4()),
        "HubName": "build",
        "PlanId": str(uuid.uuid4()),
        "JobId": str(uuid.uuid4()),
        "TimelineId": str(uuid.uuid4()),
        "TaskInstanceId": str(uuid.uuid4()),
    }
    body = json.dumps({"environment": env, "commit": commit}).encode()
    return _call(f"{base}/gates", key, body, plan)


def follow(
    base: str,
    key: str | None,
    commit: str,
    done: Callable[[View], bool],
    timeout: float = FOLLOW_TIMEOUT_SECONDS,
) -> tuple[int, Any]:
    """Poll the deployments view until `done(view)`, or the timeout: the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        status, view = _call(f"{base}/deployments/{commit}", key)
        if status == 200 and done(view):
            return status, view
        if time.monotonic() >= deadline or status not in (200, 404):
            return status, view
        time.sleep(POLL_SECONDS)


def settled(view: View, phase: str, gated: bool) -> bool:
    """The rollout's last event recorded (every object at its end phase, every status
    written) and, with a gate, the gate completed; in trial mode a gate stays waiting (so that
    real mode on the same storage completes it) and records what it would have done."""
    objects = [
        o
        for e in view.get("environments", {}).values()
        for c in e["clusters"].values()
        for o in c["objects"].values()
    ]
    recorded = bool(objects) and all(o.get("phase") == phase for o in objects)
    statuses = view.get("statuses", {}).values()
    posted = bool(statuses) and all(s.get("state") != "pending" for s in statuses)
    gates_done = all(g.get("state") == "completed" or g.get("trial") for g in view.get("gates", []))
    return recorded and posted and (gates_done or not gated)


def describe(view: View) -> list[str]:
    lines = []
    for env, environment in view.get("environments", {}).items():
        lines.append(f"  state: environment {env} {environment['phase']}")
        for cluster, detail in environment["clusters"].items():
            for name, obj in detail["objects"].items():
                reason = obj.get("reason") or ""
                lines.append(f"    {cluster}/{name}: {obj['phase']} {reason}".rstrip())
    for context, status in view.get("statuses", {}).items():
        lines.append(f"  status {context}: {status['state']} {status['description']!r}")
    lines += [f"  gate {g['environment']}: {_gate_text(g)}" for g in view.get("gates", [])]
    return lines


def _gate_text(gate: Mapping[str, Any]) -> str:
    if gate.get("trial") and gate.get("state") != "completed":
        return f"{gate['state']}, trial mode {gate['trial']} (TaskCompleted logged, not sent)"
    result = f" {gate['result']}" if gate.get("result") else ""
    reason = f" ({gate['reason']})" if gate.get("reason") else ""
    return f"{gate['state']}{result}{reason}"
