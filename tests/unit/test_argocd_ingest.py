"""POST /api/argocd through the registered function, with real azure.functions requests."""

from __future__ import annotations

import json
import logging

import pytest

import function_app
from connector.app.root import registry
from connector.core.tracking import ObjectRef, Phase
from connector.queue import envelope
from tests.argocd import SECRET, A, application, argocd_request, basic, bearer, fixture_names
from tests.conftest import BASE_SETTINGS

SETTINGS = {**BASE_SETTINGS, "ARGOCD_WEBHOOK_SECRET": SECRET, "AZDO_GITOPS_REPO": "manifests"}
INCUMBENT = {
    "commitid": A,
    "phase": "Succeeded",
    "sync_status": "Synced",
    "health": "Healthy",
    "message": "successfully synced (all tasks run)",
    "resources": [{"kind": "Deployment", "name": "guestbook", "status": "Synced"}],
}


@pytest.fixture
def app(install):
    install(SETTINGS)


def post(body, **kwargs):
    resp = function_app.argocd(argocd_request(body, **kwargs))
    return resp.status_code, json.loads(resp.get_body()), resp.headers


def queued(sender):
    [message] = sender.drain()
    observation = registry.read(message.body, message.message_id)
    return message, observation


@pytest.mark.parametrize("name", fixture_names())
def test_every_trigger_fixture_is_queued_for_its_application(app, sender, name):
    status, reply, _ = post(application(name))
    assert status == 202, reply
    message, obs = queued(sender)
    assert reply["id"] == message.message_id
    doc = application(name)
    meta = doc["metadata"]
    assert obs.obj == ObjectRef("Application", meta["namespace"], meta["name"])
    assert obs.commit == A
    assert message.session_id == f"aks-dev-1/Application/{meta['namespace']}/{meta['name']}"
    decoded = envelope.decode(message.body)
    assert isinstance(decoded, envelope.Envelope)
    assert decoded.source == "argocd"


@pytest.mark.parametrize(
    ("name", "phase"),
    [
        ("sync-running-kustomize", Phase.PROGRESSING),
        ("sync-succeeded-kustomize", Phase.PROGRESSING),  # synced, not yet healthy
        ("deployed-kustomize", Phase.SUCCEEDED),
        ("sync-failed-hook", Phase.FAILED),
        ("health-degraded-helm", Phase.FAILED),
        ("deployed-multi-source", Phase.SUCCEEDED),
        ("out-of-sync-new-revision", Phase.SUCCEEDED),  # still the synced commit's report
    ],
)
def test_phase_of_each_trigger(app, sender, name, phase):
    assert post(application(name))[0] == 202
    _, obs = queued(sender)
    assert obs.phase == phase


def test_failed_hook_summary_names_the_reason(app, sender):
    post(application("sync-failed-hook"))
    _, obs = queued(sender)
    assert obs.reason == "Failed/Healthy"
    assert "backoff limit" in obs.summary


def test_wrapped_application_is_the_same_report(app, sender):
    post({"app": application("deployed-kustomize")})
    _, wrapped = queued(sender)
    post(application("deployed-kustomize"))
    _, bare = queued(sender)
    assert (wrapped.obj, wrapped.commit, wrapped.phase, wrapped.time) == (
        bare.obj,
        bare.commit,
        bare.phase,
        bare.time,
    )


def test_basic_auth_password_and_rotated_secrets(install, sender):
    install({**SETTINGS, "ARGOCD_WEBHOOK_SECRET": f"old-secret,{SECRET}"})
    assert post(application("deployed-kustomize"), headers=basic())[0] == 202
    assert post(application("deployed-kustomize"), headers=bearer("old-secret"))[0] == 202


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("wrong"), basic("wrong"), {"Authorization": SECRET}, {"X-Secret": SECRET}],
)
def test_missing_or_wrong_secret_is_401_with_a_challenge(app, sender, headers):
    status, reply, resp_headers = post(application("deployed-kustomize"), headers=headers)
    assert status == 401
    assert "ARGOCD_WEBHOOK_SECRET" in reply["error"]
    assert "Bearer" in resp_headers["WWW-Authenticate"]
    assert sender.drain() == []


def test_unconfigured_secret_is_503_naming_the_setting(install, sender):
    install(BASE_SETTINGS)
    status, reply, headers = post(application("deployed-kustomize"))
    assert status == 503
    assert "ARGOCD_WEBHOOK_SECRET" in reply["error"]
    assert int(headers["Retry-After"]) > 0


def test_secret_never_appears_in_logs_or_replies(app, sender, caplog):
    caplog.set_level(logging.DEBUG)
    post(application("deployed-kustomize"))
    _, reply, _ = post(application("deployed-kustomize"), headers=bearer(SECRET + "x"))
    assert SECRET not in caplog.text
    assert SECRET not in json.dumps(reply)


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'"text"', 400, "JSON object"),
        (b"{}", 422, "neither"),
        (b'{"metadata": {"namespace": "argocd"}}', 422, "metadata.name"),
        (b'{"metadata": {"name": "a/b", "namespace": "argocd"}}', 422, "metadata.name"),
        (b'{"app": {"metadata": 3}}', 422, "app.metadata"),
        (
            b'{"metadata": {"name": "x", "namespace": "argocd"}, '
            b'"status": {"operationState": {"finishedAt": "yesterday"}}}',
            422,
            "status.operationState.finishedAt",
        ),
    ],
)
def test_bad_bodies_are_4xx_naming_the_problem(app, sender, body, status, needle):
    got, reply, _ = post(body)
    assert got == status
    assert needle in json.dumps(reply)
    assert sender.drain() == []


