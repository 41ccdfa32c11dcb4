"""Property-based: whatever reaches /api/gates and /api/devops/events, the answer is a JSON 2xx/4xx
naming the problem, never a 5xx or an exception."""

from __future__ import annotations

import base64
import json

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app
from connector.gates.store import GateStore, entity
from connector.storage.rows import entity_problems
from tests.strategies import ORIGIN, STRETCHED_PART, junk_bodies

pytestmark = pytest.mark.azurite

HEADER_NAMES = [
    "PlanUrl",
    "ProjectId",
    "HubName",
    "PlanId",
    "JobId",
    "TimelineId",
    "TaskInstanceId",
    "AuthToken",
    "Authorization",
]
SHA = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40)
OBJECT_REFERENCE = st.builds(
    lambda k, n, m: f"{k}/{n}/{m}", STRETCHED_PART, STRETCHED_PART, STRETCHED_PART
)


def gate_bodies() -> st.SearchStrategy[bytes]:
    fields = st.fixed_dictionaries(
        {},
        optional={
            "environment": st.one_of(st.text(max_size=70), st.integers(), st.none()),
            "commit": st.one_of(SHA, st.text(max_size=45)),
            "pullRequestId": st.one_of(st.integers(-5, 10**12), st.text(max_size=5)),
            "clusters": st.one_of(
                st.lists(st.text(max_size=10), max_size=3),
                st.lists(ORIGIN, max_size=120),
            ),
            "objects": st.one_of(
                st.lists(st.text(max_size=30), max_size=3),
                st.lists(OBJECT_REFERENCE, max_size=3),
                st.integers(1, 600).map(
                    lambda n: [f"Kustomization/ns/{'a' * 150}-{i}" for i in range(n)]
                ),
            ),
            "timeoutMinutes": st.integers(-10, 10**6),
            "timeoutInMinutes": st.integers(-10, 10**6),
            "repository": st.one_of(st.text(max_size=70), st.sampled_from([".", "..", "_x"])),
            "unknownField": st.integers(),
        },
    )
    return st.one_of(junk_bodies(), fields.map(lambda d: json.dumps(d).encode()))


def header_sets(org_url: str) -> st.SearchStrategy[dict[str, str]]:
    value = st.one_of(st.just(org_url), st.text(max_size=60), st.just("https://evil.example/"))
    return st.dictionaries(st.sampled_from(HEADER_NAMES), value, max_size=len(HEADER_NAMES))


def assert_clean(resp: func.HttpResponse) -> dict:
    assert resp.status_code < 500, resp.get_body()
    payload = json.loads(resp.get_body())
    assert isinstance(payload, dict)
    if resp.status_code >= 400:
        assert payload["error"]
    return payload


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_gate_registration_never_fails_with_a_5xx(world, data):
    headers = data.draw(header_sets(world.azdo.org_url))
    body = data.draw(gate_bodies())
    method = data.draw(st.sampled_from(["POST", "POST", "GET"]))
    req = func.HttpRequest(method=method, url="/api/gates", headers=headers, body=body)
    duplicates = world.sender.dropped_duplicates
    resp = function_app.gates(req)
    assert_clean(resp)
    # A 200 means a gate the Table can hold, and its check queued; anything else stores nothing.
    stored = GateStore(world.store).all_gates()
    if resp.status_code == 200:
        assert all(entity_problems(entity(g)) == [] for g in stored)
        # (the same plan and job within a second is the same check: Service Bus drops the copy)
        assert world.sender.drain() or world.sender.dropped_duplicates > duplicates
    else:
        assert world.sender.drain() == []
    for gate in stored:
        world.store.table("gates").delete_entity(gate.environment, gate.id)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.one_of(
        junk_bodies(),
        st.fixed_dictionaries(
            {"eventType": st.sampled_from(["git.pullrequest.updated", "build.complete", ""])},
            optional={
                "resource": st.one_of(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "pullRequestId": st.one_of(st.integers(), st.text(max_size=4)),
                            "status": st.sampled_from(["abandoned", "active", "completed"]),
                            "repository": st.one_of(
                                st.text(max_size=5),
                                st.fixed_dictionaries({"id": st.text(max_size=5)}),
                            ),
                        },
                    ),
                    st.text(max_size=5),
                )
            },
        ).map(lambda d: json.dumps(d).encode()),
    ),
    password=st.one_of(st.just("hook-secret"), st.text(max_size=20)),
    scheme=st.sampled_from(["Basic", "Bearer", ""]),
)
def test_service_hook_never_fails_with_a_5xx(world, body, password, scheme):
    world.configure(AZDO_HOOK_SECRET="hook-secret")
    token = base64.b64encode(f"user:{password}".encode()).decode()
    req = func.HttpRequest(
        method="POST",
        url="/api/devops/events",
        headers={"Authorization": f"{scheme} {token}"},
        body=body,
    )
    payload = assert_clean(function_app.devops_events(req))
    if password != "hook-secret" or scheme != "Basic":
        assert "unauthorized" in payload.get("error", "")
