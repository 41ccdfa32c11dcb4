"""Every change of a stored gate, as a named pure function: the gate's state machine.

- `claim`: waiting → completing (one instance wins, and only it posts TaskCompleted);
- `count_post`, `throttled`, `release_claim`, `reclaim`: while completing;
- `finish`: completing → succeeded | failed; `reopen_after_trial`: completing → waiting;
- `register`: a registration against the gate stored under its id (`GateStore.add`).

Beside the states, a waiting gate learns facts (its manifests and HLD commits, a link problem, a
descendant seen) and records what its task was told (progress, the stored log's id).

Each transition takes the gate as stored (and the values it needs, `now` where time matters) and
returns the new gate, or None when nothing changes: `GateStore.update` then writes nothing. A
transition is applied to the row as read, inside the store's conditional write, so that a
condition (`claim` only from waiting) is decided on the current row, never on a stale copy.
Pure code, mutation-tested.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from connector.core.gates import OPEN, Gate, GateState

# A claim (of a gate's completion, or of a status post in the ledger) whose holder neither
# finished nor released it is taken over after this: the holder died, or was throttled.
CLAIM_TIMEOUT = timedelta(minutes=2)


# --- completion -----------------------------------------------------------------------------


def claim(
    gate: Gate, result: str, reason: str, now: datetime, descendant_seen: bool = False
) -> Gate | None:
    """Waiting → completing with the decided result: one instance wins the conditional write,
    and only it posts TaskCompleted. A descendant the deciding roll-up followed is recorded in
    the same write (`see_descendant`: should trial mode reopen the gate, it still knows)."""
    if gate.state != GateState.WAITING:
        return None
    return replace(
        gate,
        state=GateState.COMPLETING,
        result=result,
        result_reason=reason,
        claimed_at=now,
        descendant_seen=gate.descendant_seen or descendant_seen,
    )


def claim_is_stale(gate: Gate, now: datetime) -> bool:
    """Whether a completing gate's claim may be taken over: released, or held too long."""
    return gate.claimed_at is None or now - gate.claimed_at >= CLAIM_TIMEOUT


def reclaim(gate: Gate, now: datetime) -> Gate | None:
    """A completing gate whose claim was released or whose holder died is claimed again."""
    if gate.state != GateState.COMPLETING or not claim_is_stale(gate, now):
        return None
    return replace(gate, claimed_at=now)


def release_claim(gate: Gate) -> Gate | None:
    """A completion failed in a way a retry may mend: the next attempt need not wait."""
    return None if gate.claimed_at is None else replace(gate, claimed_at=None)


def count_post(gate: Gate, log_id: int = 0) -> Gate:
    """A TaskCompleted POST is about to be made (its outcome is unknown until seen); the task
    log created just before it (`log_id`, 0: none) is recorded in the same write."""
    return replace(gate, completion_posts=gate.completion_posts + 1, log_id=gate.log_id or log_id)


def throttled(gate: Gate, now: datetime, wait: timedelta) -> Gate:
    """TaskCompleted was throttled past the invocation's budget: the POST is uncounted (the
    service did not act on it), and the claim is kept until `wait` has passed (it is taken over
    `CLAIM_TIMEOUT` after `claimed_at`, so that moves on by the part of the wait beyond it)."""
    later = now + max(timedelta(0), wait - CLAIM_TIMEOUT)
    return replace(gate, completion_posts=max(0, gate.completion_posts - 1), claimed_at=later)


def finish(gate: Gate, result: str, reason: str) -> Gate:
    """Completing → succeeded or failed. The job token has done its work (or can do none): it
    leaves the row with the result, instead of waiting there for retention."""
    final = GateState.SUCCEEDED if result == "succeeded" else GateState.FAILED
    return replace(gate, state=final, result_reason=reason, auth_token="")


def reopen_after_trial(gate: Gate, trial: str) -> Gate:
    """Trial mode decided but sent nothing: the gate waits again (so that real mode on the same
    storage completes it), keeping what trial mode would have done."""
    return replace(
        gate,
        state=GateState.WAITING,
        result="",
        result_reason="",
        claimed_at=None,
        completion_posts=0,
        trial=trial,
    )


# --- what the task was told -----------------------------------------------------------------


def record_progress(gate: Gate, told: str, progress: str, logged: tuple[str, ...]) -> Gate | None:
    """Claim a change of progress before it is sent: only while the gate still records the
    progress `told` when it was read, so that a concurrent evaluation never repeats lines."""
    if gate.progress != told:
        return None
    return replace(gate, progress=progress, logged=logged)


def record_log_id(gate: Gate, log_id: int) -> Gate | None:
    """The task's stored log, unless one was recorded already (the first stays)."""
    return None if gate.log_id else replace(gate, log_id=log_id)


# --- what the gate learns -------------------------------------------------------------------


def see_descendant(gate: Gate) -> Gate | None:
    """A descendant of the gate's commit runs: from now on only the full roll-up judges it."""
    return None if gate.descendant_seen else replace(gate, descendant_seen=True)


def learn_commit(gate: Gate, commit: str) -> Gate | None:
    """The manifests commit of a gate on a pull request (its merge commit); the first stays."""
    return None if gate.commit else replace(gate, commit=commit)


def learn_hld_commit(gate: Gate, hld_commit: str) -> Gate | None:
    """The HLD commit of a gate on an HLD pull request (its merge commit); the first stays."""
    return None if gate.hld_commit else replace(gate, hld_commit=hld_commit)


def move_commit_to_hld(gate: Gate) -> Gate | None:
    """A gate registered on a commit of the HLD repository: that is its HLD commit, and the
    manifests commit is learned from its link (None: nothing to move)."""
    if not gate.commit or gate.hld_commit:
        return None
    return replace(gate, hld_commit=gate.commit, commit=None)


def learn_link(gate: Gate, commit: str, hld_commit: str) -> Gate | None:
    """A deployed manifests commit carries the gate's HLD commit: learned, with the HLD commit
    when the gate did not know it; an earlier link problem is over."""
    if gate.commit and gate.hld_commit and not gate.link_problem:
        return None
    return replace(
        gate,
        commit=gate.commit or commit,
        hld_commit=gate.hld_commit or hld_commit,
        link_problem="",
    )


def record_link_problem(gate: Gate, problem: str) -> Gate | None:
    """Why the deployed manifests commit does not link to the gate's HLD commit (once each)."""
    return None if gate.link_problem == problem else replace(gate, link_problem=problem)


# --- registration ---------------------------------------------------------------------------


def register(stored: Gate | None, gate: Gate) -> Gate | None:
    """A registration (or a PR-property callback) of `gate` against the gate stored under its
    id: the gate to write, or None to keep the stored one. A re-run of a finished job waits
    again (completing a job that is not running is prevented by the plan-state check before
    TaskCompleted); a registration fills in what a PR-property gate did not know."""
    if stored is None:
        return gate
    registered = gate.source == "registered"
    if stored.state not in OPEN and registered:
        return gate
    if stored.source != "registered" and registered:
        return replace(
            gate,
            state=stored.state,
            result=stored.result,
            claimed_at=stored.claimed_at,
            result_reason=stored.result_reason,
            commit=gate.commit or stored.commit,
            hld_commit=gate.hld_commit or stored.hld_commit,
            pull_request_id=gate.pull_request_id or stored.pull_request_id,
        )
    return None
