"""POST /api/flux through the registered function, with real azure.functions request objects."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

import function_app
from connector.queue import envelope
from connector.sources.flux.events import FluxEvent
from connector.sources.flux.signature import sign
from tests.conftest import BASE_SETTINGS, HMAC_KEY, all_event_names, event_bytes, flux_request


def call(req):
    resp = function_app.flux(req)
    return resp.status_code, json.loads(resp.get_body()), resp


@pytest.mark.parametrize("name", all_event_names())
def test_every_reference_event_shape_is_queued(install, sender, name):
    # GIVEN any event notification-controller can send, signed like generic-hmac does
    install()
    body = event_bytes(name)
    # WHEN it is posted
    status, reply, _ = call(flux_request(body))
    # THEN it is accepted once, with a deterministic id, and queued intact
    assert status == 202
    [message] = sender.messages
    assert reply == {"id": message.message_id}
    decoded = envelope.decode(message.body)
    assert isinstance(decoded, envelope.Envelope)
    mac = hmac.new(HMAC_KEY, body, hashlib.sha256).digest()
    assert message.message_id == envelope.signed_message_id(
        decoded.cluster, decoded.env, "sha256", mac
    )
    assert json.loads(message.body)["event"] == json.loads(body)
    event = FluxEvent.model_validate(decoded.event)
    obj = event.involved_object
    assert message.session_id == f"{decoded.cluster}/{obj.kind}/{obj.namespace}/{obj.name}"
    assert message.application_properties["kind"] == obj.kind
    assert message.application_properties["severity"] == event.severity


def test_cluster_and_env_come_from_metadata_then_query_then_settings(install, sender):
    install()
    call(flux_request(event_bytes("kustomization-with-cluster-env")))
    call(flux_request(event_bytes("kustomization-succeeded"), params={"cluster": "q", "env": "qe"}))
    call(flux_request(event_bytes("kustomization-health-failed")))
    origins = [
        (m.application_properties["cluster"], m.application_properties["env"])
        for m in sender.messages
    ]
    assert origins == [("aks-prod-weu-01", "production"), ("q", "qe"), ("dev-1", "dev")]
    assert sender.messages[0].session_id == "aks-prod-weu-01/Kustomization/flux-system/apps"


def test_a_query_contradicting_the_signed_metadata_is_403_and_nothing_is_queued(install, sender):
    # The query string is not signed: it may repeat the event's metadata, never change it.
    install()
    body = event_bytes("kustomization-with-cluster-env")
    status, reply, _ = call(flux_request(body, params={"cluster": "q"}))
    assert status == 403
    assert "'aks-prod-weu-01'" in reply["error"]
    assert "'q'" in reply["error"]
    status, _, _ = call(flux_request(body, params={"env": "dev"}))
    assert status == 403
    assert sender.messages == []
    assert call(flux_request(body, params={"cluster": "aks-prod-weu-01"}))[0] == 202


def test_missing_cluster_is_a_422_naming_it(install, sender):
    install({**BASE_SETTINGS, "DEFAULT_CLUSTER": ""})
    status, reply, _ = call(flux_request(event_bytes("kustomization-succeeded")))
    assert status == 422
    assert "cluster" in reply["error"]
    assert reply["fields"][0]["field"] == "metadata.cluster"
    assert sender.messages == []


def test_invalid_cluster_name_is_rejected(install, sender):
    install()
    status, reply, _ = call(
        flux_request(event_bytes("kustomization-succeeded"), params={"cluster": "a/b"})
    )
    assert status == 422
    assert "cluster" in reply["error"]
    assert sender.messages == []


def test_identical_deliveries_get_identical_ids(install, sender):
    install()
    body = event_bytes("kustomization-succeeded")
    ids = {call(flux_request(body))[1]["id"] for _ in range(3)}
    assert len(ids) == 1
    assert len(sender.messages) == 1
    assert sender.dropped_duplicates == 2
    # The same body from another cluster is a different observation.
    other = call(flux_request(body, params={"cluster": "dev-2"}))[1]["id"]
    assert other not in ids


@pytest.mark.parametrize(
    ("signature", "why"),
    [
        (None, "missing"),
        ("sha256=" + "0" * 64, "does not match"),
        ("sha256=zz", "not hexadecimal"),
        ("md5=abcd", "must be"),
        ("garbage", "must be"),
    ],
)
def test_bad_signatures_are_401_and_nothing_is_queued(install, sender, signature, why):
    install()
    headers = {} if signature is None else {"X-Signature": signature}
    status, reply, _ = call(
        flux_request(event_bytes("kustomization-succeeded"), key=None, headers=headers)
    )
    assert status == 401
    assert why in reply["error"]
    assert sender.messages == []


def test_signature_by_another_key_is_refused(install, sender):
    install()
    status, _, _ = call(flux_request(event_bytes("kustomization-succeeded"), key=b"other"))
    assert status == 401
    assert sender.messages == []


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_all_documented_algorithms_verify(install, sender, algorithm):
    install()
    body = event_bytes("kustomization-succeeded")
    sig = sign(HMAC_KEY, body, algorithm).upper().replace(algorithm.upper(), algorithm, 1)
    status, _, _ = call(flux_request(body, key=None, headers={"x-signature": sig}))
    assert status == 202


def test_rotated_keys_are_all_accepted(install, sender):
    install({**BASE_SETTINGS, "FLUX_HMAC_KEY": "old-key,new-key"})
    body = event_bytes("kustomization-succeeded")
    assert call(flux_request(body, key=b"old-key"))[0] == 202
    assert call(flux_request(body, key=b"new-key", params={"cluster": "c2"}))[0] == 202
    assert call(flux_request(body, key=b"nope", params={"cluster": "c3"}))[0] == 401


def test_flux_forwarder_test_vector():
    from connector.sources.flux.signature import verify

    body = event_bytes("flux-test-vector")
    verify(
        "sha256=65b018549b1254e7226d1c08f9567ee45bc9de0fc4e7b1a40253f9a018b08be7",
        body,
        [b"7152fed34dd6149a7c75a276c510da27cb6f82b0"],
    )


def test_signature_covers_raw_bytes_not_reencoded_json(install, sender):
    install()
    body = event_bytes("kustomization-reconciliation-failed")  # contains \u003c escapes
    reencoded = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert reencoded != body
    status, _, _ = call(
        flux_request(reencoded, key=None, headers={"X-Signature": sign(HMAC_KEY, body)})
    )
    assert status == 401


def test_the_id_of_a_signed_event_is_made_of_its_verified_mac(install, sender):
    install({**BASE_SETTINGS, "FLUX_HMAC_KEY": "old-key,new-key"})
    body = event_bytes("kustomization-succeeded")
    signature = sign(b"new-key", body)
    # The same delivery, however its header is spelled: one id, one message.
    first = call(flux_request(body, key=None, headers={"X-Signature": signature}))[1]["id"]
    again = call(flux_request(body, key=None, headers={"X-Signature": signature.upper()}))
    assert again[1]["id"] == first
    mac = hmac.new(b"new-key", body, hashlib.sha256).digest()
    assert first == envelope.signed_message_id("dev-1", "dev", "sha256", mac)
    # Another secret (a second Provider) or algorithm makes another MAC, hence another message.
    other_key = call(flux_request(body, key=b"old-key"))[1]["id"]
    sha512 = call(
        flux_request(body, key=None, headers={"X-Signature": sign(b"new-key", body, "sha512")})
    )
    assert len({first, other_key, sha512[1]["id"]}) == 3
    assert len(sender.messages) == 3


def test_an_unsigned_event_keeps_the_id_of_its_bytes(install, sender):
    install({**BASE_SETTINGS, "FLUX_HMAC_KEY": "", "FLUX_ALLOW_UNSIGNED": "true"})
    body = event_bytes("kustomization-succeeded")
    status, reply, _ = call(flux_request(body, key=None))
    assert status == 202
    assert reply["id"] == envelope.message_id("dev-1", "dev", body)


def test_unsigned_accepted_only_when_allowed(install, sender):
    body = event_bytes("kustomization-succeeded")
    install({**BASE_SETTINGS, "FLUX_HMAC_KEY": "", "FLUX_ALLOW_UNSIGNED": "true"})
    assert call(flux_request(body, key=None))[0] == 202
    install({**BASE_SETTINGS, "FLUX_ALLOW_UNSIGNED": "true"})
    # With a key configured the opt-in is no downgrade: a missing signature is refused as a
    # wrong one is (before, an event without X-Signature was accepted).
    assert call(flux_request(body, key=b"wrong", params={"cluster": "c2"}))[0] == 401
    status, reply, _ = call(flux_request(body, key=None, params={"cluster": "c3"}))
    assert (status, reply["error"]) == (401, "unauthorized: missing X-Signature header")
    assert call(flux_request(body, params={"cluster": "c4"}))[0] == 202
    assert [m.application_properties["cluster"] for m in sender.messages] == ["dev-1", "c4"]


def test_without_key_or_opt_in_the_app_refuses_and_says_why(install, sender):
    install({**BASE_SETTINGS, "FLUX_HMAC_KEY": ""})
    status, reply, _resp = call(flux_request(event_bytes("kustomization-succeeded")))
    assert status == 503
    assert "FLUX_CLUSTER_KEYS" in reply["error"]
    assert "FLUX_ALLOW_UNSIGNED" in reply["error"]
    assert sender.messages == []


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"not json", 400, "not valid JSON"),
        (b"", 400, "not valid JSON"),
        (b"[1,2]", 400, "JSON object"),
        (b'"text"', 400, "JSON object"),
        (b"{}", 422, "involvedObject"),
        (
            b'{"involvedObject":{"kind":"K","namespace":"n"},"severity":"info",'
            b'"timestamp":"2026-05-14T09:12:50Z","message":"m","reason":"r"}',
            422,
            "involvedObject.name",
        ),
        (
            b'{"involvedObject":{"kind":"K","namespace":"n","name":"x"},"severity":"info",'
            b'"timestamp":"yesterday","message":"m","reason":"r"}',
            422,
            "timestamp",
        ),
        (
            b'{"involvedObject":{"kind":"K","namespace":"n","name":"x"},"severity":"info",'
            b'"timestamp":"2026-05-14T09:12:50Z","message":"m","reason":"r","metadata":{"a":1}}',
            422,
            "metadata.a",
        ),
    ],
)
def test_bad_bodies_get_a_clear_4xx(install, sender, body, status, needle):
    install()
    got, reply, resp = call(flux_request(body))
    assert got == status
    assert needle in reply["error"]
    assert resp.mimetype == "application/json"
    assert sender.messages == []


def test_huge_body_is_413(install, sender):
    install()
    body = b'{"message":"' + b"x" * (1024 * 1024) + b'"}'
    status, _reply, _ = call(flux_request(body))
    assert status == 413
    assert sender.messages == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(install, sender, method):
    install()
    status, reply, _ = call(flux_request(event_bytes("kustomization-succeeded"), method=method))
    assert status == 405
    assert "POST" in reply["error"]


def test_queue_failure_is_503_with_retry_after_and_nothing_accepted(install, sender):
    install()
    sender.fail_next = 1
    body = event_bytes("kustomization-succeeded")
    status, reply, resp = call(flux_request(body))
    assert status == 503
    assert resp.headers["Retry-After"] == "5"
    assert "id" not in reply
    assert sender.messages == []
    # Flux's retry then succeeds with the same id.
    status, reply, _ = call(flux_request(body))
    assert status == 202
    assert len(sender.messages) == 1


def test_unconfigured_service_bus_is_503_naming_the_setting(sender):
    from connector.app.root import bootstrap
    from connector.app.root.bootstrap import Container
    from connector.settings import Settings

    bootstrap.override(Container(Settings.from_env(BASE_SETTINGS)))
    try:
        status, reply, _ = call(flux_request(event_bytes("kustomization-succeeded")))
    finally:
        bootstrap.override(None)
    assert status == 503
    assert "ServiceBusConnection" in reply["error"]


def test_invalid_settings_are_503_naming_the_setting(install):
    from connector.app.root import bootstrap

    bootstrap.override(None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GATE_TIMEOUT_MINUTES", "soon")
        status, reply, _ = call(flux_request(event_bytes("kustomization-succeeded")))
    bootstrap.override(None)
    assert status == 503
    assert "GATE_TIMEOUT_MINUTES" in reply["error"]
    assert "soon" not in reply["error"]


def test_trace_context_is_carried_in_application_properties(install, sender):
    from opentelemetry.sdk.trace import TracerProvider

    install()
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("webhook") as span:
        call(flux_request(event_bytes("kustomization-succeeded")))
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert trace_id in sender.messages[0].application_properties["traceparent"]


def test_long_names_are_shortened_with_a_hash_not_truncated():
    from connector.sources.flux.events import InvolvedObject

    long_a = InvolvedObject(kind="Kustomization", namespace="n", name="a" * 200 + "1")
    long_b = InvolvedObject(kind="Kustomization", namespace="n", name="a" * 200 + "2")
    sid_a = envelope.session_id("c", long_a.kind, long_a.namespace, long_a.name)
    sid_b = envelope.session_id("c", long_b.kind, long_b.namespace, long_b.name)
    assert len(sid_a) == 128
    assert len(sid_b) == 128
    assert sid_a != sid_b
    assert sid_a.startswith("c/Kustomization/n/aaaa")


def test_health_is_anonymous_and_reveals_no_config(install):
    install()
    import azure.functions as func

    resp = function_app.health(func.HttpRequest(method="GET", url="/api/health", body=b""))
    assert resp.status_code == 200
    payload = json.loads(resp.get_body())
    assert payload["status"] == "ok"
    assert payload["version"]
    assert HMAC_KEY.decode() not in resp.get_body().decode()
