"""The queue body: encoding (raw event bytes kept, cluster/env escaped when needed), decoding of
both message kinds and refusal of anything else, and the stable ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from connector.queue.envelope import (
    SERVICE_BUS_ID_LIMIT,
    Envelope,
    GateCheck,
    bounded,
    decode,
    encode,
    message_id,
    session_id,
    signed_message_id,
)
from connector.sources.flux.events import FluxEvent, InvolvedObject

RECEIVED = datetime(2026, 5, 14, 9, 12, 51, tzinfo=UTC)
# Go's json.Marshal escapes <, > and & (see the Flux webhook notes); the bytes stay as signed.
RAW = (
    b'{"involvedObject":{"kind":"Kustomization","namespace":"flux-system","name":"apps"},'
    b'"severity":"info","timestamp":"2026-05-14T09:12:50Z",'
    b'"message":"a \\u003c b \\u0026 c","reason":"Progressing"}'
)

NAMES = [
    pytest.param("aks-prod_1.weu", id="plain"),
    pytest.param("", id="empty"),
    pytest.param('we"ird', id="quote"),
    pytest.param("back\\slash", id="backslash"),
    pytest.param("new\nline", id="newline"),
    pytest.param("with space", id="space"),
    pytest.param("prod/eu", id="slash"),
    pytest.param("ünï", id="non-ascii"),
]


@pytest.mark.parametrize("name", NAMES)
def test_cluster_and_env_survive_the_round_trip(name):
    body = encode(name, name + "-env", RECEIVED, RAW)
    envelope = decode(body)
    assert isinstance(envelope, Envelope)
    assert (envelope.cluster, envelope.env) == (name, name + "-env")
    assert json.loads(body)["cluster"] == name


@pytest.mark.parametrize(
    ("value", "json_text"),
    [
        ("aks-prod_1.weu", '"aks-prod_1.weu"'),
        ('a"b', '"a\\"b"'),
        ("a b", '"a b"'),
        ("ü", '"\\u00fc"'),
    ],
)
def test_cluster_is_written_verbatim_only_when_plain(value, json_text):
    body = encode(value, "dev", RECEIVED, RAW)
    assert body.startswith(f'{{"v":1,"source":"flux","cluster":{json_text},"env":"dev",'.encode())


def test_encode_embeds_the_raw_event_bytes_unchanged():
    body = encode("c1", "dev", RECEIVED, RAW)
    assert body == (
        b'{"v":1,"source":"flux","cluster":"c1","env":"dev",'
        b'"receivedAt":"2026-05-14T09:12:51+00:00","event":' + RAW + b"}"
    )
    envelope = decode(body)
    assert isinstance(envelope, Envelope)
    assert envelope.version == 1
    assert envelope.received_at == RECEIVED
    assert envelope.source == "flux"
    assert FluxEvent.model_validate(envelope.event) == FluxEvent.model_validate_json(RAW)
    assert envelope.event["message"] == "a < b & c"


def test_version_defaults_to_one():
    body = json.dumps(
        {"cluster": "c", "env": "e", "receivedAt": "2026-05-14T09:12:51Z", "event": json.loads(RAW)}
    )
    envelope = decode(body)
    assert isinstance(envelope, Envelope)
    assert envelope.version == 1


def test_gate_check_round_trip():
    check = GateCheck(env="prod", gate="g1")
    assert decode(check.model_dump_json()) == check
    assert decode(check.model_dump_json().encode()) == GateCheck(env="prod", gate="g1")


def _envelope_with(**changes: object) -> str:
    data = json.loads(encode("c1", "dev", RECEIVED, RAW))
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not None})


REFUSED = [
    pytest.param(b"", id="empty"),
    pytest.param(b"[]", id="a-list"),
    pytest.param(b'"gate-check"', id="a-string"),
    pytest.param(_envelope_with(v=2), id="envelope-version-2"),
    pytest.param(_envelope_with(v="1"), id="envelope-version-as-text"),
    pytest.param(_envelope_with(cluster=None), id="envelope-without-cluster"),
    pytest.param(_envelope_with(receivedAt="2026-05-14T09:12:51"), id="naive-time"),
    pytest.param(json.dumps({"kind": "gate-check", "env": "prod"}), id="check-without-gate"),
    pytest.param(json.dumps({"kind": "gate-Check", "env": "p", "gate": "g"}), id="kind-case"),
    pytest.param(json.dumps({"kind": "gate-sweep", "env": "p", "gate": "g"}), id="other-kind"),
    pytest.param(json.dumps({"env": "prod", "gate": "g"}), id="check-without-kind"),
]


@pytest.mark.parametrize("body", REFUSED)
def test_anything_else_is_refused(body):
    with pytest.raises(ValidationError):
        decode(body)


def test_message_id_is_stable_and_unambiguous():
    """The deduplication key stored with each delivery: it must not change across releases."""
    assert message_id("c1", "dev", RAW) == (
        "a50525d3bf85a546ef3ce1ef87f02908fe1f69e5bd404972f4e5f085b89fbdf0"
    )
    assert message_id("ab", "c", RAW) != message_id("a", "bc", RAW)
    assert message_id("c1", "dev", RAW) != message_id("c1", "prod", RAW)
    assert message_id("c1", "dev", RAW) != message_id("c1", "dev", RAW + b" ")


MAC = bytes.fromhex("65b018549b1254e7226d1c08f9567ee45bc9de0fc4e7b1a40253f9a018b08be7")


def test_signed_message_id_is_stable_and_unambiguous():
    """From the verified MAC (HMAC of the bytes): stored with each delivery, like `message_id`."""
    signed = signed_message_id("c1", "dev", "sha256", MAC)
    assert signed == "33280fcf865909b4f3e1e10fd86852e985f1bf0f1a62a052e90b1e58e5780d15"
    assert len(signed) == 64
    assert signed == signed.lower()
    assert signed_message_id("ab", "c", "sha256", MAC) != signed_message_id(
        "a", "bc", "sha256", MAC
    )
    assert signed != signed_message_id("c1", "prod", "sha256", MAC)
    assert signed != signed_message_id("c1", "dev", "sha512", MAC)
    assert signed != signed_message_id("c1", "dev", "sha256", bytes([MAC[0] ^ 1]) + MAC[1:])
    assert signed != signed_message_id("c1", "dev", "sha256", MAC, source="argocd")
    # Another kind of id: an unsigned event whose bytes happened to be a MAC is not the same.
    assert signed != message_id("c1", "dev", MAC)


def test_session_id_names_cluster_and_object():
    obj = InvolvedObject(kind="Kustomization", namespace="flux-system", name="apps")
    assert (
        session_id("c1", obj.kind, obj.namespace, obj.name) == "c1/Kustomization/flux-system/apps"
    )


def test_session_id_is_bounded():
    obj = InvolvedObject(kind="Kustomization", namespace="n" * 200, name="apps")
    assert session_id("c1", obj.kind, obj.namespace, obj.name) == bounded(
        f"c1/Kustomization/{'n' * 200}/apps"
    )
    assert len(session_id("c1", obj.kind, obj.namespace, obj.name)) == SERVICE_BUS_ID_LIMIT


@pytest.mark.parametrize("length", [0, 1, 127, 128])
def test_bounded_keeps_short_values(length):
    assert bounded("x" * length) == "x" * length


def test_bounded_cuts_long_values_to_a_prefix_and_a_hash():
    value = "x" * 129
    cut = bounded(value)
    assert SERVICE_BUS_ID_LIMIT == 128
    assert len(cut) == 128
    assert cut == "x" * 103 + "~" + "0ec9eb33e74510bcdd1f2ea5"  # sha256 of the whole, 24 hex
    assert bounded("x" * 128 + "y") != cut


def test_bounded_with_its_own_limit():
    assert bounded("abcdefghij", 10) == "abcdefghij"
    cut = bounded("abcdefghijk", 30)
    assert cut == "abcdefghijk"
    long = bounded("a" * 40, 30)
    assert (len(long), long[:5], long[5]) == (30, "aaaaa", "~")
