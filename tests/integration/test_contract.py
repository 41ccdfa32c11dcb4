"""The Azure DevOps contract: our api-version table, its documentation, and the checker that
every request to the loopback Azure DevOps passes (tests/contract/checker.py)."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from connector.core.gates import PlanRef
from connector.devops.routes import API_VERSIONS, Routes
from connector.devops.types import CommitStatus
from tests.contract.checker import (
    SPEC_PATH,
    allowed_versions,
    check_request,
    load_spec,
    table_version,
)
from tests.fakes.azdo_server import FakeAzureDevOps

DOC = Path(__file__).parents[2] / "docs" / "azure-devops.md"
ORG = "https://dev.azure.com/fabrikam/"
PLAN = PlanRef(
    plan_url=ORG,
    project_id=str(uuid.uuid4()),
    hub_name="build",
    plan_id=str(uuid.uuid4()),
    job_id=str(uuid.uuid4()),
    timeline_id=str(uuid.uuid4()),
    task_instance_id=str(uuid.uuid4()),
)
STATUS = CommitStatus(state="pending", description="deploying", genre="flux", name="dev")
SHA = "a" * 40


def every_call() -> list:
    """One call of each kind the client builds, as it would send it."""
    routes = Routes(ORG, "fabrikam-project", "7.1")
    return [
        routes.commit_status("manifests", SHA, STATUS),
        routes.pull_request_status("manifests", 42, STATUS),
        routes.commit("manifests", SHA),
        routes.item("manifests", "/hydrator.metadata", SHA),
        routes.commits("manifests", 5),
        routes.commit_statuses("manifests", SHA, 1),
        routes.merge_bases("manifests", SHA, "b" * 40),
        routes.merge_commit_query("manifests", SHA),
        routes.pull_request(42),
        routes.abandoned_pull_requests("manifests", datetime.now(UTC), 0),
        routes.pull_request_properties("manifests", 42),
        routes.task_completed(PLAN, "succeeded"),
        routes.feed(PLAN, ["line"]),
        routes.create_log(PLAN),
        routes.append_log(PLAN, 3, ["line"]),
        routes.attach_log(PLAN, 3),
        routes.plan(PLAN),
        routes.timeline_records(PLAN),
    ]


def check_call(call, *, version: str | None = None, body: bytes | None = None) -> list[str]:
    parts = urlsplit(call.full_url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if version is not None:
        query["api-version"] = version
    if body is None:
        body = call.body if isinstance(call.body, bytes) else json.dumps(call.body).encode()
        body = b"" if call.body is None else body
    return check_request(call.method, parts.path, query, body, call.content_type)


def test_the_vendored_spec_keeps_its_source():
    data = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    assert data["source"]["repository"] == "https://github.com/MicrosoftDocs/vsts-rest-api-specs"
    assert re.fullmatch(r"[0-9a-f]{40}", data["source"]["commit"])
    assert "MIT" in (SPEC_PATH.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("operation", sorted(API_VERSIONS))
def test_every_table_entry_is_a_spec_or_undocumented_operation_and_its_version_passes(operation):
    # An undocumented operation counts only through this table; a spec citation must hold.
    [found] = [op for op in load_spec().operations if op.operation_id == operation]
    version, source = table_version(operation)
    assert version in allowed_versions(found)
    if source.startswith("REST spec"):
        assert found.documented_versions is not None
        assert version in found.documented_versions


def test_every_call_the_client_builds_keeps_the_contract():
    calls = every_call()
    assert {call.operation for call in calls} == set(API_VERSIONS)
    for call in calls:
        assert check_call(call) == [], call.describe()


@pytest.mark.parametrize(
    ("operation", "version"),
    [
        ("Plans_Get", "7.1"),  # released version above the resource's: the 400
        ("Feed_Append Timeline Record Feed", "6.0"),  # what the connector used to send
        ("Statuses_Create", "7.2"),  # only 7.2-preview.2 is documented
        ("Logs_Create", "4.1"),  # the spec documents 7.1 and 7.2-preview.1 only
        ("Events_Post Event", "7.0"),
    ],
)
def test_the_checker_fails_on_an_undocumented_version(operation, version):
    [call] = [call for call in every_call() if call.operation == operation]
    [problem] = check_call(call, version=version)
    assert "api-version" in problem
    assert operation in problem


def test_the_checker_fails_on_a_wrong_body_field_type():
    [call] = [c for c in every_call() if c.operation == "Statuses_Create"]
    bad_state = {**call.body, "state": "deploying"}
    bad_context = {**call.body, "context": "flux/dev"}
    [enum] = check_call(call, body=json.dumps(bad_state).encode())
    [kind] = check_call(call, body=json.dumps(bad_context).encode())
    assert "body.state" in enum
    assert "'deploying'" in enum
    assert "body.context" in kind
    assert "object" in kind
    [event] = [c for c in every_call() if c.operation == "Events_Post Event"]
    [job] = check_call(event, body=json.dumps({**event.body, "jobId": "job-1"}).encode())
    assert "body.jobId" in job
    assert "UUID" in job


def test_the_checker_fails_on_an_unknown_route_and_a_wrong_method():
    [unknown] = check_request("GET", "/fabrikam/p/_apis/git/repositories/r/blobs", {}, b"", "")
    [method] = check_request(
        "DELETE", "/fabrikam/p/_apis/git/repositories/r/commits/" + SHA, {}, b"", ""
    )
    assert "no operation" in unknown
    assert "no operation" in method


def test_the_checker_fails_on_parameters_and_bodies_out_of_contract():
    plan_id = PLAN.plan_id
    [plan] = [c for c in every_call() if c.operation == "Plans_Get"]
    not_uuid = check_call(replace(plan, url=plan.url.replace(plan_id, "p1")))
    assert any("planId" in p and "UUID" in p for p in not_uuid)
    [bases] = [c for c in every_call() if c.operation == "Merge Bases_List"]
    missing = check_call(replace(bases, params={}))
    assert any("otherCommitId" in p and "missing" in p for p in missing)
    typo = check_call(replace(bases, params={"otherCommit": SHA}))
    assert any("'otherCommit'" in p and "not declared" in p for p in typo)
    [append] = [c for c in every_call() if c.operation == "Logs_Append Log Content"]
    as_json = check_call(replace(append, content_type="application/json"))
    assert any("content type" in p for p in as_json)
    [get] = [c for c in every_call() if c.operation == "Commits_Get"]
    assert any("takes no body" in p for p in check_call(get, body=b"{}"))


def test_an_undocumented_operation_needs_an_entry_in_our_table():
    # Logs_Get is in the subset's undocumented block, but the connector does not list it.
    plan = PLAN
    path = (
        f"/fabrikam/{plan.project_id}/_apis/distributedtask/hubs/build/plans/{plan.plan_id}/logs/1"
    )
    [problem] = check_request("GET", path, {"api-version": "4.1"}, b"", "")
    assert "no operation" in problem


def test_the_fake_records_violations_and_refuses_a_released_version_above_the_resources():
    with FakeAzureDevOps(pat="p") as fake:
        plan_id = str(uuid.uuid4())
        fake.add_plan(plan_id, timeline_id=str(uuid.uuid4()))
        token = base64.b64encode(b":p").decode()
        url = f"{fake.org_url}{PLAN.project_id}/_apis/distributedtask/hubs/build/plans/{plan_id}"

        def get(version: str) -> tuple[int, dict]:
            req = urllib.request.Request(  # noqa: S310 - loopback
                f"{url}?api-version={version}",
                headers={"Authorization": f"Basic {token}", "X-TFS-FedAuthRedirect": "Suppress"},
            )
            try:
                with urllib.request.urlopen(req) as resp:  # noqa: S310 - loopback
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read())

        status, body = get("7.1")
        assert (status, body["typeKey"]) == (400, "VssInvalidPreviewVersionException")
        assert get("4.1")[0] == 200
        assert get("7.1-preview.1")[0] == 200
        assert len(fake.contract_violations) == 2  # 7.1 and 7.1-preview.1 are not in our table
        assert all("api-version" in v for v in fake.contract_violations)


def _doc_rows() -> list[list[str]]:
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 5 and cells[0] not in {"Operation", "---"}:
            rows.append(cells)
    return rows


def test_the_documented_table_equals_the_code_table():
    spec = {op.operation_id: op for op in load_spec().operations if op.operation_id in API_VERSIONS}
    expected = []
    for operation, entry in API_VERSIONS.items():
        version, source = table_version(operation)
        shown = "`AZDO_API_VERSION` (7.1)" if entry is None else f"`{version}`"
        op = spec[operation]
        expected.append([operation, op.method, f"`{op.path}`", shown, source])
    assert _doc_rows() == expected


def test_the_readme_links_the_table():
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "docs/azure-devops.md" in readme
