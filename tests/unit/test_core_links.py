"""What a manifests commit's message and files claim (connector/core/links.py): trailers as
`git interpret-trailers` reads them (stricter), PR claims anywhere, hydrator metadata."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.core.links import (
    Link,
    claimed_pull_requests,
    hydrator_dry_sha,
    trailer_commit,
    trailers,
    unlinked_problem,
)

SHA = "ab" * 20


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (f"Render dev\n\nHLD-Commit: {SHA}", SHA),
        (f"Render dev\n\nhld-commit: {SHA.upper()}", SHA),  # keys case-insensitive; sha lowered
        (f"Render dev\n\nBody text.\n\nSigned-off-by: A <a@b>\nHLD-Commit: {SHA}\n", SHA),
        (f"Render dev\r\n\r\nHLD-Commit: {SHA}\r\n", SHA),  # CRLF
        (f"HLD-Commit: {SHA}", None),  # a lone subject line is never a trailer block
        (f"Render dev\n\nHLD-Commit: {SHA}\n\nMore text after it", None),  # not the last paragraph
        (
            f"Render dev\n\nHLD-Commit: {SHA}\nnot a trailer line",
            None,
        ),  # the block must be all trailers
        ("Render dev\n\nHLD-Commit: 1111111", None),  # short SHAs are not links
        (f"Render dev\n\nHLD-Commit: {SHA}0", None),  # 41 hex digits
        (f"Render dev\n\nThe HLD-Commit: {SHA} line", None),  # not a token
    ],
)
def test_the_hld_commit_trailer(message: str, expected: str | None) -> None:
    assert trailer_commit(message) == expected


def test_a_continuation_line_extends_the_previous_trailer() -> None:
    found = trailers("subject\n\nReviewed-by: A\n  and B\nHLD-Pull-Request: 42")
    assert found == {"reviewed-by": "A and B", "hld-pull-request": "42"}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Merged PR 42: dev: hello-web 1234", {42}),
        ("Updated k8s manifest files post commit: Merged PR 42: dev: hello-web", {42}),
        ("Render manifests for hld@1111111\n\nMerged PR 42: x", {42}),
        ("Merge pull request #43 from owner/branch", {43}),
        ("Merge pull request 44 from owner/branch", {44}),
        ("render\n\nHLD-Pull-Request: #45", {45}),
        ("chore(manifests): render dev from HLD PR #42", set()),
        ("Merged PR 42 without the colon", set()),
        ("UnMerged PR 42: no word boundary", set()),
    ],
)
def test_pull_request_claims(message: str, expected: set[int]) -> None:
    assert claimed_pull_requests(message) == expected


def test_configured_patterns_add_claims() -> None:
    pattern = re.compile(r"from HLD PR #(\d+)")
    assert claimed_pull_requests("render dev from HLD PR #42", [pattern]) == {42}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (json.dumps({"drySha": SHA, "repoURL": "https://x"}), SHA),
        (json.dumps({"drySha": "1111111"}), None),
        (json.dumps([SHA]), None),
        ("not json", None),
        ("", None),
        (None, None),
    ],
)
def test_hydrator_metadata(text: str | None, expected: str | None) -> None:
    assert hydrator_dry_sha(text) == expected


@given(
    hld=st.lists(st.text("0123456789abcdef", min_size=40, max_size=40), max_size=3),
    prs=st.dictionaries(
        st.integers(1, 10**6), st.text("0123456789abcdef", min_size=40, max_size=40)
    ),
    via=st.sampled_from(["", "trailer", "pull request", "hydrator"]),
    problem=st.text(max_size=50),
)
def test_a_link_survives_its_json_round_trip(hld, prs, via, problem) -> None:
    link = Link(tuple(hld), prs, via, problem)
    again = Link.from_json(json.loads(json.dumps(link.to_json())))
    assert (again.hld_commits, dict(again.merged), again.via, again.problem) == (
        tuple(hld),
        prs,
        via,
        problem,
    )
    assert again.linked == bool(hld)


def test_a_block_cannot_start_with_a_continuation_and_a_tab_continues() -> None:
    assert trailers("subject\n\n  indented first line\nHLD-Commit: x") == {}
    assert trailers("subject\n\nReviewed-by: A\n\tand B") == {"reviewed-by": "A and B"}


def test_the_unlinked_problem_names_the_commit_the_claims_tried_and_the_fix() -> None:
    commit = "0123456789" + "a" * 30
    tried = ["pull request 42 is active, not completed", "pull request 43 was not found"]
    assert unlinked_problem(commit, tried) == (
        "manifests commit 01234567 is not linked to an HLD commit (pull request 42 is active, "
        "not completed; pull request 43 was not found): have the generation pipeline add the "
        "trailer 'HLD-Commit: <HLD commit SHA>' to its commit message "
        "(docs/three-repositories.md)"
    )
    assert "(its message names no HLD commit or pull request)" in unlinked_problem(commit, [])
