"""Keyless pipelines wired into the app: with `PIPELINE_CLIENT_ID` set, `/api/gates` and
`/api/deployments/{commit}` admit only the service connection App Service Authentication let
through; unset, they behave as before (the host checked the function key).

Requests are real `azure.functions.HttpRequest` objects sent to `function_app`; state in Azurite,
Azure DevOps on the loopback fake (the `world` fixture). `WEBSITE_AUTH_ENABLED` is what App
Service injects when its authentication is on (connector/app/functions/easyauth.py names the
source).
"""

from __future__ import annotations

import json

import azure.functions as func
import pytest

import function_app
from connector.app.functions import entrypoints
from connector.gates.store import GateStore
from tests.integration.test_gates import A, plan
from tests.unit.test_easy_auth import CONNECTION, OTHER, principal
from tests.world import REPO

pytestmark = pytest.mark.azurite


@pytest.fixture
def keyless(world, monkeypatch: pytest.MonkeyPatch):
    """The app as deployed with pipelineClientId: the setting, and the platform's flag."""
    world.azdo.add_commit(REPO, A, "Merged PR 41: first change")
    world.configure(PIPELINE_CLIENT_ID=CONNECTION)
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    return world


def register(headers: dict[str, str]) -> tuple[int, dict]:
    body = json.dumps({"environment": "dev", "commit": A}).encode()
    req = func.HttpRequest(method="POST", url="/api/gates", headers=headers, body=body)
    resp = function_app.gates(req)
    return resp.status_code, json.loads(resp.get_body())


def view(headers: dict[str, str]) -> tuple[int, dict]:
    req = func.HttpRequest(
        method="GET",
        url=f"http://localhost:7071/api/deployments/{A}",
        headers=headers,
        route_params={"commit": A},
        body=b"",
    )
    resp = function_app.deployments(req)
    return resp.status_code, json.loads(resp.get_body())


def test_the_service_connection_registers_a_gate(keyless) -> None:
    headers = {**plan(keyless), "X-MS-CLIENT-PRINCIPAL": principal(appid=CONNECTION)}

    status, reply = register(headers)

    assert (status, reply["state"]) == (200, "waiting")
    assert len(GateStore(keyless.store).all_gates()) == 1


@pytest.mark.parametrize(
    ("caller", "why"),
    [
        ({}, "missing X-MS-CLIENT-PRINCIPAL"),
        ({"X-MS-CLIENT-PRINCIPAL": principal(appid=OTHER)}, "not the pipeline's service"),
        ({"X-MS-CLIENT-PRINCIPAL": "forged"}, "not base64-encoded JSON"),
    ],
)
def test_any_other_caller_gets_401_and_nothing_is_stored(keyless, caller, why) -> None:
    status, reply = register({**plan(keyless), **caller})

    assert status == 401
    assert why in reply["error"]
    assert GateStore(keyless.store).all_gates() == []
    assert keyless.sender.drain() == []


def test_the_job_token_never_appears_in_a_refusal(keyless) -> None:
    headers = plan(keyless)
    status, reply = register({**headers, "X-MS-CLIENT-PRINCIPAL": principal(appid=OTHER)})

    assert status == 401
    assert headers["AuthToken"] not in json.dumps(reply)


def test_without_the_platform_even_a_valid_principal_is_refused(keyless, monkeypatch) -> None:
    # Nothing strips a forged header when App Service Authentication is off: fail closed.
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED")
    headers = {**plan(keyless), "X-MS-CLIENT-PRINCIPAL": principal(appid=CONNECTION)}

    status, reply = register(headers)

    assert status == 401
    assert "App Service Authentication is off" in reply["error"]
    assert GateStore(keyless.store).all_gates() == []


def test_the_deployments_view_admits_only_the_service_connection(keyless) -> None:
    pipeline = {"X-MS-CLIENT-PRINCIPAL": principal(azp=CONNECTION)}
    assert register({**plan(keyless), **pipeline})[0] == 200  # a gate: the commit is known

    allowed, body = view(pipeline)
    refused, error = view({})

    assert allowed == 200
    assert body["commit"] == A
    assert refused == 401
    assert "missing X-MS-CLIENT-PRINCIPAL" in error["error"]


def test_without_the_setting_function_keys_work_as_before(world, monkeypatch) -> None:
    # No principal at all: the host already checked the function key.
    world.azdo.add_commit(REPO, A, "Merged PR 41: first change")
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)

    status, reply = register(plan(world))
    shown, body = view({})

    assert (status, reply["state"]) == (200, "waiting")
    assert (shown, body["commit"]) == (200, A)


@pytest.mark.parametrize(
    ("environ", "level"),
    [
        ({}, func.AuthLevel.FUNCTION),
        ({"PIPELINE_CLIENT_ID": ""}, func.AuthLevel.FUNCTION),
        ({"PIPELINE_CLIENT_ID": " "}, func.AuthLevel.FUNCTION),
        ({"PIPELINE_CLIENT_ID": CONNECTION}, func.AuthLevel.ANONYMOUS),
    ],
)
def test_the_host_asks_for_a_key_unless_pipelines_are_keyless(environ, level) -> None:
    assert entrypoints.pipeline_auth_level(environ) is level
