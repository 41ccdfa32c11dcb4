"""The Flux event model's rules: summaries (`first_line`), metadata look-up, the commit an event
names, and severities."""

from __future__ import annotations

import pytest

from connector.sources.flux.events import FluxEvent, commit_from_revision, first_line

SHA = "c8925188500a55dad9563388e537a03dcdded446"
OTHER = "1" * 40


def event(metadata: dict[str, str] | None = None, *, severity: str = "info") -> FluxEvent:
    data: dict[str, object] = {
        "involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "apps"},
        "severity": severity,
        "timestamp": "2026-05-14T09:12:50Z",
        "message": "m",
        "reason": "ReconciliationSucceeded",
    }
    if metadata is not None:
        data["metadata"] = metadata
    return FluxEvent.model_validate(data)


FIRST_LINES = [
    # (text, limit, summary)
    pytest.param("", 200, "", id="empty"),
    pytest.param("\n \n\t\n", 200, "", id="blank-lines"),
    pytest.param("one line", 200, "one line", id="one-line"),
    pytest.param("\n\n  first  \nsecond", 200, "first", id="first-non-empty-stripped"),
    pytest.param("a" * 200, 200, "a" * 200, id="exactly-the-limit"),
    pytest.param("a" * 199 + "bc", 200, "a" * 199 + "…", id="one-over-the-limit"),
    pytest.param("abcdef", 4, "abc…", id="own-limit"),
    pytest.param("abcd", 4, "abcd", id="own-limit-exact"),
    pytest.param("x" * 5000 + "\nrest", 200, "x" * 199 + "…", id="long-first-line"),
]


@pytest.mark.parametrize(("text", "limit", "summary"), FIRST_LINES)
def test_first_line(text, limit, summary):
    assert first_line(text, limit) == summary


def test_first_line_default_limit_is_200_characters():
    cut = first_line("é" * 1000)
    assert (len(cut), cut[-1]) == (200, "…")


REVISIONS = [
    (f"main@sha1:{SHA}", SHA),
    (f"refs/pull/42/head@sha1:{SHA}", SHA),
    (f"sha1:{SHA}", SHA),
    (f"main/{SHA}", SHA),
    (f"a:b/{SHA}", None),  # a colon decides: the tail after it is `b/<sha>`
    (f"x:y:{SHA}", SHA),  # after the last colon
    (f"a/b/{SHA}", SHA),  # after the last slash
    (SHA, SHA),
    (SHA + "0", None),
    (SHA[:-1], None),
    (SHA.upper(), None),
    ("sha256:" + "ab" * 32, None),
    ("", None),
]


@pytest.mark.parametrize(("revision", "commit"), REVISIONS)
def test_commit_from_revision(revision, commit):
    assert commit_from_revision(revision) == commit


COMMITS = [
    # (metadata, commit): `originRevision`, then `revision`; `commit` (an object annotation) only
    # when the event carries no revision at all; empty values skipped.
    pytest.param(None, None, id="no-metadata"),
    pytest.param({"revision": f"main@sha1:{SHA}"}, SHA, id="revision"),
    pytest.param({"revision": "6.7.1"}, None, id="chart-version"),
    pytest.param(
        {"revision": "latest@sha256:" + "ab" * 32, "originRevision": f"main@sha1:{SHA}"},
        SHA,
        id="origin-before-revision",
    ),
    pytest.param(
        {"revision": f"main@sha1:{OTHER}", "originRevision": f"sha1:{SHA}", "commit": OTHER},
        SHA,
        id="revision-beats-commit",
    ),
    pytest.param({"revision": f"main@sha1:{SHA}", "commit": OTHER}, SHA, id="annotation-ignored"),
    pytest.param({"revision": "6.7.1", "commit": OTHER}, None, id="chart-version-and-commit"),
    pytest.param({"commit": OTHER}, OTHER, id="commit-without-revision"),
    pytest.param({"commit": OTHER, "revision": ""}, OTHER, id="empty-revision-skipped"),
    pytest.param({"commit": "", "revision": f"main@sha1:{SHA}"}, SHA, id="empty-commit-skipped"),
    pytest.param({"commit": "not-a-sha"}, None, id="bad-commit"),
    pytest.param(
        {"kustomize.toolkit.fluxcd.io/revision": f"main@sha1:{SHA}"}, SHA, id="prefixed-key"
    ),
]


@pytest.mark.parametrize(("metadata", "commit"), COMMITS)
def test_commit(metadata, commit):
    assert event(metadata).commit == commit


META = [
    # (metadata, key, value)
    pytest.param({"revision": "a"}, "revision", "a", id="plain"),
    pytest.param({"x.io/revision": "b"}, "revision", "b", id="prefixed"),
    pytest.param({"x.io/revision": "b", "revision": "a"}, "revision", "a", id="plain-wins"),
    pytest.param({"xrevision": "c"}, "revision", None, id="suffix-needs-a-slash"),
    pytest.param({"revision/x": "d"}, "revision", None, id="not-a-prefix-match"),
    pytest.param({}, "revision", None, id="absent"),
]


@pytest.mark.parametrize(("metadata", "key", "value"), META)
def test_meta(metadata, key, value):
    assert event(metadata).meta(key) == value


@pytest.mark.parametrize(
    ("severity", "is_error"),
    [("error", True), ("Error", True), ("ERROR", True), ("info", False), ("trace", False)],
)
def test_is_error(severity, is_error):
    assert event(severity=severity).is_error is is_error
