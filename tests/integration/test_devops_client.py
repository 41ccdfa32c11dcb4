"""The Azure DevOps client against a loopback fake that speaks the real routes."""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, cast

import pytest
from azure.core.credentials import AccessToken

from connector.core.gates import PlanRef
from connector.devops.client import (
    AzureDevOpsClient,
    Commit,
    CommitStatus,
    ForeignOrganizationError,
    NotSentError,
    PermanentAzureDevOpsError,
    PipelineCallbacks,
    PlanState,
    PullRequest,
    RepositoryReader,
    StatusWriter,
    TransientAzureDevOpsError,
    same_organization,
)
from connector.devops.policies import ORG_SCOPE
from connector.devops.trial import TrialAzureDevOps
from tests.conftest import assert_contract_kept
from tests.fakes.azdo_server import COMPLETED_DATE, FakeAzureDevOps

PAT = "pat-0123456789abcdef"
BEARER = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fake-token"
REPO = "gitops repo"  # a space, so paths must be quoted
REPO_ID = "0a1b2c3d-0000-4000-8000-000000000001"

C1 = "1" * 40
C2 = "2" * 40
C3 = "3" * 40
SIDE = "5" * 40  # on a branch from C1, not an ancestor of C3
MERGE = "9" * 40

PLAN_ID = "4b6c9d1e-0000-4000-8000-00000000000a"
JOB_ID = "4b6c9d1e-0000-4000-8000-00000000000b"
TIMELINE_ID = "4b6c9d1e-0000-4000-8000-00000000000c"
TASK_ID = "4b6c9d1e-0000-4000-8000-00000000000d"
PROJECT_ID = "4b6c9d1e-0000-4000-8000-00000000000e"

STATUS = CommitStatus(
    state="succeeded",
    description="production/aks-prod-weu-01: reconciliation succeeded",
    genre="gitops-connector",
    name="flux/production",
    target_url="https://portal.example/deployments/c8925188",
)
STATUS_BODY = {
    "state": "succeeded",
    "description": "production/aks-prod-weu-01: reconciliation succeeded",
    "context": {"genre": "gitops-connector", "name": "flux/production"},
    "targetUrl": "https://portal.example/deployments/c8925188",
}


class FakeCredential:
    """A TokenCredential that hands out one fixed token and remembers what it was asked."""

    def __init__(self, token: str = BEARER) -> None:
        self.token = token
        self.requests: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.requests.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture
def azdo(request: pytest.FixtureRequest) -> Iterator[FakeAzureDevOps]:
    with FakeAzureDevOps(pat=PAT, bearer_token=BEARER) as fake:
        fake.add_repository(REPO, REPO_ID)
        fake.add_commit(REPO, C1, "initial")
        fake.add_commit(REPO, C2, "second", parents=[C1])
        fake.add_commit(REPO, C3, "third", parents=[C2])
        fake.add_commit(REPO, SIDE, "side branch", parents=[C1])
        fake.add_commit(REPO, MERGE, "Merged PR 42: deploy", parents=[C3, SIDE])
        fake.add_pull_request(42, REPO, status="completed", last_merge_commit=MERGE)
        fake.add_plan(PLAN_ID, timeline_id=TIMELINE_ID, records={JOB_ID: "inProgress"})
        yield fake
    assert_contract_kept(fake, request)


def make_client(fake: FakeAzureDevOps, **kwargs: Any) -> AzureDevOpsClient:
    options: dict[str, Any] = {"pat": PAT, "retry_backoff_factor": 0, "read_timeout": 5}
    options.update(kwargs)
    return AzureDevOpsClient(fake.org_url, "project", **options)


@pytest.fixture
def client(azdo: FakeAzureDevOps) -> Iterator[AzureDevOpsClient]:
    with make_client(azdo) as devops:
        yield devops


def plan_ref(fake: FakeAzureDevOps, plan_url: str | None = None, **overrides: str) -> PlanRef:
    fields = {
        "plan_url": plan_url or fake.org_url,
        "project_id": PROJECT_ID,
        "hub_name": "build",
        "plan_id": PLAN_ID,
        "job_id": JOB_ID,
        "timeline_id": TIMELINE_ID,
        "task_instance_id": TASK_ID,
    }
    fields.update(overrides)
    return PlanRef(**fields)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- statuses ---------------------------------------------------------------------------------


