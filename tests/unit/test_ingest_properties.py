"""Property-based: whatever arrives at /api/flux, the answer is a clean 2xx/4xx, never a 5xx."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app
from connector.app.root.registry import observation_keys as registered_keys
from connector.core.tracking import ObjectRef
from connector.queue import envelope
from connector.sources.flux.signature import sign
from connector.storage.rows import key_problem, property_problem
from tests.conftest import HMAC_KEY, flux_request
from tests.flux_encoding import go_json
from tests.recording_sender import RecordingSender
from tests.strategies import ORIGIN, flux_events, junk_bodies, signatures, stretched_event_dicts


def _post(body: bytes, headers: dict[str, str], params: dict[str, str], method: str):
    resp = function_app.flux(
        flux_request(body, key=None, headers=headers, params=params, method=method)
    )
    assert 200 <= resp.status_code < 500, resp.get_body()
    payload = json.loads(resp.get_body())
    assert isinstance(payload, dict)
    return resp.status_code, payload


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(junk_bodies(), flux_events()),
    signature=signatures(),
    params=st.dictionaries(st.sampled_from(["cluster", "env", "code"]), st.text(max_size=80)),
    method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
)
def test_arbitrary_input_never_yields_a_5xx(install, body, signature, params, method):
    sender = RecordingSender()  # fresh per example: its duplicate window must not span examples
    install(sender=sender)
    headers = {} if signature is None else {"X-Signature": signature}
    status, payload = _post(body, headers, params, method)
    if status >= 400:
        assert payload["error"]
    assert (status == 202) == bool(sender.drain())


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=flux_events())
def test_any_valid_signed_event_is_accepted(install, body):
    sender = RecordingSender()
    install(sender=sender)
    status, payload = _post(body, {"X-Signature": sign(HMAC_KEY, body)}, {}, "POST")
    assert status == 202, payload
    [message] = sender.drain()
    assert payload["id"] == message.message_id


# '/' and the C0 and C1 control characters (Kubernetes names contain none).
NOT_IN_OBJECT_PARTS = {"/", *map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0))}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(event=stretched_event_dicts(), cluster=ORIGIN, env=ORIGIN)
def test_every_accepted_event_fits_the_state_store(install, event, cluster, env):
    # GIVEN any signed event, whatever its object names and origin
    sender = RecordingSender()
    install(sender=sender)
    body = go_json(event)
    # WHEN it is posted
    status, payload = _post(
        body, {"X-Signature": sign(HMAC_KEY, body)}, {"cluster": cluster, "env": env}, "POST"
    )
    # THEN it is accepted exactly when every Table key and the stored reason fit, and a refusal
    # is a 422 naming a field
    obj = event["involvedObject"]
    keys = registered_keys()(env, cluster, ObjectRef(obj["kind"], obj["namespace"], obj["name"]))
    parts_valid = all(
        0 < len(obj[p]) <= 253 and not NOT_IN_OBJECT_PARTS & set(obj[p])
        for p in ("kind", "namespace", "name")
    )
    fits = all(key_problem(k) is None for k in keys.values())
    fits = fits and property_problem(event["reason"]) is None
    if status == 202:
        [message] = sender.drain()
        decoded = envelope.decode(message.body)
        assert isinstance(decoded, envelope.Envelope)
        assert fits
    else:
        assert status == 422, payload
        assert payload["fields"]
        assert not (fits and parts_valid), payload
