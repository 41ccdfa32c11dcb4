"""Table keys: any part round-trips, and no part can forge a separator or a forbidden character."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connector.store import key, unkey

FORBIDDEN = set("/\\#?") | {chr(c) for c in range(0x20)} | {chr(0x7F)}


@given(st.lists(st.text(max_size=30), min_size=1, max_size=6))
def test_keys_round_trip_and_stay_table_safe(parts):
    made = key(*parts)
    assert unkey(made) == parts
    assert not FORBIDDEN & set(made)
    assert made.count("|") == len(parts) - 1