def test_commit_status_is_posted_once_with_the_documented_body(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    client.post_commit_status(REPO, C3, STATUS)

    (write,) = azdo.status_writes()
    assert write.path == (
        f"/fabrikam/project/_apis/git/repositories/gitops%20repo/commits/{C3}/statuses"
    )
    assert write.query == {"api-version": "7.1"}
    assert write.json == STATUS_BODY
    assert write.auth == "basic"
    (stored,) = azdo.commit_statuses(REPO, C3)
    assert stored["state"] == "succeeded"
    assert stored["context"] == {"genre": "gitops-connector", "name": "flux/production"}


def test_status_without_target_url_sends_no_target_url(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    client.post_commit_status(REPO, C3, CommitStatus("pending", "reconciling", "g", "flux/dev"))

    assert "targetUrl" not in azdo.status_writes()[0].json


def test_pull_request_status_goes_to_the_pull_request(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    client.post_pull_request_status(REPO_ID, 42, STATUS)

    (write,) = azdo.status_writes()
    assert write.path.endswith(f"/repositories/{REPO_ID}/pullRequests/42/statuses")
    assert write.json == STATUS_BODY
    assert [s["state"] for s in azdo.pull_request_statuses(42)] == ["succeeded"]


def test_status_for_unknown_commit_is_permanent(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    with pytest.raises(PermanentAzureDevOpsError) as caught:
        client.post_commit_status(REPO, "f" * 40, STATUS)

    assert caught.value.status_code == 404
    assert "TF401175" in caught.value.message
    assert len(azdo.status_writes()) == 1  # not retried


# --- repository reads -------------------------------------------------------------------------


def test_get_commit(client: AzureDevOpsClient) -> None:
    committed = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)  # the fake's committer.date
    expected = Commit(MERGE, "Merged PR 42: deploy", (C3, SIDE), committed)
    assert client.get_commit(REPO, MERGE) == expected


def test_get_file_text_reads_a_file_at_a_commit_and_none_when_absent(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    azdo.add_commit(REPO, "9" * 40, "hydrated", files={"/hydrator.metadata": '{"drySha": "x"}'})
    assert client.get_file_text(REPO, "/hydrator.metadata", "9" * 40) == '{"drySha": "x"}'
    assert client.get_file_text(REPO, "/missing.yaml", "9" * 40) is None
    call = azdo.calls("GET", "/items")[0]
    assert call.query["versionDescriptor.versionType"] == "commit"
    assert call.query["includeContent"] == "true"


@pytest.mark.parametrize(
    ("ancestor", "descendant", "expected"),
    [
        (C1, C3, True),
        (C2, MERGE, True),
        (SIDE, MERGE, True),
        (C3, C3, True),
        (C3, C1, False),  # descendant of, not ancestor
        (SIDE, C3, False),  # on another branch
    ],
)
def test_is_ancestor_follows_the_parent_graph(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient, ancestor: str, descendant: str, expected: bool
) -> None:
    assert client.is_ancestor(REPO, ancestor, descendant) is expected

    (call,) = azdo.calls("GET", "/mergebases")
    assert call.path.endswith(f"/commits/{ancestor}/mergebases")
    assert call.query == {"otherCommitId": descendant, "api-version": "7.1"}


def test_pull_requests_for_merge_commit_queries_last_merge_commit(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    (found,) = client.pull_requests_for_merge_commit(REPO, MERGE)

    assert found == PullRequest(42, "completed", REPO_ID, MERGE, COMPLETED_DATE, REPO)
    (call,) = azdo.calls("POST", "/pullrequestquery")
    assert call.json == {"queries": [{"type": "lastMergeCommit", "items": [MERGE]}]}


def test_pull_requests_for_a_commit_no_pull_request_merged(client: AzureDevOpsClient) -> None:
    assert client.pull_requests_for_merge_commit(REPO, C2) == []


def test_get_pull_request_is_project_wide_and_parses_dates(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    closed = datetime(2026, 5, 14, 9, 12, 50, 123456, tzinfo=UTC)
    azdo.add_pull_request(7, REPO, status="abandoned", closed_date=closed)

    pull_request = client.get_pull_request(7)

    assert pull_request == PullRequest(7, "abandoned", REPO_ID, None, closed, REPO)
    assert azdo.calls()[-1].path == "/fabrikam/project/_apis/git/pullrequests/7"


def test_unknown_pull_request_is_permanent_and_not_retried(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    with pytest.raises(PermanentAzureDevOpsError) as caught:
        client.get_pull_request(999)

    assert caught.value.status_code == 404
    assert caught.value.message == "TF401180: The requested pull request was not found."
    assert len(azdo.calls()) == 1


def test_abandoned_pull_requests_are_paged_and_filtered_by_close_time(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    since = datetime(2026, 5, 1, tzinfo=UTC)
    recent = set(range(100, 305))  # 205 PRs: three pages of 100
    for number in recent:
        azdo.add_pull_request(
            number, REPO, status="abandoned", closed_date=since + timedelta(minutes=number)
        )
    azdo.add_pull_request(1, REPO, status="abandoned", closed_date=since - timedelta(days=1))
    azdo.add_pull_request(2, REPO, status="active")

    found = client.list_abandoned_pull_requests(REPO, since)

    assert {pr.pull_request_id for pr in found} == recent
    assert all(pr.status == "abandoned" and pr.closed_date for pr in found)
    pages = azdo.calls("GET", "/pullrequests")
    assert [call.query["$skip"] for call in pages] == ["0", "100", "200"]
    assert pages[0].query == {
        "searchCriteria.status": "abandoned",
        "searchCriteria.queryTimeRangeType": "closed",
        "searchCriteria.minTime": "2026-05-01T00:00:00Z",
        "$top": "100",
        "$skip": "0",
        "api-version": "7.1",
    }


def test_abandoned_pull_requests_need_an_aware_datetime(client: AzureDevOpsClient) -> None:
    with pytest.raises(ValueError, match="timezone"):
        client.list_abandoned_pull_requests(REPO, datetime(2026, 5, 1))


def test_pull_request_properties_are_unwrapped(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    callback = '{"planId":"p","jobId":"j"}'
    azdo.add_pull_request(8, REPO, properties={"gitops-callback": callback, "other": "x"})

    assert client.get_pull_request_properties(REPO, 8) == {
        "gitops-callback": callback,
        "other": "x",
    }


# --- agentless task callbacks -----------------------------------------------------------------


def test_plan_state_reads_plan_and_job_record(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    state = client.get_plan_state(plan_ref(azdo))

    assert state == PlanState("inProgress", "inProgress")
    assert not state.is_finished
    plan_call, records_call = azdo.calls()
    base = f"/fabrikam/{PROJECT_ID}/_apis/distributedtask/hubs/build/plans/{PLAN_ID}"
    assert plan_call.path == base
    assert records_call.path == f"{base}/timelines/{TIMELINE_ID}/records"
    assert plan_call.query == records_call.query == {"api-version": "4.1"}


def test_plan_state_of_completed_plan_is_finished(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    azdo.plans[PLAN_ID].state = "completed"

    assert client.get_plan_state(plan_ref(azdo)).is_finished


def test_plan_state_with_missing_job_record(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    state = client.get_plan_state(plan_ref(azdo, job_id="00000000-0000-0000-0000-000000000000"))

    assert state == PlanState("inProgress", None)


def test_plan_state_of_unknown_plan_is_unknown(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    state = client.get_plan_state(plan_ref(azdo, plan_id="00000000-0000-0000-0000-0000000000ff"))

    assert state == PlanState("unknown", None)
    assert len(azdo.calls()) == 1


def test_task_completed_event_completes_the_job(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    client.post_task_completed(plan_ref(azdo), "succeeded")

    assert azdo.task_completed_events() == [
        {"name": "TaskCompleted", "taskId": TASK_ID, "jobId": JOB_ID, "result": "succeeded"}
    ]
    (call,) = azdo.calls("POST")
    assert call.path.endswith(f"/hubs/build/plans/{PLAN_ID}/events")
    assert call.query == {"api-version": "2.0-preview.1"}
    assert client.get_plan_state(plan_ref(azdo)) == PlanState("inProgress", "completed")


def test_task_completed_rejects_undocumented_results(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    with pytest.raises(ValueError, match="result"):
        client.post_task_completed(plan_ref(azdo), "canceled")
    assert azdo.calls() == []


def test_task_completed_answered_500_is_transient_and_not_repeated(
    azdo: FakeAzureDevOps,
) -> None:
    # A 5xx may come after the event was applied: the caller re-reads the job state instead.
    azdo.plans[PLAN_ID].state = "completed"

    with make_client(azdo, retry_total=2) as devops, pytest.raises(TransientAzureDevOpsError):
        devops.post_task_completed(plan_ref(azdo), "failed")

    assert [call.status for call in azdo.calls()] == [500]
    assert azdo.task_completed_events() == []


def test_feed_lines_are_timestamped_split_and_bounded(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    client.append_feed(plan_ref(azdo), ["cluster aks-1 reconciled", "two\nlines", "x" * 5000])

    lines = azdo.feed_lines(PLAN_ID, JOB_ID)
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "
    assert [re.sub(stamp, "", line)[:8] for line in lines] == [
        "cluster ",
        "two",
        "lines",
        "xxxxxxxx",
    ]
    assert all(re.match(stamp, line) for line in lines)
    assert len(lines[-1]) == 1024
    (call,) = azdo.calls("POST")
    assert call.path.endswith(f"/timelines/{TIMELINE_ID}/records/{JOB_ID}/feed")
    assert call.query == {"api-version": "4.1"}
    assert call.json["count"] == 4


def test_empty_feed_sends_nothing(azdo: FakeAzureDevOps, client: AzureDevOpsClient) -> None:
    client.append_feed(plan_ref(azdo), [])

    assert azdo.calls() == []


def test_plan_url_in_the_other_services_form_and_case_is_accepted(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    shouting = azdo.org_url.replace("fabrikam", "FABRIKAM").rstrip("/")

    assert client.get_plan_state(plan_ref(azdo, shouting)).plan_state == "inProgress"


@pytest.mark.parametrize(
    "plan_url",
    [
        "https://dev.azure.com/contoso/",
        "https://dev.azure.com/fabrikam/",  # right name, but not where this client points
        "http://127.0.0.1:1/fabrikam/",  # another port
        "FAKE/fabrikam-evil/",  # evil suffix on the fake's own URL (filled in below)
        "FAKE/fabrikam/../contoso/",
    ],
)
def test_plan_outside_the_organisation_sends_nothing(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient, plan_url: str
) -> None:
    plan = plan_ref(azdo, plan_url.replace("FAKE/", f"http://127.0.0.1:{azdo.port}/"))

    with pytest.raises(ForeignOrganizationError):
        client.get_plan_state(plan)
    with pytest.raises(ForeignOrganizationError):
        client.post_task_completed(plan, "succeeded")
    with pytest.raises(ForeignOrganizationError):
        client.append_feed(plan, ["line"])

    assert azdo.calls() == []


@pytest.mark.parametrize("field", ["project_id", "hub_name", "plan_id", "timeline_id", "job_id"])
def test_plan_segments_cannot_climb_out_of_the_organisation(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient, field: str
) -> None:
    plan = plan_ref(azdo, **{field: ".."})

    with pytest.raises(ForeignOrganizationError):
        client.append_feed(plan, ["line"])
    assert azdo.calls() == []


@pytest.mark.breaks_contract  # sends it on purpose
def test_plan_segments_are_quoted(azdo: FakeAzureDevOps, client: AzureDevOpsClient) -> None:
    state = client.get_plan_state(plan_ref(azdo, plan_id="../../contoso/x"))

    assert state.plan_state == "unknown"
    assert azdo.calls()[0].path.endswith("/plans/..%2F..%2Fcontoso%2Fx")


# --- authentication ---------------------------------------------------------------------------


def test_wrong_pat_is_permanent_401_without_retries(azdo: FakeAzureDevOps) -> None:
    with (
        make_client(azdo, pat="wrong") as devops,
        pytest.raises(PermanentAzureDevOpsError) as caught,
    ):
        devops.post_commit_status(REPO, C1, STATUS)

    # 401 rather than a 203 sign-in page: X-TFS-FedAuthRedirect: Suppress was sent.
    assert caught.value.status_code == 401
    assert len(azdo.calls()) == 1
    assert azdo.calls()[0].auth == "basic"
    assert azdo.commit_statuses(REPO, C1) == []


def test_bearer_token_from_credential_for_the_devops_scope(azdo: FakeAzureDevOps) -> None:
    credential = FakeCredential()

    with make_client(azdo, pat=None, credential=credential) as devops:
        devops.post_commit_status(REPO, C3, STATUS)
        assert devops.get_commit(REPO, C3).commit_id == C3

    assert [call.auth for call in azdo.calls()] == ["bearer", "bearer"]
    assert credential.requests == [(ORG_SCOPE,)]  # cached across calls
    assert len(azdo.commit_statuses(REPO, C3)) == 1


def test_bearer_token_rejected_is_permanent(azdo: FakeAzureDevOps) -> None:
    credential = FakeCredential("not-the-token")

    with (
        make_client(azdo, pat=None, credential=credential) as devops,
        pytest.raises(PermanentAzureDevOpsError) as caught,
    ):
        devops.get_commit(REPO, C3)

    assert caught.value.status_code == 401


def test_credential_failure_is_transient(azdo: FakeAzureDevOps) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    class Broken(FakeCredential):
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            raise ClientAuthenticationError("identity endpoint unavailable")

    with (
        make_client(azdo, pat=None, credential=Broken()) as devops,
        pytest.raises(TransientAzureDevOpsError),
    ):
        devops.get_commit(REPO, C3)
    assert azdo.calls() == []


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"pat": PAT, "credential": FakeCredential()}, {"pat": ""}],
)
def test_exactly_one_credential_is_required(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="pat"):
        AzureDevOpsClient("https://dev.azure.com/fabrikam/", "project", **kwargs)


@pytest.mark.parametrize(
    "org_url",
    ["http://dev.azure.com/fabrikam/", "http://tfs.internal:8080/tfs/DefaultCollection/"],
)
def test_plain_http_is_refused_except_on_loopback(org_url: str) -> None:
    with pytest.raises(ValueError, match="https"):
        AzureDevOpsClient(org_url, "project", pat=PAT)
    with pytest.raises(ValueError, match="https"):
        AzureDevOpsClient(org_url, "project", credential=FakeCredential())


# --- retries and failures ---------------------------------------------------------------------


def test_post_throttled_with_retry_after_zero_is_written_exactly_once(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    azdo.inject("/statuses", 429, retry_after="0", method="POST")

    client.post_commit_status(REPO, C3, STATUS)

    assert [call.status for call in azdo.status_writes()] == [429, 201]
    assert len(azdo.commit_statuses(REPO, C3)) == 1


def test_post_throttled_without_retry_after_is_retried(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    azdo.inject("/statuses", 429, method="POST")

    client.post_commit_status(REPO, C3, STATUS)

    assert [call.status for call in azdo.status_writes()] == [429, 201]


def test_retry_after_is_honoured(azdo: FakeAzureDevOps, client: AzureDevOpsClient) -> None:
    azdo.inject("/statuses", 429, retry_after="1", method="POST")

    started = time.monotonic()
    client.post_commit_status(REPO, C3, STATUS)

    assert time.monotonic() - started >= 0.9
    assert len(azdo.commit_statuses(REPO, C3)) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_post_server_errors_twice_then_success(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient, status: int
) -> None:
    azdo.inject("/pullrequestquery", status, count=2)

    assert len(client.pull_requests_for_merge_commit(REPO, MERGE)) == 1
    assert [call.status for call in azdo.calls()] == [status, status, 200]


def test_get_server_errors_twice_then_success(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    azdo.inject("/commits/", 500, count=2, method="GET")

    assert client.get_commit(REPO, C1).commit_id == C1
    assert [call.status for call in azdo.calls()] == [500, 500, 200]


def test_persistent_503_is_transient_after_retry_total(azdo: FakeAzureDevOps) -> None:
    azdo.inject("/statuses", 503, count=100)

    with (
        make_client(azdo, retry_total=3) as devops,
        pytest.raises(TransientAzureDevOpsError) as caught,
    ):
        devops.post_commit_status(REPO, C3, STATUS)

    assert caught.value.status_code == 503
    assert len(azdo.status_writes()) == 4  # first attempt + 3 retries
    assert azdo.commit_statuses(REPO, C3) == []


@pytest.mark.parametrize("status", [400, 403, 404, 409])
def test_client_errors_are_permanent_and_not_retried(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient, status: int
) -> None:
    azdo.inject("/statuses", status)

    with pytest.raises(PermanentAzureDevOpsError) as caught:
        client.post_commit_status(REPO, C3, STATUS)

    assert caught.value.status_code == status
    assert caught.value.message == f"Injected {status}."
    assert len(azdo.calls()) == 1


@pytest.mark.breaks_contract  # sends it on purpose
def test_unsupported_api_version_is_permanent_with_the_service_message(
    azdo: FakeAzureDevOps,
) -> None:
    with (
        make_client(azdo, api_version="9.9") as devops,
        pytest.raises(PermanentAzureDevOpsError) as caught,
    ):
        devops.get_commit(REPO, C1)

    assert caught.value.status_code == 400
    assert "9.9 is outside the range" in caught.value.message
    assert len(azdo.calls()) == 1


def test_dropped_connection_on_status_post_is_retried(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    azdo.inject_disconnect("/statuses", method="POST")

    client.post_commit_status(REPO, C3, STATUS)

    assert [call.status for call in azdo.calls()] == [0, 201]
    assert len(azdo.commit_statuses(REPO, C3)) == 1


def test_task_completed_whose_answer_is_lost_is_not_posted_again(
    azdo: FakeAzureDevOps, client: AzureDevOpsClient
) -> None:
    azdo.inject_lost_response("/events", method="POST")

    with pytest.raises(TransientAzureDevOpsError):
        client.post_task_completed(plan_ref(azdo), "succeeded")

    assert [call.status for call in azdo.calls()] == [0]
    assert len(azdo.task_completed_events()) == 1  # it did arrive


def test_connection_refused_is_transient() -> None:
    org_url = f"http://127.0.0.1:{free_port()}/fabrikam/"
    devops = AzureDevOpsClient(org_url, "project", pat=PAT, retry_total=1, retry_backoff_factor=0)

    with devops, pytest.raises(TransientAzureDevOpsError):
        devops.get_commit(REPO, C1)


def test_read_timeout_is_retried_then_transient(azdo: FakeAzureDevOps) -> None:
    azdo.inject_delay("/commits/", 1.0, count=1)

    with make_client(azdo, read_timeout=0.2) as devops:
        assert devops.get_commit(REPO, C1).commit_id == C1  # the retry is answered promptly

    azdo.inject_delay("/commits/", 1.0, count=1)
    with (
        make_client(azdo, read_timeout=0.2, retry_total=0) as devops,
        pytest.raises(TransientAzureDevOpsError, match="Timeout"),
    ):
        devops.get_commit(REPO, C1)


# --- logging and tracing ----------------------------------------------------------------------


def test_credentials_never_reach_the_logs(
    azdo: FakeAzureDevOps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("azure", "azure.core", "urllib3", "connector"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    azdo.inject("/statuses", 503, count=1)
    azdo.inject("/pullrequests/", 404, count=1)

    with make_client(azdo) as devops:
        devops.post_commit_status(REPO, C3, STATUS)
        with pytest.raises(PermanentAzureDevOpsError):
            devops.get_pull_request(42)
    with make_client(azdo, pat=None, credential=FakeCredential()) as devops:
        devops.get_commit(REPO, C1)

    text = caplog.text
    assert "Request headers" in text  # the HTTP logging policy did log the requests
    assert "'Authorization': 'REDACTED'" in text
    basic = base64.b64encode(f":{PAT}".encode()).decode()
    for secret in (PAT, basic, BEARER, "Basic ", "Bearer "):
        assert secret not in text


class RecordingSpan:
    """A minimal azure-core tracing plugin (what azure-core-tracing-opentelemetry provides)."""

    finished: ClassVar[list[RecordingSpan]] = []

    def __init__(self, span: Any = None, name: str = "span", **kwargs: Any) -> None:
        self.name = name
        self.kind = kwargs.get("kind")
        self.attributes: dict[str, Any] = {}
        self.span_instance = self

    def add_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def to_header(self) -> dict[str, str]:
        return {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}

    def set_http_attributes(self, request: Any, response: Any = None) -> None:
        self.attributes["http.status_code"] = response.status_code if response else None

    def finish(self) -> None:
        RecordingSpan.finished.append(self)

    def __exit__(self, *exc_info: Any) -> None:
        self.finish()

    @classmethod
    def change_context(cls, span: Any) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def test_requests_are_traced_when_a_tracing_plugin_is_configured(
    client: AzureDevOpsClient,
) -> None:
    from azure.core.settings import settings

    RecordingSpan.finished.clear()
    settings.tracing_implementation.set_value(cast(Any, RecordingSpan))  # duck-typed plugin
    try:
        client.get_commit(REPO, C1)
    finally:
        settings.tracing_implementation.unset_value()

    (span,) = RecordingSpan.finished
    assert span.name == "GET"
    assert span.attributes["http.status_code"] == 200
    assert span.attributes["http.url"].endswith(f"/commits/{C1}?api-version=7.1")


# --- trial mode -------------------------------------------------------------------------------


def test_trial_mode_sends_nothing_and_logs_the_writes(
    azdo: FakeAzureDevOps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="connector.devops.trial")
    trial = TrialAzureDevOps(azdo.org_url, "project")
    plan = plan_ref(azdo)

    for write in (
        lambda: trial.post_commit_status(REPO, C3, STATUS),
        lambda: trial.post_pull_request_status(REPO, 42, STATUS),
        lambda: trial.post_task_completed(plan, "succeeded"),
        lambda: trial.append_feed(plan, ["reconciled"]),
        lambda: trial.create_log(plan),
        lambda: trial.append_log(plan, 3, ["line"]),
    ):
        with pytest.raises(NotSentError):  # callers record nothing as posted
            write()
    assert trial.get_commit(REPO, C3) == Commit(C3, "", ())
    assert trial.is_ancestor(REPO, C1, C3) is False
    assert trial.pull_requests_for_merge_commit(REPO, MERGE) == []
    assert trial.list_abandoned_pull_requests(REPO, datetime.now(UTC)) == []
    assert trial.get_pull_request_properties(REPO, 42) == {}
    assert trial.get_plan_state(plan) == PlanState("inProgress", "inProgress")
    with pytest.raises(PermanentAzureDevOpsError) as caught:
        trial.get_pull_request(42)
    trial.close()

    assert caught.value.status_code == 404
    assert azdo.calls() == []
    messages = [r.getMessage() for r in caplog.records if r.name == "connector.devops.trial"]
    assert len(messages) == 6
    assert (
        f"POST /fabrikam/project/_apis/git/repositories/gitops%20repo/commits/{C3}/statuses"
        in (messages[0])
    )
    assert '"name": "flux/production"' in messages[0]
    assert '"name": "TaskCompleted"' in messages[2]
    assert "api-version=2.0-preview.1" in messages[2]


def test_trial_mode_refuses_foreign_plans_too(azdo: FakeAzureDevOps) -> None:
    trial = TrialAzureDevOps(azdo.org_url, "project")

    with pytest.raises(ForeignOrganizationError):
        trial.post_task_completed(plan_ref(azdo, "https://dev.azure.com/contoso/"), "succeeded")


def test_both_implementations_satisfy_the_consumer_protocols(azdo: FakeAzureDevOps) -> None:
    with make_client(azdo) as devops:
        trial = TrialAzureDevOps(azdo.org_url, "project")
        writers: list[StatusWriter] = [devops, trial]
        readers: list[RepositoryReader] = [devops, trial]
        callbacks: list[PipelineCallbacks] = [devops, trial]
        for implementation in (*writers, *readers, *callbacks):
            for method in (
                "post_commit_status",
                "post_pull_request_status",
                "get_commit",
                "is_ancestor",
                "pull_requests_for_merge_commit",
                "get_pull_request",
                "list_abandoned_pull_requests",
                "get_pull_request_properties",
                "get_plan_state",
                "post_task_completed",
                "append_feed",
                "create_log",
                "append_log",
                "close",
            ):
                assert callable(getattr(implementation, method))


# --- organisation identity --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "org_url", "expected"),
    [
        ("https://dev.azure.com/fabrikam/", "https://dev.azure.com/fabrikam/", True),
        ("https://dev.azure.com/fabrikam", "https://dev.azure.com/fabrikam/", True),
        ("https://dev.azure.com/Fabrikam/", "https://DEV.azure.com/fabrikam", True),
        ("https://fabrikam.visualstudio.com/", "https://dev.azure.com/fabrikam/", True),
        ("https://dev.azure.com/fabrikam/", "https://Fabrikam.VisualStudio.com/", True),
        ("https://fabrikam.vsrm.visualstudio.com/", "https://dev.azure.com/fabrikam/", True),
        ("https://dev.azure.com/fabrikam/project/_apis", "https://dev.azure.com/fabrikam/", True),
        ("https://dev.azure.com:443/fabrikam/", "https://dev.azure.com/fabrikam/", True),
        ("https://dev.azure.com/fabrikam-evil/", "https://dev.azure.com/fabrikam/", False),
        ("https://dev.azure.com/fabrikam/", "https://dev.azure.com/fabrikam-evil/", False),
        ("https://fabrikam-evil.visualstudio.com/", "https://dev.azure.com/fabrikam/", False),
        ("https://fabrikam.visualstudio.com.evil.io/", "https://dev.azure.com/fabrikam/", False),
        ("https://evil.io/fabrikam/", "https://dev.azure.com/fabrikam/", False),
        ("https://dev.azure.com/contoso/", "https://dev.azure.com/fabrikam/", False),
        ("https://dev.azure.com/", "https://dev.azure.com/fabrikam/", False),
        ("https://dev.azure.com/fabrikam/../contoso/", "https://dev.azure.com/fabrikam/", False),
        (
            "https://dev.azure.com/fabrikam/%2e%2e/contoso/",
            "https://dev.azure.com/fabrikam/",
            False,
        ),
        ("https://user:pw@dev.azure.com/fabrikam/", "https://dev.azure.com/fabrikam/", False),
        ("https://dev.azure.com:8443/fabrikam/", "https://dev.azure.com/fabrikam/", False),
        ("http://dev.azure.com/fabrikam/", "https://dev.azure.com/fabrikam/", False),
        ("http://fabrikam.visualstudio.com/", "https://dev.azure.com/fabrikam/", False),
        ("ftp://dev.azure.com/fabrikam/", "https://dev.azure.com/fabrikam/", False),
        ("not a url", "https://dev.azure.com/fabrikam/", False),
        # Azure DevOps Server: host and collection path, segment by segment
        ("https://tfs.corp/tfs/DefaultCollection/", "https://tfs.corp/tfs/defaultcollection", True),
        (
            "https://tfs.corp/tfs/DefaultCollectionX/",
            "https://tfs.corp/tfs/DefaultCollection/",
            False,
        ),
        ("https://tfs.corp/tfs/Other/", "https://tfs.corp/tfs/DefaultCollection/", False),
        ("https://tfs.corp:8443/tfs/DC/", "https://tfs.corp/tfs/DC/", False),
        ("http://tfs.corp:8080/tfs/DC/", "http://tfs.corp:8080/tfs/DC/", False),  # no TLS
        # loopback may use plain http (tests, local fakes), but only to the same port
        ("http://127.0.0.1:8080/fabrikam/", "http://127.0.0.1:8080/fabrikam/", True),
        ("http://localhost:8080/Fabrikam/", "http://localhost:8080/fabrikam/", True),
        ("http://[::1]:8080/fabrikam/", "http://[::1]:8080/fabrikam/", True),
        ("http://127.0.0.1:8081/fabrikam/", "http://127.0.0.1:8080/fabrikam/", False),
        ("https://127.0.0.1:8080/fabrikam/", "http://127.0.0.1:8080/fabrikam/", False),
    ],
)
def test_same_organization(url: str, org_url: str, expected: bool) -> None:
    assert same_organization(url, org_url) is expected
