"""`core.gate_transitions`, table-driven: each transition from each state that matters, compared
with the whole gate it returns (or None: nothing to write), and the claim timeout's exact
boundary."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from connector.core import gate_transitions as t
from connector.core.gates import Gate, GateState, PlanRef

T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
PLAN = PlanRef("https://dev.azure.com/org/", "p", "build", "plan", "job", "tl", "task")
GATE = Gate(
    id="g",
    plan=PLAN,
    environment="prod",
    created_at=T0,
    deadline=T0 + timedelta(hours=2),
    auth_token="job-token",
)
COMPLETING = replace(
    GATE,
    state=GateState.COMPLETING,
    result="succeeded",
    result_reason="prod healthy",
    claimed_at=T0,
    completion_posts=1,
)
A, B = "a" * 40, "b" * 40


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


TICK = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("gate", "expected"),
    [
        (
            GATE,
            replace(
                GATE,
                state=GateState.COMPLETING,
                result="failed",
                result_reason="why",
                claimed_at=at(5),
            ),
        ),
        (COMPLETING, None),  # another instance claimed it first
        (replace(GATE, state=GateState.SUCCEEDED), None),
        (replace(GATE, state=GateState.FAILED), None),
    ],
)
def test_claim_only_from_waiting(gate, expected):
    assert t.claim(gate, "failed", "why", at(5)) == expected


@pytest.mark.parametrize(
    ("seen", "now_seen", "expected"),
    [(False, True, True), (True, False, True), (False, False, False)],
)
def test_claim_records_a_descendant_the_decision_followed(seen, now_seen, expected):
    claimed = t.claim(replace(GATE, descendant_seen=seen), "succeeded", "ok", T0, now_seen)
    assert claimed is not None
    assert claimed.descendant_seen is expected


@pytest.mark.parametrize(
    ("claimed_at", "now", "stale"),
    [
        (None, T0, True),  # released
        (T0, at(2), True),  # exactly two minutes
        (T0, at(2) - TICK, False),
        (T0, at(30), True),
        (T0, T0, False),
    ],
)
def test_a_claim_is_stale_after_two_minutes_or_once_released(claimed_at, now, stale):
    gate = replace(COMPLETING, claimed_at=claimed_at)
    assert t.claim_is_stale(gate, now) is stale
    assert t.reclaim(gate, now) == (replace(gate, claimed_at=now) if stale else None)


@pytest.mark.parametrize("state", [GateState.WAITING, GateState.SUCCEEDED, GateState.FAILED])
def test_only_a_completing_gate_is_reclaimed(state):
    assert t.reclaim(replace(COMPLETING, state=state, claimed_at=None), at(9)) is None


@pytest.mark.parametrize(
    ("claimed_at", "expected"),
    [(T0, replace(COMPLETING, claimed_at=None)), (None, None)],
)
def test_release_claim(claimed_at, expected):
    assert t.release_claim(replace(COMPLETING, claimed_at=claimed_at)) == expected


@pytest.mark.parametrize(
    ("posts", "log_id", "created", "expected_posts", "expected_log"),
    [
        (0, 0, 0, 1, 0),  # no log (none created, or its creation refused)
        (0, 0, 7, 1, 7),  # the log `conclude` created is recorded with the count
        (1, 3, 7, 2, 3),  # the first log stays
        (1, 3, 0, 2, 3),
    ],
)
def test_count_post(posts, log_id, created, expected_posts, expected_log):
    gate = replace(COMPLETING, completion_posts=posts, log_id=log_id)
    expected = replace(gate, completion_posts=expected_posts, log_id=expected_log)
    assert t.count_post(gate, created) == expected


@pytest.mark.parametrize("log_id", [0, 4])
def test_count_post_without_a_new_log(log_id):
    gate = replace(COMPLETING, completion_posts=0, log_id=log_id)
    assert t.count_post(gate) == replace(gate, completion_posts=1)


@pytest.mark.parametrize(
    ("posts", "wait", "expected_posts", "expected_claim"),
    [
        (1, timedelta(minutes=5), 0, at(10 + 3)),  # held until the Retry-After has passed
        (2, timedelta(minutes=2), 1, at(10)),  # exactly the claim timeout: from now
        (1, timedelta(minutes=2) + TICK, 0, at(10) + TICK),
        (0, timedelta(seconds=5), 0, at(10)),  # shorter than the timeout; never below 0 posts
    ],
)
def test_throttled(posts, wait, expected_posts, expected_claim):
    gate = replace(COMPLETING, completion_posts=posts)
    expected = replace(gate, completion_posts=expected_posts, claimed_at=expected_claim)
    assert t.throttled(gate, at(10), wait) == expected


@pytest.mark.parametrize(
    ("result", "state"),
    [
        ("succeeded", GateState.SUCCEEDED),
        ("failed", GateState.FAILED),
        ("", GateState.FAILED),
    ],
)
def test_finish_records_the_result_and_drops_the_job_token(result, state):
    expected = replace(COMPLETING, state=state, result_reason="posted", auth_token="")
    assert t.finish(COMPLETING, result, "posted") == expected


def test_reopen_after_trial_waits_again_with_what_trial_mode_would_have_done():
    gate = replace(COMPLETING, completion_posts=2, progress="p", log_id=5)
    expected = replace(
        gate,
        state=GateState.WAITING,
        result="",
        result_reason="",
        claimed_at=None,
        completion_posts=0,
        trial="would complete succeeded: prod healthy",
    )
    assert t.reopen_after_trial(gate, "would complete succeeded: prod healthy") == expected


@pytest.mark.parametrize(
    ("stored", "told", "expected"),
    [
        ("p1", "p1", replace(GATE, progress="p2", logged=("l1", "l2"))),
        ("p9", "p1", None),  # another evaluation told this part already
        ("", "", replace(GATE, progress="p2", logged=("l1", "l2"))),
    ],
)
def test_record_progress_only_over_what_was_told(stored, told, expected):
    gate = replace(GATE, progress=stored, logged=("l0",))
    assert t.record_progress(gate, told, "p2", ("l1", "l2")) == expected


@pytest.mark.parametrize(("log_id", "expected"), [(0, replace(GATE, log_id=8)), (3, None)])
def test_record_log_id_keeps_the_first(log_id, expected):
    assert t.record_log_id(replace(GATE, log_id=log_id), 8) == expected


@pytest.mark.parametrize(
    ("seen", "expected"), [(False, replace(GATE, descendant_seen=True)), (True, None)]
)
def test_see_descendant(seen, expected):
    assert t.see_descendant(replace(GATE, descendant_seen=seen)) == expected


@pytest.mark.parametrize(("commit", "expected"), [(None, replace(GATE, commit=B)), (A, None)])
def test_learn_commit_keeps_the_first(commit, expected):
    assert t.learn_commit(replace(GATE, commit=commit), B) == expected


@pytest.mark.parametrize(("hld", "expected"), [(None, replace(GATE, hld_commit=B)), (A, None)])
def test_learn_hld_commit_keeps_the_first(hld, expected):
    assert t.learn_hld_commit(replace(GATE, hld_commit=hld), B) == expected


@pytest.mark.parametrize(
    ("commit", "hld", "expected"),
    [
        (A, None, replace(GATE, hld_commit=A, commit=None)),
        (A, B, None),  # knows both already
        (None, B, None),
        (None, None, None),
    ],
)
def test_move_commit_to_hld_moves_a_registered_commit_to_the_hld_commit(commit, hld, expected):
    assert t.move_commit_to_hld(replace(GATE, commit=commit, hld_commit=hld)) == expected


@pytest.mark.parametrize(
    ("commit", "hld", "problem", "expected"),
    [
        (A, B, "", None),  # learned already, nothing wrong
        (A, B, "unlinked", replace(GATE, commit=A, hld_commit=B)),  # the problem is over
        (None, B, "", replace(GATE, commit="c" * 40, hld_commit=B)),
        (A, None, "", replace(GATE, commit=A, hld_commit="d" * 40)),
        (None, None, "unlinked", replace(GATE, commit="c" * 40, hld_commit="d" * 40)),
    ],
)
def test_learn_link(commit, hld, problem, expected):
    gate = replace(GATE, commit=commit, hld_commit=hld, link_problem=problem)
    assert t.learn_link(gate, "c" * 40, "d" * 40) == expected


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("", replace(GATE, link_problem="no HLD trailer")),
        ("other", replace(GATE, link_problem="no HLD trailer")),
        ("no HLD trailer", None),  # recorded once
    ],
)
def test_record_link_problem_once(stored, expected):
    assert t.record_link_problem(replace(GATE, link_problem=stored), "no HLD trailer") == expected


REGISTERED = replace(GATE, commit=A, auth_token="new-token", created_at=at(1))
PR_PROPERTY = replace(
    GATE,
    source="pr-property",
    pull_request_id=42,
    repository="app",
    state=GateState.COMPLETING,
    result="failed",
    result_reason="abandoned",
    claimed_at=at(3),
    hld_commit=B,
)


@pytest.mark.parametrize(
    ("stored", "gate", "expected"),
    [
        (None, REGISTERED, REGISTERED),  # new
        (replace(GATE, state=GateState.SUCCEEDED), REGISTERED, REGISTERED),  # a re-run waits
        (replace(GATE, state=GateState.FAILED), REGISTERED, REGISTERED),
        (GATE, REGISTERED, None),  # open: the stored one stays
        (replace(GATE, state=GateState.COMPLETING), REGISTERED, None),
        (replace(GATE, state=GateState.FAILED, source="pr-property"), PR_PROPERTY, None),
        (replace(GATE, source="pr-property"), PR_PROPERTY, None),
        (REGISTERED, PR_PROPERTY, None),  # a callback never replaces a registration
        (
            PR_PROPERTY,  # a registration fills in what the callback's gate did not know
            REGISTERED,
            replace(
                REGISTERED,
                state=GateState.COMPLETING,
                result="failed",
                result_reason="abandoned",
                claimed_at=at(3),
                hld_commit=B,
                pull_request_id=42,
            ),
        ),
        (
            replace(PR_PROPERTY, commit=B, hld_commit=None),  # what the registration says wins
            replace(REGISTERED, hld_commit=A, pull_request_id=7),
            replace(
                REGISTERED,
                state=GateState.COMPLETING,
                result="failed",
                result_reason="abandoned",
                claimed_at=at(3),
                hld_commit=A,
                pull_request_id=7,
            ),
        ),
        (
            replace(PR_PROPERTY, commit=B, state=GateState.WAITING, result="", claimed_at=None),
            replace(REGISTERED, commit=None),
            replace(
                REGISTERED, commit=B, hld_commit=B, pull_request_id=42, result_reason="abandoned"
            ),
        ),
    ],
)
def test_register(stored, gate, expected):
    assert t.register(stored, gate) == expected