def test_method_and_size(app, sender):
    assert post(application("deployed-kustomize"), method="GET")[0] == 405
    big = b'{"metadata": {"name": "x", "namespace": "y"}, "pad": "' + b"x" * 1024 * 1024 + b'"}'
    assert post(big)[0] == 413


def test_cluster_and_env_from_query_then_labels_then_destination_then_defaults(app, sender):
    # The deployed fixture carries both labels; the others name their destination only.
    doc = application("deployed-kustomize")
    doc["metadata"]["labels"] = {"gitops-connector/cluster": "west", "gitops-connector/env": "qa"}
    post(doc)
    _, obs = queued(sender)
    assert (obs.cluster, obs.env) == ("west", "qa")
    post(application("deployed-kustomize"))
    _, obs = queued(sender)
    assert (obs.cluster, obs.env) == ("aks-dev-1", "dev")
    doc = application("sync-running-kustomize")
    post(doc)
    _, obs = queued(sender)
    assert (obs.cluster, obs.env) == ("aks-dev-1", "dev")  # destination name, DEFAULT_ENV
    del doc["spec"]["destination"]["name"]
    post(doc)
    _, obs = queued(sender)
    assert (obs.cluster, obs.env) == ("dev-1", "dev")  # DEFAULT_CLUSTER


def test_query_parameters_win(app, sender):
    post(application("deployed-kustomize"), params={"cluster": "east", "env": "prod"})
    _, obs = queued(sender)
    assert (obs.cluster, obs.env) == ("east", "prod")


def test_env_from_environments_and_ambiguity(install, sender):
    install({**SETTINGS, "ENVIRONMENTS": '{"qa": {"clusters": ["aks-dev-1"]}}'})
    post(application("sync-running-kustomize"))
    assert queued(sender)[1].env == "qa"
    install(
        {
            **SETTINGS,
            "DEFAULT_ENV": "",
            "ENVIRONMENTS": json.dumps(
                {"qa": {"clusters": ["aks-dev-1"]}, "uat": {"clusters": ["aks-dev-1"]}}
            ),
        }
    )
    status, reply, _ = post(application("sync-running-kustomize"))
    assert status == 422
    assert reply["fields"][0]["candidates"] == ["qa", "uat"]


def test_invalid_cluster_name_is_422(app, sender):
    status, reply, _ = post(application("deployed-kustomize"), params={"cluster": "a b"})
    assert status == 422
    assert reply["fields"][0]["field"] == "cluster"


def test_names_too_long_for_the_state_store_are_422(app, sender):
    doc = application("deployed-kustomize")
    doc["metadata"]["name"] = "n" * 253
    doc["metadata"]["namespace"] = "ns-" + "\u00e9" * 250  # escaped in keys: longer still
    status, reply, _ = post(doc)
    assert status == 422, reply
    assert "metadata.name" in {f["field"] for f in reply["fields"]}


def test_queue_failure_is_503_and_a_retry_is_the_same_message(app, sender):
    sender.fail_next = 1
    status, reply, headers = post(application("deployed-kustomize"))
    assert (status, headers["Retry-After"]) == (503, "5")
    assert "queue" in reply["error"]
    first = post(application("deployed-kustomize"))[1]["id"]
    again = post(application("deployed-kustomize"))[1]["id"]
    assert first == again
    assert len(sender.drain()) == 1
    assert sender.dropped_duplicates == 1


def test_incumbent_template_body_with_app_parameter(app, sender):
    status, reply, _ = post(INCUMBENT, params={"app": "guestbook", "namespace": "apps"})
    assert status == 202, reply
    _, obs = queued(sender)
    assert obs.obj == ObjectRef("Application", "apps", "guestbook")
    assert (obs.commit, obs.phase) == (A, Phase.SUCCEEDED)
    post({**INCUMBENT, "gitops_connector_config_name": "shop"})
    _, obs = queued(sender)
    assert obs.obj == ObjectRef("Application", "argocd", "shop")


def test_incumbent_body_rendered_without_an_operation(app, sender):
    body = {**INCUMBENT, "commitid": "<no value>", "phase": "<no value>", "health": "Degraded"}
    assert post(body, params={"app": "guestbook"})[0] == 202
    _, obs = queued(sender)
    assert (obs.commit, obs.phase) == (None, Phase.FAILED)


def test_incumbent_body_without_a_name_is_422(app, sender):
    status, reply, _ = post(INCUMBENT)
    assert status == 422
    assert "?app=" in reply["error"]
    status, _, _ = post(INCUMBENT, params={"app": "a/b"})
    assert status == 422
