"""What an operator sees of gates and statuses: the deployments view and the CLI, on a World's
storage (shared by the gate outage, trial mode and hardening tests)."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

import function_app
from connector.app.cli.main import main
from connector.app.root import bootstrap
from connector.app.root.bootstrap import Container


def deployments_view(world, commit: str) -> dict:
    req = func.HttpRequest(
        method="GET",
        url=f"http://localhost:7071/api/deployments/{commit}",
        headers={},
        params={},
        route_params={"commit": commit},
        body=b"",
    )
    bootstrap.override(world.container)
    resp = function_app.deployments(req)
    assert resp.status_code == 200, resp.get_body()
    return json.loads(resp.get_body())


def cli_json(world, capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    settings = world.container.settings
    code = main(
        [*argv, "--json"],
        environ={"SERVICEBUS_QUEUE": "flux-events"},
        make_container=lambda _: Container(settings, store=world.store),
    )
    out, _ = capsys.readouterr()
    assert code == 0, out
    return json.loads(out)


def cli_gates(world, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    data = cli_json(world, capsys, "gates")
    return data["waiting"] + data["completed"]
