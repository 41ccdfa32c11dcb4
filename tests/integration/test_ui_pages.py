"""`GET /api/ui` and `GET /api/ui/{commit}` through the registered function, after the scripted
dev → prod rollout (tests/ui_scenario.py) processed into Azurite: the views, the answers to bad
input, escaping, the Content-Security-Policy, and who may open the pages in keyless mode."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from datetime import UTC, datetime

import azure.functions as func
import pytest

import function_app
from connector.app.views.ui_assets import SCRIPT, STYLE
from connector.core.gates import Gate, GateState, PlanRef
from connector.gates.store import GateStore
from tests.ui_scenario import FAILURE, NEW, OLD, next_event, rollout, send
from tests.unit.test_easy_auth import CONNECTION, OTHER, principal

pytestmark = pytest.mark.azurite

PEOPLE = "5e0f9a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"


def get(path: str, headers: dict[str, str] | None = None, **params: str) -> func.HttpResponse:
    route = path.removeprefix("/api/ui").strip("/")
    req = func.HttpRequest(
        method="GET",
        url=f"http://localhost:7071{path}",
        headers=headers or {},
        params=params,
        route_params={"commit": route} if route else {},
        body=b"",
    )
    return function_app.ui(req)


def body(resp: func.HttpResponse) -> dict:
    return json.loads(resp.get_body())


@pytest.fixture
def rolled(world):
    rollout(world)
    return world


def test_the_index_puts_the_open_gate_first_and_says_what_each_cluster_runs(rolled) -> None:
    view = body(get("/api/ui", format="json"))
    (gate,) = view["gates"]
    assert (gate["environment"], gate["commit"], gate["state"]) == ("prod", NEW, "waiting")
    assert gate["waiting"] == [
        {
            "cluster": "prod-eu",
            "why": "FAILED Kustomization/flux-system/apps: HealthCheckFailed",
            "failed": True,
        },
        {"cluster": "prod-us", "why": f"runs {OLD[:7]}", "runs": OLD},
    ]
    dev, prod = view["environments"]
    assert [(c["cluster"], c["commit"], c["phase"]) for c in dev["clusters"]] == [
        ("dev-1", NEW, "succeeded"),
        ("dev-2", NEW, "succeeded"),
    ]
    eu, us = prod["clusters"]  # failed first
    assert (eu["cluster"], eu["phase"], eu["failed"]["message"]) == ("prod-eu", "failed", FAILURE)
    assert (us["cluster"], us["commit"], us["phase"]) == ("prod-us", OLD, "succeeded")
    assert [(c["commit"], c["phase"]) for c in prod["commits"]] == [
        (NEW, "failed"),
        (OLD, "succeeded"),
    ]


def test_a_new_event_shows_in_the_next_poll(rolled) -> None:
    first = body(get("/api/ui", format="fragment"))
    next_event(rolled)
    second = body(get("/api/ui", format="fragment"))
    assert first["digest"] != second["digest"]
    assert "prod-us: progressing on 9f8e7d6" in second["main"]
    assert "prod-us: progressing" not in first["main"]
    same = body(get("/api/ui", format="fragment", digest=second["digest"]))
    assert same["digest"] == second["digest"]
    assert "main" not in same  # unchanged: the poll costs a few bytes


def test_the_commit_page_by_short_sha_has_each_gate_with_what_it_waits_for(rolled) -> None:
    view = body(get(f"/api/ui/{NEW[:7]}", format="json"))
    assert view["commit"] == NEW
    (gate,) = view["gates"]
    waits = gate["waits"]
    assert [c["cluster"] for c in waits["clusters"]] == ["prod-eu", "prod-us"]
    assert waits["clusters"][1]["runs_now"]["commit"] == OLD
    failure = waits["failure"]
    assert (failure["cluster"], failure["reason"]) == ("prod-eu", "HealthCheckFailed")
    assert 0 < failure["grace_left_seconds"] <= 900
    assert gate["links"]["pull_request"].endswith("/_git/manifests/pullrequest/42")
    assert "/_apis/distributedtask/hubs/build/plans/" in gate["links"]["plan"]
    assert view["hld_commit"] is None
    assert view["statuses"]["env/prod"]["state"] == "failed"


def test_commits_that_cannot_be_shown_get_a_4xx_naming_the_problem(rolled) -> None:
    short = get(f"/api/ui/{NEW[:5]}", format="json")
    assert short.status_code == 400
    assert body(short)["fields"][0]["field"] == "commit"
    assert get("/api/ui/not-hex", format="json").status_code == 400
    assert get("/api/ui/" + "d" * 12, format="json").status_code == 404
    assert get("/api/ui/" + "d" * 40, format="json").status_code == 404
    assert get("/api/ui", format="pdf").status_code == 400
    assert get("/api/ui", refresh="0").status_code == 400
    req = func.HttpRequest(method="POST", url="/api/ui", headers={}, body=b"")
    assert function_app.ui(req).status_code == 405
    page = get("/api/ui/" + "d" * 12)
    assert page.status_code == 404
    assert page.mimetype == "text/html"


def test_an_ambiguous_short_sha_offers_the_choice(rolled) -> None:
    twin = NEW[:7] + "0" * 33  # a second commit starting with the same 7 characters
    send(rolled, twin, "dev-1", "dev", "apps", 0, "Progressing", None)
    answer = get(f"/api/ui/{NEW[:7]}", format="json")
    assert answer.status_code == 409
    assert body(answer)["candidates"] == sorted([NEW, twin])
    page = get(f"/api/ui/{NEW[:7]}").get_body().decode()
    assert f'href="/api/ui/{NEW}"' in page
    assert f'href="/api/ui/{twin}"' in page


def test_the_search_box_redirects_and_links_keep_the_function_key(rolled) -> None:
    answer = get("/api/ui", commit=NEW[:8], code="the-key")
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"/api/ui/{NEW}?code=the-key"
    page = get("/api/ui", code="the-key").get_body().decode()
    assert f'href="/api/ui/{NEW}?code=the-key"' in page
    assert '<input type="hidden" name="code" value="the-key">' in page


def test_everything_is_escaped_and_only_the_hashed_script_and_style_run(rolled) -> None:
    hostile = '<script>alert(1)</script> & "quoted" <img src=x onerror=alert(2)>'
    send(rolled, NEW, "dev-2", "dev", "apps", 0, "ReconciliationFailed", hostile)
    for path in ("/api/ui", f"/api/ui/{NEW}"):
        resp = get(path)
        page = resp.get_body().decode()
        assert "<img src=x" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot;" in page
        assert re.findall(r"<script>(.*?)</script>", page, re.DOTALL) == [SCRIPT]
        assert re.findall(r"<style>(.*?)</style>", page, re.DOTALL) == [STYLE]
        assert not re.search(r"<[^>]*\s(on\w+|style)=", page)  # no handler, no style attribute
        csp = resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp
        assert "unsafe" not in csp
        for text in (SCRIPT, STYLE):
            digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in csp
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page


def test_a_finished_gate_is_not_on_the_index(rolled) -> None:
    gates = GateStore(rolled.store)
    (gate,) = gates.open_gates()
    gates.update(gate, lambda g: Gate(**{**g.__dict__, "state": GateState.FAILED}))
    assert body(get("/api/ui", format="json"))["gates"] == []
    view = body(get(f"/api/ui/{NEW}", format="json"))
    assert view["gates"][0]["state"] == "failed"
    assert view["gates"][0]["waits"] is None
    assert isinstance(gate.plan, PlanRef)


# --- keyless mode: the service connection, or a person signed in -------------------------------


@pytest.fixture
def keyless(rolled, monkeypatch: pytest.MonkeyPatch):
    rolled.configure(PIPELINE_CLIENT_ID=CONNECTION, UI_CLIENT_ID=PEOPLE)
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    return rolled


def test_keyless_admits_people_signed_in_to_the_pages_and_the_service_connection(keyless) -> None:
    person = {"X-MS-CLIENT-PRINCIPAL": principal(aud=PEOPLE, oid="u1", name="On Call")}
    assert get("/api/ui", person).status_code == 200
    pipeline = {"X-MS-CLIENT-PRINCIPAL": principal(appid=CONNECTION)}
    assert get(f"/api/ui/{NEW}", pipeline, format="json").status_code == 200
    elsewhere = {"X-MS-CLIENT-PRINCIPAL": principal(aud=OTHER, oid="u2")}
    assert get("/api/ui", elsewhere).status_code == 401
    borrowed = {"X-MS-CLIENT-PRINCIPAL": principal(aud=PEOPLE, azp=OTHER)}
    assert get("/api/ui", borrowed).status_code == 401
    assert get("/api/ui").status_code == 401


def test_keyless_without_a_ui_client_id_admits_no_person(rolled, monkeypatch) -> None:
    rolled.configure(PIPELINE_CLIENT_ID=CONNECTION)
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    person = {"X-MS-CLIENT-PRINCIPAL": principal(aud=PEOPLE, oid="u1")}
    assert get("/api/ui", person).status_code == 401
    # /api/deployments stays the service connection's only.
    req = func.HttpRequest(
        method="GET",
        url=f"/api/deployments/{NEW}",
        headers=person,
        route_params={"commit": NEW},
        body=b"",
    )
    assert function_app.deployments(req).status_code == 401


# --- the index's Table requests do not grow with the fleet ------------------------------------


def test_the_index_costs_two_table_requests_however_many_clusters(azurite_connection) -> None:
    from azure.data.tables import TableServiceClient

    from bench.fleet import CountingTransport
    from connector.app.views.ui import UiPages
    from connector.core.tracking import ClusterResult, Phase
    from connector.settings import Settings
    from connector.storage.board import BoardTable
    from connector.storage.tables import TableStore
    from connector.web import Request

    counter = CountingTransport()
    service = TableServiceClient.from_connection_string(azurite_connection, transport=counter)
    store = TableStore(service, prefix="uicount" + uuid.uuid4().hex[:8])
    board = BoardTable(lambda: store.table("board"))
    pages = UiPages(lambda: store, Settings.from_env({}))
    request = Request("GET", b"", {}, {"format": "json"})
    costs = []
    for clusters in (3, 300):
        for c in range(clusters):
            result = ClusterResult(f"c{c:04d}", Phase.SUCCEEDED)
            board.note("prod", NEW, result, Phase.SUCCEEDED, datetime.now(UTC))
        store.table("gates")  # the gates table exists, as after the first registration
        counter.reset()
        reply = pages.handle(request)
        assert len(reply.body["environments"][0]["clusters"]) == clusters
        costs.append(counter.reset()[0])
    assert costs == [2, 2]  # one query of the boards, one of the open gates
