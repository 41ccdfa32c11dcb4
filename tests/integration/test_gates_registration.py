"""POST /api/gates at the edge: strict validation (400 naming the field), records over the Table
limits (413), unknown fields, the `timeoutInMinutes` alias, and 503 + Retry-After when the state
store or the queue cannot be reached. Nothing is stored or queued for a refused registration."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

import function_app
from connector.gates.registration import MAX_CLUSTERS, MAX_OBJECTS
from connector.gates.store import GateStore
from tests.integration.test_gates import A, plan

pytestmark = pytest.mark.azurite

LONG_OBJECT = "Kustomization/" + "n" * 200 + "/" + "a" * 200


def post(headers: dict[str, str], body: bytes | dict) -> func.HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = func.HttpRequest(method="POST", url="/api/gates", headers=headers, body=raw)
    return function_app.gates(req)


def answer(resp: func.HttpResponse) -> tuple[int, dict]:
    return resp.status_code, json.loads(resp.get_body())


def fields(reply: dict) -> list[str]:
    return [f["field"] for f in reply.get("fields", [])]


def assert_nothing_kept(world) -> None:
    assert GateStore(world.store).all_gates() == []
    assert world.sender.drain() == []


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"objects": ["not-an-object"]}, "objects.0"),
        ({"objects": ["Kustomization/flux-system"]}, "objects.0"),
        ({"objects": ["Kustomization/flux-system/apps/extra"]}, "objects.0"),
        ({"objects": ["Kustomization//apps"]}, "objects.0"),
        ({"objects": ["Kustomization/flux-system/" + "a" * 254]}, "objects.0"),
        ({"objects": ["Kustomization/flux\x07system/apps"]}, "objects.0"),
        ({"objects": [f"Kustomization/ns/{'a' * 80}-{i}" for i in range(2_000)]}, "objects"),
        ({"repository": ".."}, "repository"),
        ({"repository": "."}, "repository"),
        ({"repository": ""}, "repository"),
        ({"repository": "_hidden"}, "repository"),
        ({"repository": "trailing."}, "repository"),
        ({"repository": "a/b"}, "repository"),
        ({"repository": "a:b"}, "repository"),
        ({"repository": "bell\x07"}, "repository"),
        ({"repository": "r" * 65}, "repository"),
        ({"clusters": [f"c{i}" for i in range(5_000)]}, "clusters"),
        ({"clusters": ["prod/eu"]}, "clusters.0"),
        ({"clusters": [""]}, "clusters.0"),
        ({"clusters": ["c" * 64]}, "clusters.0"),
        ({"clusters": [7]}, "clusters.0"),
        ({"environment": "prod eu"}, "environment"),
        ({"environment": "e" * 64}, "environment"),
        ({"pullRequestId": 2**31}, "pullRequestId"),
        ({"timeoutInMinutes": 0}, "timeoutInMinutes"),
        ({"timeoutMinutes": 72 * 60 + 1}, "timeoutMinutes"),
    ],
)
def test_invalid_fields_are_400_naming_the_field_and_nothing_is_stored(world, extra, field):
    # GIVEN a registration with one bad field (the issue's examples among them)
    body = {"environment": "dev", "commit": A, **extra}
    # WHEN it is posted
    status, reply = answer(post(plan(world), body))
    # THEN it is refused, the field is named, and no gate or check exists
    assert status == 400, reply
    assert field in fields(reply)
    assert field.split(".")[0] in reply["error"]
    assert_nothing_kept(world)


@pytest.mark.parametrize(
    "extra",
    [
        {"objects": ["not-an-object"]},
        {"repository": ".."},
        {"clusters": [f"cluster-{i}" for i in range(5_000)]},
        {"objects": [LONG_OBJECT] * 2_000},
    ],
    ids=["not-an-object", "dot-dot-repository", "5000-clusters", "2000-long-objects"],
)
def test_the_issues_bad_registrations_each_get_a_4xx_and_nothing_is_stored(world, extra):
    resp = post(plan(world), {"environment": "dev", "commit": A, **extra})
    assert 400 <= resp.status_code < 500
    assert json.loads(resp.get_body())["error"]
    assert_nothing_kept(world)


@pytest.mark.parametrize(
    "repository",
    ["manifests", "my.repo-2_x", "5f3c1a2b-0d4e-4f6a-9b8c-7d6e5f4a3b2c", "r" * 64, "Ünïcode"],
)
def test_valid_repository_names_are_accepted(world, repository):
    world.configure(AZDO_PR_REPO=repository)  # a gate's repository must be a configured one
    status, reply = answer(
        post(plan(world), {"environment": "dev", "pullRequestId": 7, "repository": repository})
    )
    assert status == 200, reply
    [gate] = GateStore(world.store).all_gates()
    assert gate.repository == repository


def test_the_largest_allowed_lists_are_accepted(world):
    clusters = [f"cluster-{i}" for i in range(MAX_CLUSTERS)]
    objects = [f"Kustomization/ns/app-{i}" for i in range(MAX_OBJECTS)]
    body = {"environment": "dev", "commit": A, "clusters": clusters, "objects": objects}
    status, reply = answer(post(plan(world), body))
    assert status == 200, reply
    [gate] = GateStore(world.store).all_gates()
    assert list(gate.clusters) == clusters
    assert list(gate.objects) == objects


def test_one_more_cluster_or_object_is_refused(world):
    too_many = {
        "clusters": [f"c{i}" for i in range(MAX_CLUSTERS + 1)],
        "objects": [f"Kustomization/ns/app-{i}" for i in range(MAX_OBJECTS + 1)],
    }
    status, reply = answer(post(plan(world), {"environment": "dev", "commit": A, **too_many}))
    assert status == 400
    assert set(fields(reply)) == {"clusters", "objects"}
    assert_nothing_kept(world)


def test_a_gate_record_over_the_table_property_limit_is_413_naming_the_field(world):
    # GIVEN valid object references whose JSON list exceeds 32K UTF-16 characters (64 KiB)
    objects = [f"Kustomization/ns-{i}/" + "a" * 200 for i in range(MAX_OBJECTS // 2)]
    assert len(json.dumps(objects)) > 32 * 1024
    # WHEN registered
    status, reply = answer(
        post(plan(world), {"environment": "dev", "commit": A, "objects": objects})
    )
    # THEN 413 names the field, and nothing reached the store or the queue
    assert status == 413, reply
    assert fields(reply) == ["objects"]
    assert "objects" in reply["error"]
    assert_nothing_kept(world)


def test_an_oversized_header_is_413_naming_it(world):
    world.configure(GATE_USE_JOB_TOKEN="true")
    headers = {**plan(world), "AuthToken": "t" * (40 * 1024)}
    status, reply = answer(post(headers, {"environment": "dev", "commit": A}))
    assert status == 413
    assert fields(reply) == ["AuthToken header"]
    assert "t" * 100 not in json.dumps(reply)  # the token is never echoed
    assert_nothing_kept(world)


def test_an_oversized_body_is_413_before_parsing(world):
    body = b'{"environment":"dev","commit":"' + b"a" * (300 * 1024) + b'"}'
    status, reply = answer(post(plan(world), body))
    assert status == 413
    assert "body" in reply["error"]
    assert_nothing_kept(world)


def test_unknown_fields_are_400_naming_each(world):
    body = {"environment": "dev", "commit": A, "timeout": 5, "cluster": "dev-1"}
    status, reply = answer(post(plan(world), body))
    assert status == 400
    assert set(fields(reply)) == {"timeout", "cluster"}
    assert "unknown" in reply["error"]
    assert "timeout" in reply["error"]
    assert "cluster" in reply["error"]
    assert "timeoutInMinutes" in reply["error"]  # the allowed names are listed
    assert_nothing_kept(world)


@pytest.mark.parametrize("name", ["timeoutInMinutes", "timeoutMinutes"])
def test_timeout_in_minutes_is_an_alias_of_timeout_minutes(world, name):
    before = datetime.now(UTC)
    status, reply = answer(post(plan(world), {"environment": "dev", "commit": A, name: 7}))
    assert status == 200, reply
    [gate] = GateStore(world.store).all_gates()
    assert before + timedelta(minutes=7) <= gate.deadline
    assert gate.deadline <= datetime.now(UTC) + timedelta(minutes=7)


# --- unreachable dependencies ---------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def break_storage(world):
    """Point the app's state store at a closed port (no retries, so the test stays quick)."""
    from azure.data.tables import TableServiceClient

    from connector.storage.tables import TableStore
    from tests.azurite import connection_string

    endpoint = f"http://127.0.0.1:{closed_port()}/devstoreaccount1"
    service = TableServiceClient.from_connection_string(
        connection_string(endpoint), retry_total=0, connection_timeout=2
    )
    world.container.__dict__["store"] = TableStore(service, prefix="down")
    world.container.__dict__.pop("gatekeeper", None)
    return world


