"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import json
from datetime import datetime

from hypothesis import strategies as st

from tests.flux_encoding import go_json

SHA = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40)
K8S_NAME = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?", fullmatch=True)
REASONS = st.sampled_from(
    [
        "ReconciliationSucceeded",
        "Progressing",
        "HealthCheckFailed",
        "DependencyNotReady",
        "UpgradeSucceeded",
        "InstallFailed",
        "NewArtifact",
        "GitOperationFailed",
        "info",
        "error",
    ]
) | st.from_regex(r"[A-Z][A-Za-z]{0,30}", fullmatch=True)


@st.composite
def revisions(draw: st.DrawFn) -> str:
    sha = draw(SHA)
    return draw(
        st.sampled_from(
            [
                f"main@sha1:{sha}",
                f"main/{sha}",
                f"sha1:{sha}",
                f"refs/heads/x@sha1:{sha}",
                "6.7.1",
                f"latest@sha256:{sha}{sha[:24]}",
            ]
        )
    )


@st.composite
def flux_event_dicts(draw: st.DrawFn) -> dict:
    metadata = draw(
        st.dictionaries(
            st.sampled_from(["revision", "commit_status", "summary"]),
            st.text(max_size=40),
            max_size=2,
        )
    )
    if draw(st.booleans()):
        metadata["revision"] = draw(revisions())
    return {
        "involvedObject": {
            "kind": draw(
                st.sampled_from(
                    [
                        "Kustomization",
                        "HelmRelease",
                        "GitRepository",
                        "OCIRepository",
                        "Bucket",
                        "ImagePolicy",
                    ]
                )
            ),
            "namespace": draw(K8S_NAME),
            "name": draw(K8S_NAME),
            "apiVersion": "x.toolkit.fluxcd.io/v1",
            "resourceVersion": str(draw(st.integers(1, 10**9))),
        },
        "severity": draw(st.sampled_from(["info", "error"])),
        "timestamp": draw(st.datetimes(min_value=datetime(2000, 1, 1))).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "message": draw(st.text(max_size=300)),
        "reason": draw(REASONS),
        "metadata": metadata,
        "reportingController": "kustomize-controller",
        "reportingInstance": "kc-1",
    }


def flux_events() -> st.SearchStrategy[bytes]:
    return flux_event_dicts().map(go_json)


def junk_bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(str.encode),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda c: (
                st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4)
            ),
            max_leaves=10,
        ).map(lambda v: json.dumps(v).encode()),
    )


def signatures() -> st.SearchStrategy[str | None]:
    return (
        st.none()
        | st.text(max_size=150)
        | st.builds(
            lambda a, h: f"{a}={h}",
            st.sampled_from(["sha256", "sha1", "SHA512", "md5", ""]),
            st.text(alphabet="0123456789abcdefXYZ", max_size=130),
        )
    )


# Object-reference parts from short to past every limit, ASCII, non-ASCII and characters that
# Table keys escape or forbid, to probe what ingest may accept.
STRETCHED_PART = st.one_of(
    K8S_NAME,
    st.text(min_size=1, max_size=260),
    st.builds(
        lambda c, n: c * n,
        st.sampled_from(["a", "ü", "名", "#", "?", "%", "|", "😀"]),
        st.integers(1, 260),
    ),
)
ORIGIN = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", fullmatch=True)


@st.composite
def stretched_event_dicts(draw: st.DrawFn) -> dict:
    """A Flux event whose object identity and reason may be long, non-ASCII or odd."""
    event = draw(flux_event_dicts())
    obj = event["involvedObject"]
    for part in ("kind", "namespace", "name"):
        if draw(st.booleans()):
            obj[part] = draw(STRETCHED_PART)
    if draw(st.integers(0, 9)) == 0:
        event["reason"] = "R" * draw(st.integers(32 * 1024 - 2, 32 * 1024 + 2))
    return event
