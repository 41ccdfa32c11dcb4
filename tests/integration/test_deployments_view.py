"""`GET /api/deployments/{commit}`: the deployment view of a commit from the state store (Azurite),
as JSON or as a small escaped HTML page."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

import function_app
from connector.app.root import bootstrap
from connector.app.root.bootstrap import Container
from connector.app.views.deployments_model import deployment_view
from connector.app.views.deployments_page import render_html
from connector.core.gates import Gate, GateState, PlanRef, gate_id
from connector.core.tracking import ObjectRef, Observation, Phase
from connector.gates.store import GateStore
from connector.outputs.sinks import COMMIT_STATUS_SINK
from connector.settings import Settings
from connector.storage.tables import TableStore

pytestmark = pytest.mark.azurite

A = "a1" * 20
B = "b2" * 20
UNKNOWN = "c3" * 20
T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
ENVIRONMENTS = json.dumps({"dev": {"clusters": ["dev-1", "dev-2"]}})
XSS = "<script>alert('x')</script> & \"quotes\""


def settings(**values: str) -> Settings:
    return Settings.from_env({"ENVIRONMENTS": ENVIRONMENTS, **values})


def record(
    store: TableStore,
    commit: str,
    phase: Phase,
    *,
    cluster: str = "dev-1",
    env: str = "dev",
    obj: str = "Kustomization/flux-system/apps",
    reason: str = "ReconciliationSucceeded",
    summary: str = "Applied revision",
    minutes: int = 0,
) -> None:
    ref = ObjectRef.parse(obj)
    store.record(
        Observation(
            cluster=cluster,
            env=env,
            obj=ref,
            commit=commit,
            phase=phase,
            reason=reason,
            summary=summary,
            time=T0 + timedelta(minutes=minutes),
            message_id=uuid.uuid4().hex,
            is_source=ref.kind == "GitRepository",
        )
    )


def add_gate(
    store: TableStore,
    commit: str | None,
    *,
    env: str = "dev",
    state: GateState = GateState.WAITING,
    result: str = "",
    reason: str = "",
    minutes: int = 0,
    pull_request_id: int | None = None,
) -> Gate:
    plan_id, job_id = uuid.uuid4().hex, uuid.uuid4().hex
    plan = PlanRef("https://dev.azure.com/org/", "p", "build", plan_id, job_id, "t", "task")
    created = T0 + timedelta(minutes=minutes)
    gate = Gate(
        id=gate_id(plan_id, job_id),
        plan=plan,
        environment=env,
        created_at=created,
        deadline=created + timedelta(hours=1),
        commit=commit,
        pull_request_id=pull_request_id,
        repository="manifests",
        state=state,
        result=result,
        result_reason=reason,
    )
    return GateStore(store).add(gate)


def populate(store: TableStore) -> Gate:
    """dev-1 failed (one object failed, one succeeded), dev-2 progressing, plus a source object,
    a posted status and a waiting gate."""
    record(store, A, Phase.SUCCEEDED)
    record(
        store,
        A,
        Phase.FAILED,
        obj="HelmRelease/apps/podinfo",
        reason="UpgradeFailed",
        summary=XSS,
        minutes=1,
    )
    record(
        store,
        A,
        Phase.SUCCEEDED,
        obj="GitRepository/flux-system/flux-system",
        reason="NewArtifact",
        summary="stored artifact",
    )
    record(
        store,
        A,
        Phase.PROGRESSING,
        cluster="dev-2",
        reason="Progressing",
        summary="applying",
        minutes=2,
    )
    ledger = store.ledger(COMMIT_STATUS_SINK)
    claim = ledger.claim_status(A, "flux/dev", "failed", "dev failed on dev-1")
    assert claim is not None
    ledger.finish_status(A, "flux/dev", claim)
    return add_gate(store, A)


def get(
    container: Container,
    commit: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> func.HttpResponse:
    req = func.HttpRequest(
        method=method,
        url=f"http://localhost:7071/api/deployments/{commit}",
        headers=headers or {},
        params=params or {},
        route_params={"commit": commit},
        body=b"",
    )
    bootstrap.override(container)
    try:
        return function_app.deployments(req)
    finally:
        bootstrap.override(None)


def body(resp: func.HttpResponse) -> dict:
    return json.loads(resp.get_body())


# --- the view ------------------------------------------------------------------------------------


def test_view_has_environments_clusters_objects_statuses_and_gates(table_store):
    gate = populate(table_store)
    view = deployment_view(table_store, settings().environments, A)
    time = (T0 + timedelta(minutes=1)).isoformat()
    assert view == {
        "commit": A,
        "environments": {
            "dev": {
                "phase": "failed",
                "clusters": {
                    "dev-1": {
                        "phase": "failed",
                        "objects": {
                            "GitRepository/flux-system/flux-system": {
                                "phase": "succeeded",
                                "reason": "NewArtifact",
                                "summary": "stored artifact",
                                "time": T0.isoformat(),
                            },
                            "HelmRelease/apps/podinfo": {
                                "phase": "failed",
                                "reason": "UpgradeFailed",
                                "summary": XSS,
                                "time": time,
                            },
                            "Kustomization/flux-system/apps": {
                                "phase": "succeeded",
                                "reason": "ReconciliationSucceeded",
                                "summary": "Applied revision",
                                "time": T0.isoformat(),
                            },
                        },
                    },
                    "dev-2": {
                        "phase": "progressing",
                        "objects": {
                            "Kustomization/flux-system/apps": {
                                "phase": "progressing",
                                "reason": "Progressing",
                                "summary": "applying",
                                "time": (T0 + timedelta(minutes=2)).isoformat(),
                            },
                        },
                    },
                },
            },
        },
        "statuses": {
            "flux/dev": {
                "state": "failed",
                "description": "dev failed on dev-1",
                "claimed_at": view["statuses"]["flux/dev"]["claimed_at"],
                "confirmed": True,
                "trial": False,
            },
        },
        "gates": [
            {
                "id": gate.id,
                "environment": "dev",
                "state": "waiting",
                "result": "",
                "reason": "",
                "commit": A,
                "hld_commit": None,
                "link_problem": "",
                "pull_request_id": None,
                "repository": "manifests",
                "clusters": [],
                "objects": [],
                "created_at": T0.isoformat(),
                "deadline": (T0 + timedelta(hours=1)).isoformat(),
                "source": "registered",
                "trial": "",
            }
        ],
        "link": None,  # no HLD repository: nothing asked what the commit carries
    }
    json.dumps(view)  # JSON-ready as it is


def test_expected_objects_not_yet_reporting_are_pending_and_hold_the_cluster(table_store):
    # Both objects ran B; only `apps` has reported A so far: `infra` (same source) is expected.
    record(table_store, B, Phase.SUCCEEDED)
    record(table_store, B, Phase.SUCCEEDED, obj="Kustomization/flux-system/infra")
    record(table_store, A, Phase.SUCCEEDED, minutes=5)
    view = deployment_view(table_store, settings(ENVIRONMENTS="{}").environments, A)
    cluster = view["environments"]["dev"]["clusters"]["dev-1"]
    assert cluster["phase"] == "progressing"
    assert cluster["objects"]["Kustomization/flux-system/infra"] == {
        "phase": "pending",
        "reason": "",
        "summary": "no report of this commit yet",
        "time": None,
    }
    assert cluster["objects"]["Kustomization/flux-system/apps"]["phase"] == "succeeded"


def test_a_configured_cluster_without_reports_keeps_the_environment_progressing(table_store):
    record(table_store, A, Phase.SUCCEEDED)
    view = deployment_view(table_store, settings().environments, A)
    dev = view["environments"]["dev"]
    assert dev["phase"] == "progressing"
    assert dev["clusters"]["dev-2"] == {"phase": "progressing", "objects": {}}
    assert dev["clusters"]["dev-1"]["phase"] == "succeeded"


def test_a_cluster_outside_the_environment_is_shown_but_does_not_decide(table_store):
    record(table_store, A, Phase.SUCCEEDED)
    record(table_store, A, Phase.SUCCEEDED, cluster="dev-2")
    record(table_store, A, Phase.FAILED, cluster="lab-9", reason="HealthCheckFailed")
    dev = deployment_view(table_store, settings().environments, A)["environments"]["dev"]
    assert dev["phase"] == "succeeded"
    assert dev["clusters"]["lab-9"]["phase"] == "failed"


def test_a_commit_known_only_from_a_gate_lists_its_environment(table_store):
    add_gate(table_store, B, env="prod")
    view = deployment_view(table_store, settings().environments, B)
    assert view["environments"] == {"prod": {"phase": "progressing", "clusters": {}}}
    assert [g["environment"] for g in view["gates"]] == ["prod"]


def test_only_gates_of_this_commit_are_listed(table_store):
    populate(table_store)
    add_gate(table_store, B)
    add_gate(table_store, None, pull_request_id=7)
    view = deployment_view(table_store, settings().environments, A)
    assert [g["commit"] for g in view["gates"]] == [A]


# --- HTTP ----------------------------------------------------------------------------------------


def test_get_returns_the_view_as_json(table_store):
    populate(table_store)
    container = Container(settings(), store=table_store)
    resp = get(container, A)
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    assert body(resp) == deployment_view(table_store, settings().environments, A)


def test_commit_is_case_insensitive(table_store):
    populate(table_store)
    resp = get(Container(settings(), store=table_store), A.upper())
    assert resp.status_code == 200
    assert body(resp)["commit"] == A


@pytest.mark.parametrize("commit", ["", "abc", "g" * 40, "a" * 41, "a" * 39, "a" * 40 + "\n"])
def test_invalid_commit_is_a_400_naming_commit(table_store, commit):
    resp = get(Container(settings(), store=table_store), commit)
    assert resp.status_code == 400
    assert resp.mimetype == "application/json"
    reply = body(resp)
    assert "commit" in reply["error"]
    assert reply["fields"][0]["field"] == "commit"


def test_unknown_commit_is_a_404(table_store):
    populate(table_store)
    resp = get(Container(settings(), store=table_store), UNKNOWN)
    assert resp.status_code == 404
    assert body(resp) == {
        "error": "unknown commit: no object state, commit status or gate is recorded for it",
        "commit": UNKNOWN,
    }


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"format": "html"}, {}),
        ({"format": "HTML"}, {"Accept": "application/json"}),
        ({}, {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}),
    ],
)
def test_html_on_request_with_everything_escaped(table_store, params, headers):
    populate(table_store)
    resp = get(Container(settings(), store=table_store), A, params=params, headers=headers)
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    assert resp.charset == "utf-8"
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    page = resp.get_body().decode()
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert f"<code>{A}</code>" in page
    assert '<td class="failed">failed</td>' in page
    assert "HelmRelease/apps/podinfo" in page


def test_format_json_wins_over_a_browser_accept_header(table_store):
    populate(table_store)
    resp = get(
        Container(settings(), store=table_store),
        A,
        params={"format": "json"},
        headers={"Accept": "text/html"},
    )
    assert resp.mimetype == "application/json"


def test_unknown_format_is_a_400_naming_format(table_store):
    resp = get(Container(settings(), store=table_store), A, params={"format": "xml"})
    assert resp.status_code == 400
    assert body(resp)["fields"] == [{"field": "format", "problem": "use json or html"}]


def test_only_get_is_served(table_store):
    resp = get(Container(settings(), store=table_store), A, method="POST")
    assert resp.status_code == 405


def test_missing_state_storage_is_a_503_naming_the_setting():
    resp = get(Container(Settings.from_env({})), A)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "30"
    assert "AzureWebJobsStorage" in body(resp)["error"]


def test_malformed_storage_connection_string_is_a_503_naming_the_setting():
    resp = get(Container(Settings.from_env({"AzureWebJobsStorage": "garbage"})), A)
    assert resp.status_code == 503
    assert body(resp)["error"].startswith("AzureWebJobsStorage: Connection string is")


def test_unreachable_storage_is_a_503():
    resp = get(Container(settings(), store=_UnreachableStore()), A)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    assert body(resp) == {"error": "state store unavailable, retry later"}


class _UnreachableStore:
    """Every read fails the way the Tables SDK does when storage cannot be reached."""

    def __getattr__(self, name: str):
        from azure.core.exceptions import ServiceRequestError

        def fail(*args, **kwargs):
            raise ServiceRequestError("connection refused")

        return fail


def test_html_escapes_names_too():
    view = {
        "commit": A,
        "environments": {
            "<env>": {"phase": "failed", "clusters": {"c&1": {"phase": '"x"', "objects": {}}}}
        },
        "statuses": {
            "<ctx>": {"state": "failed", "description": "<d>", "claimed_at": "", "confirmed": False}
        },
        "gates": [],
    }
    page = render_html(view)
    assert "&lt;env&gt;" in page
    assert "c&amp;1" in page
    assert 'class="&quot;x&quot;"' in page
    assert "&lt;ctx&gt;" in page
    assert "&lt;d&gt;" in page
    assert "<env>" not in page
    assert "<p>None.</p>" in page  # no gates
