"""POST /api/flux refuses (422, naming the field) what the state store could not hold, so that a
202 always means the event will be processed; the environment comes from `ENVIRONMENTS` when the
event names none; every 503 carries Retry-After."""

from __future__ import annotations

import json

import pytest

import function_app
from tests.conftest import BASE_SETTINGS, event_bytes, flux_request
from tests.flux_encoding import go_json
from tests.world import kustomization

A = "a" * 40


def post(install_or_world, event: dict, **params: str):
    resp = function_app.flux(flux_request(go_json(event), params=params))
    return resp.status_code, json.loads(resp.get_body()), resp


def event_of(kind: str, namespace: str, name: str, reason: str = "ReconciliationSucceeded") -> dict:
    event = kustomization(A, reason, name=name, namespace=namespace)
    event["involvedObject"]["kind"] = kind
    return event


def fields(reply: dict) -> set[str]:
    return {f["field"] for f in reply.get("fields", [])}


@pytest.mark.parametrize(
    ("kind", "namespace", "name"),
    [
        ("K" * 253, "n" * 253, "a" * 253),  # each within Kubernetes' 253, together too long
        ("Kustomization", "flux-system", "ü" * 200),  # 6 key bytes per character once escaped
        ("Kustomization", "名前空間" * 30, "アプリ" * 40),
        ("Kustomization", "#" * 200, "?" * 200),  # escaped characters triple in length
    ],
    ids=["253-each", "long-non-ascii-name", "cjk", "escaped"],
)
def test_keys_over_the_table_limit_are_422_naming_the_fields(
    install, sender, kind, namespace, name
):
    install()
    status, reply, _ = post(install, event_of(kind, namespace, name))
    assert status == 422, reply
    assert "state store" in reply["error"]
    assert fields(reply) & {"involvedObject.namespace", "involvedObject.name"}
    assert all("Table key" in f["problem"] for f in reply["fields"])
    assert sender.messages == []


def test_a_long_cluster_with_long_names_is_named_too(install, sender):
    install()
    event = event_of("K" * 200, "n" * 200, "a" * 100)
    status, reply, _ = post(install, event, cluster="c" * 63, env="e" * 63)
    assert status == 422
    assert {"metadata.cluster", "involvedObject.kind"} <= fields(reply)
    assert sender.messages == []


def test_a_reason_over_the_table_property_limit_is_422(install, sender):
    install()
    status, reply, _ = post(install, event_of("Kustomization", "ns", "app", "R" * 40_000))
    assert status == 422
    assert fields(reply) == {"reason"}
    assert sender.messages == []


@pytest.mark.parametrize("part", ["kind", "namespace", "name"])
@pytest.mark.parametrize("bad", ["a/b", "tab\there", "nul\x00"])
def test_object_parts_with_a_slash_or_control_characters_are_422(install, sender, part, bad):
    install()
    event = event_of("Kustomization", "ns", "app")
    event["involvedObject"][part] = bad
    status, reply, _ = post(install, event)
    assert status == 422
    assert f"involvedObject.{part}" in fields(reply)
    assert sender.messages == []


# The longest names that fit: with cluster dev-1 and env dev, the object status row
# `status|azdo|dev-1%2F<kind>%2F<ns>%2F<name>` is 7 + 5 + 5 + 3 + 253 + 3 + n + 3 + 200 = 479 + n
# characters, and a Table key holds at most 512 (1 KiB of UTF-16).
FITTING_NAMESPACE = 33


@pytest.mark.azurite
def test_the_largest_accepted_event_is_processed_end_to_end(world):
    # GIVEN an event whose longest Table key is exactly at the limit
    event = event_of("K" * 253, "n" * FITTING_NAMESPACE, "a" * 200)
    # WHEN it is posted and the queued message processed (Azurite enforces the key limit)
    assert world.post(event) == 202
    assert world.deliver_queued() == 1
    # THEN its state, pointer and statuses were all written
    states = world.store.commit_states(A, "dev")
    [(obj, state)] = states[("dev", "dev-1")].items()
    assert obj.namespace == "n" * FITTING_NAMESPACE
    assert state.phase.value == "succeeded"
    assert set(world.store.status_records(A)) == {f"dev-1/{obj}", "env/dev"}


def test_one_character_more_is_refused(install, sender):
    install()
    event = event_of("K" * 253, "n" * (FITTING_NAMESPACE + 1), "a" * 200)
    status, reply, _ = post(install, event, cluster="dev-1", env="dev")
    assert status == 422
    assert "object status row" in json.dumps(reply)
    assert sender.messages == []


