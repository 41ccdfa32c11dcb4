"""Table keys: any part round-trips, and no part can forge a separator or a forbidden character."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.app.root.registry import observation_keys as registered_keys
from connector.core.tracking import EnvironmentResult, ObjectRef, ObjectState, Phase
from connector.outputs.sinks import COMMIT_STATUS_SINK
from connector.outputs.statuses import environment_status, object_status
from connector.storage.rows import (
    entity_problems,
    entity_size,
    key,
    key_problem,
    property_problem,
    unkey,
)

NOW = datetime(2026, 5, 14, tzinfo=UTC)

FORBIDDEN = set("/\\#?") | {chr(c) for c in range(0x20)} | {chr(0x7F)}


@given(st.lists(st.text(max_size=30), min_size=1, max_size=6))
def test_keys_round_trip_and_stay_table_safe(parts):
    made = key(*parts)
    assert unkey(made) == parts
    assert not FORBIDDEN & set(made)
    assert made.count("|") == len(parts) - 1


@pytest.mark.parametrize(
    ("value", "fits"),
    [
        ("a" * 512, True),
        ("a" * 513, False),  # 1 KiB of UTF-16 is 512 characters
        ("ü" * 512, True),
        ("😀" * 256, True),  # a surrogate pair counts twice
        ("😀" * 257, False),
        ("a/b", False),
        ("a\\b", False),
        ("a#b", False),
        ("a?b", False),
        ("a\x1fb", False),
        ("a\x85b", False),
        ("a|b%2F:@~", True),
    ],
)
def test_key_limits(value, fits):
    assert (key_problem(value) is None) == fits


def test_property_limit_is_32k_utf16_characters():
    assert property_problem("x" * 32 * 1024) is None
    assert property_problem("x" * (32 * 1024 + 1)) is not None
    assert property_problem("😀" * 16 * 1024) is None
    assert property_problem("😀" * (16 * 1024 + 1)) is not None


def test_entity_size_follows_the_published_formula():
    entity = {"PartitionKey": "pk", "RowKey": "rk", "s": "abc", "n": 5, "b": True}
    # 4 + 2*(2+2) + (8 + 2 + 4 + 6) + (8 + 2 + 8) + (8 + 2 + 1)
    assert entity_size(entity) == 4 + 8 + 20 + 18 + 11
    assert entity_problems(entity) == []
    big = {"PartitionKey": "p", "RowKey": "r", **{f"p{i}": "x" * 30_000 for i in range(20)}}
    assert [name for name, _ in entity_problems(big)] == ["entity"]
    assert [name for name, _ in entity_problems({"PartitionKey": "a/b", "RowKey": "r"})] == [
        "PartitionKey"
    ]


@given(st.text(max_size=60), st.text(max_size=60), st.text(min_size=1, max_size=60))
def test_observation_keys_are_the_keys_the_store_and_statuses_build(cluster, env, name):
    # The status ledger is keyed by the status context; a drift here would let ingest accept
    # events whose status rows cannot be written.
    obj = ObjectRef("Kustomization", "flux-system", name)
    state = ObjectState(phase=Phase.SUCCEEDED, reason="r", summary="s", time=NOW, first_seen=NOW)
    result = EnvironmentResult(env=env, phase=Phase.PROGRESSING, clusters=())
    keys = registered_keys()(env, cluster, obj)
    sink = COMMIT_STATUS_SINK
    assert keys["object status row"] == key(
        "status", sink, object_status(cluster, obj, state).context
    )
    assert keys["environment status row"] == key("status", sink, environment_status(result).context)
    assert keys["object row"] == key("obj", env, cluster, obj.kind, obj.namespace, obj.name)
    assert keys["pointer partition"] == key(env, cluster)
    assert keys["pointer row"] == key(obj.kind, obj.namespace, obj.name)
