"""Property-based: whatever arrives at /api/flux, the answer is a clean 2xx/4xx, never a 5xx."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app
from connector.signature import sign
from tests.conftest import HMAC_KEY, flux_request
from tests.recording_sender import RecordingSender
from tests.strategies import flux_events, junk_bodies, signatures


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