# --- environment from ENVIRONMENTS ----------------------------------------------------------------

ENVIRONMENTS = json.dumps(
    {
        "staging": {"clusters": ["stg-1"]},
        "prod": {"clusters": ["prod-eu", "shared"]},
        "qa": {"clusters": ["shared"]},
    }
)


def envs_of(sender) -> list[tuple[str, str]]:
    return [
        (m.application_properties["cluster"], m.application_properties["env"])
        for m in sender.messages
    ]


def test_a_cluster_listed_in_one_environment_gets_it(install, sender):
    install({**BASE_SETTINGS, "DEFAULT_ENV": "", "ENVIRONMENTS": ENVIRONMENTS})
    body = event_bytes("kustomization-succeeded")
    for cluster in ("stg-1", "prod-eu"):
        resp = function_app.flux(flux_request(body, params={"cluster": cluster}))
        assert resp.status_code == 202, resp.get_body()
    assert envs_of(sender) == [("stg-1", "staging"), ("prod-eu", "prod")]


def test_environments_win_over_default_env_and_an_explicit_env_wins_over_both(install, sender):
    install({**BASE_SETTINGS, "DEFAULT_ENV": "dev", "ENVIRONMENTS": ENVIRONMENTS})
    body = event_bytes("kustomization-succeeded")
    function_app.flux(flux_request(body, params={"cluster": "stg-1"}))
    function_app.flux(flux_request(body, params={"cluster": "unlisted", "env": "other"}))
    function_app.flux(flux_request(body, params={"cluster": "unlisted"}))
    assert envs_of(sender) == [("stg-1", "staging"), ("unlisted", "other"), ("unlisted", "dev")]
    # A listed cluster reports only for its own environment.
    resp = function_app.flux(flux_request(body, params={"cluster": "stg-1", "env": "other"}))
    assert resp.status_code == 403
    assert "'stg-1' reports only for env staging" in json.loads(resp.get_body())["error"]
    assert len(sender.messages) == 3


def test_a_cluster_listed_in_several_environments_is_422_naming_them(install, sender):
    install({**BASE_SETTINGS, "DEFAULT_ENV": "", "ENVIRONMENTS": ENVIRONMENTS})
    resp = function_app.flux(
        flux_request(event_bytes("kustomization-succeeded"), params={"cluster": "shared"})
    )
    reply = json.loads(resp.get_body())
    assert resp.status_code == 422
    assert "several" in reply["error"]
    assert "prod" in reply["error"]
    assert "qa" in reply["error"]
    assert reply["fields"][0]["field"] == "metadata.env"
    assert sender.messages == []
    # Naming the environment resolves it; so does DEFAULT_ENV when it is one of them.
    ok = function_app.flux(
        flux_request(
            event_bytes("kustomization-succeeded"), params={"cluster": "shared", "env": "qa"}
        )
    )
    assert ok.status_code == 202
    install({**BASE_SETTINGS, "DEFAULT_ENV": "prod", "ENVIRONMENTS": ENVIRONMENTS})
    ok = function_app.flux(
        flux_request(event_bytes("kustomization-health-failed"), params={"cluster": "shared"})
    )
    assert ok.status_code == 202
    assert envs_of(sender)[-1] == ("shared", "prod")


def test_a_cluster_in_no_environment_without_default_is_still_422(install, sender):
    install({**BASE_SETTINGS, "DEFAULT_ENV": "", "ENVIRONMENTS": ENVIRONMENTS})
    resp = function_app.flux(
        flux_request(event_bytes("kustomization-succeeded"), params={"cluster": "unlisted"})
    )
    assert resp.status_code == 422
    assert json.loads(resp.get_body())["fields"][0]["field"] == "metadata.env"


# --- Retry-After on every 503 ---------------------------------------------------------------------


def test_unconfigured_webhook_503_carries_retry_after(install, sender):
    install({**BASE_SETTINGS, "FLUX_HMAC_KEY": ""})
    resp = function_app.flux(flux_request(event_bytes("kustomization-succeeded")))
    assert resp.status_code == 503
    assert int(resp.headers["Retry-After"]) > 0
    assert sender.messages == []


@pytest.mark.azurite
def test_unconfigured_service_hook_503_carries_retry_after(world):
    import azure.functions as func

    req = func.HttpRequest(method="POST", url="/api/devops/events", headers={}, body=b"{}")
    resp = function_app.devops_events(req)
    assert resp.status_code == 503
    assert "AZDO_HOOK_SECRET" in json.loads(resp.get_body())["error"]
    assert int(resp.headers["Retry-After"]) > 0
