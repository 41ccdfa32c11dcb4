"""Property-based: whatever arrives at /api/argocd, the answer is a clean 2xx/4xx, never a 5xx,
and a 202 is a message the processor reads."""

from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app
from connector.app.root import registry
from connector.app.root.registry import observation_keys as registered_keys
from connector.core.tracking import ObjectRef, Observation
from connector.storage.rows import key_problem
from tests.argocd import SECRET, application, argocd_request, basic, bearer, fixture_names
from tests.conftest import BASE_SETTINGS
from tests.recording_sender import RecordingSender
from tests.strategies import ORIGIN, STRETCHED_PART, junk_bodies

SETTINGS = {**BASE_SETTINGS, "ARGOCD_WEBHOOK_SECRET": SECRET, "AZDO_GITOPS_REPO": "manifests"}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=6,
)
# '/' and the C0 and C1 control characters (Kubernetes names contain none).
NOT_IN_OBJECT_PARTS = {"/", *map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0))}


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated_applications(draw: st.DrawFn) -> bytes:
    """A fixture with a few values replaced by any JSON, or removed; bare or wrapped."""
    doc = copy.deepcopy(application(draw(st.sampled_from(fixture_names()))))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES)
        if not _paths(doc):
            break
    body = {"app": doc} if draw(st.booleans()) else doc
    return json.dumps(body).encode()


AUTH = st.one_of(
    st.just(bearer()),
    st.just(basic()),
    st.builds(lambda t: {"Authorization": t}, st.text(max_size=60)),
    st.just({}),
)


def _post(body, headers, params, method):
    resp = function_app.argocd(argocd_request(body, headers=headers, params=params, method=method))
    assert 200 <= resp.status_code < 500, resp.get_body()
    payload = json.loads(resp.get_body())
    assert isinstance(payload, dict)
    return resp.status_code, payload


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(junk_bodies(), mutated_applications()),
    headers=AUTH,
    params=st.dictionaries(
        st.sampled_from(["cluster", "env", "app", "namespace"]), st.text(max_size=80)
    ),
    method=st.sampled_from(["POST", "POST", "POST", "GET"]),
)
def test_arbitrary_input_never_yields_a_5xx_and_every_202_is_readable(
    install, body, headers, params, method
):
    sender = RecordingSender()
    install(SETTINGS, sender=sender)
    status, payload = _post(body, headers, params, method)
    if status >= 400:
        assert payload["error"]
    queued = sender.drain()
    assert (status == 202) == bool(queued)
    for message in queued:
        observation = registry.read(message.body, message.message_id)
        assert isinstance(observation, Observation)
        assert observation.obj.kind == "Application"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(namespace=STRETCHED_PART, name=STRETCHED_PART, cluster=ORIGIN, env=ORIGIN)
def test_accepted_exactly_when_the_state_store_can_hold_it(install, namespace, name, cluster, env):
    sender = RecordingSender()
    install(SETTINGS, sender=sender)
    doc = application("deployed-kustomize")
    doc["metadata"].update(namespace=namespace, name=name)
    status, payload = _post(doc, bearer(), {"cluster": cluster, "env": env}, "POST")
    keys = registered_keys()(env, cluster, ObjectRef("Application", namespace, name))
    valid = all(0 < len(p) <= 253 and not NOT_IN_OBJECT_PARTS & set(p) for p in (namespace, name))
    fits = all(key_problem(k) is None for k in keys.values())
    if status == 202:
        assert valid
        assert fits
        [message] = sender.drain()
        observation = registry.read(message.body, message.message_id)
        assert isinstance(observation, Observation)
        assert observation.obj.name == name
    else:
        assert status == 422, payload
        assert payload["fields"]
        assert not (valid and fits), payload