def test_registration_with_storage_unreachable_is_503_with_retry_after(world):
    break_storage(world)
    resp = post(plan(world), {"environment": "dev", "commit": A})
    status, reply = answer(resp)
    assert status == 503
    assert int(resp.headers["Retry-After"]) > 0
    assert "state store" in reply["error"]
    assert world.sender.drain() == []


def test_registration_with_the_queue_unreachable_is_503_then_the_retry_succeeds(world):
    headers = plan(world)
    world.sender.fail_next = 1
    resp = post(headers, {"environment": "dev", "commit": A})
    status, reply = answer(resp)
    assert status == 503
    assert int(resp.headers["Retry-After"]) > 0
    assert "queue" in reply["error"]
    assert world.sender.drain() == []
    # The task's retry registers the same gate and queues its check.
    status, again = answer(post(headers, {"environment": "dev", "commit": A}))
    assert status == 200
    assert again["gate"] == reply["gate"]
    [check] = world.sender.drain()
    assert again["gate"] in check.message_id
    assert len(GateStore(world.store).all_gates()) == 1


def test_service_hook_with_storage_unreachable_is_503_with_retry_after(world):
    import base64

    world.configure(AZDO_HOOK_SECRET="hook-secret")
    break_storage(world)
    token = base64.b64encode(b"u:hook-secret").decode()
    event = {
        "eventType": "git.pullrequest.updated",
        "resource": {"pullRequestId": 41, "status": "abandoned", "repository": {"id": "r"}},
    }
    req = func.HttpRequest(
        method="POST",
        url="/api/devops/events",
        headers={"Authorization": f"Basic {token}"},
        body=json.dumps(event).encode(),
    )
    resp = function_app.devops_events(req)
    assert resp.status_code == 503, resp.get_body()
    assert int(resp.headers["Retry-After"]) > 0
    assert "unavailable" in json.loads(resp.get_body())["error"]
